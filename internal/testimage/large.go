package testimage

import (
	"archive/tar"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Large returns "berth.test/large:latest", a big image for benchmarks: n
// layers whose regular files hold totalBytes in all, split evenly (tar
// headers come on top). Layer i has data/lNNN/dNNNN/ directories of 200 to 300
// files each, mostly small with now and then one of a few MiB, plus a few
// symlinks and hardlinks per directory. The content is random data that
// repeats itself in part, so that layers compress to a little under half,
// as real ones do, and not to nothing. The content depends only on
// seed: the same arguments give the same digests, on any machine. Layers
// are generated while they are written, never held in memory. The image
// has no busybox and nothing to run.
func Large(layers int, totalBytes, seed int64) Image {
	layers = max(layers, 1)
	totalBytes = max(totalBytes, 0)
	img := Image{
		Config: ocispec.ImageConfig{
			Env: []string{DefaultPath},
			Labels: map[string]string{
				"dev.berth.testimage.large.bytes": fmt.Sprint(totalBytes),
				"dev.berth.testimage.large.seed":  fmt.Sprint(seed),
			},
		},
		RepoTags: []string{"berth.test/large:latest"},
		Name:     "berth.test/large:latest",
	}
	per := totalBytes / int64(layers)
	for i := range layers {
		g := largeLayer{index: i, bytes: per, seed: seed}
		if i == layers-1 {
			g.bytes = totalBytes - per*int64(layers-1)
		}
		img.Layers = append(img.Layers, Layer{
			CreatedBy: fmt.Sprintf("testimage large layer %d of %d bytes, seed %d", i, g.bytes, seed),
			gen:       g.write,
		})
	}
	return img
}

// LargeOCILayout writes Large(layers, totalBytes, seed) as an OCI layout in
// dir and returns its manifest's descriptor.
func LargeOCILayout(dir string, layers int, totalBytes int64, seed int64) (ocispec.Descriptor, error) {
	return Large(layers, totalBytes, seed).WriteOCILayout(dir)
}

type largeLayer struct {
	index int
	bytes int64
	seed  int64
}

func (g largeLayer) write(tw *tar.Writer) error {
	// PCG and ChaCha8 are specified algorithms: unlike math/rand's default
	// source they cannot change between Go releases and move the digests.
	rng := rand.New(rand.NewPCG(uint64(g.seed), uint64(g.index)))
	var key [32]byte
	for i := 0; i < len(key); i += 8 {
		binary.LittleEndian.PutUint64(key[i:], rng.Uint64())
	}
	content := rand.NewChaCha8(key)
	buf := make([]byte, 64<<10)

	entry := func(hdr *tar.Header) error {
		hdr.ModTime = Epoch
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		return tw.WriteHeader(hdr)
	}
	top := fmt.Sprintf("data/l%03d", g.index)
	for _, d := range []string{"data/", top + "/"} {
		if err := entry(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
			return err
		}
	}
	left := g.bytes
	for d := 0; left > 0; d++ {
		dir := fmt.Sprintf("%s/d%04d", top, d)
		if err := entry(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
			return err
		}
		var names []string
		files := 200 + rng.IntN(101)
		for f := 0; f < files && left > 0; f++ {
			size := min(largeFileSize(rng), left)
			name := fmt.Sprintf("%s/f%04d", dir, f)
			mode := int64(0o644)
			if rng.IntN(10) == 0 {
				mode = 0o755
			}
			if err := entry(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size}); err != nil {
				return err
			}
			for n := size; n > 0; {
				chunk := buf[:min(n, int64(len(buf)))]
				fillContent(chunk, content, rng)
				if _, err := tw.Write(chunk); err != nil {
					return err
				}
				n -= int64(len(chunk))
			}
			left -= size
			names = append(names, name)
		}
		// Names h* and s* sort after f*, so links follow their targets
		// and the directory stays in sorted order.
		for h := 0; h < 2 && len(names) > 0; h++ {
			target := names[rng.IntN(len(names))]
			hdr := &tar.Header{Typeflag: tar.TypeLink, Name: fmt.Sprintf("%s/h%02d", dir, h), Linkname: target}
			if err := entry(hdr); err != nil {
				return err
			}
		}
		for s := 0; s < 4 && len(names) > 0; s++ {
			target := path.Base(names[rng.IntN(len(names))])
			hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: fmt.Sprintf("%s/s%02d", dir, s), Linkname: target, Mode: 0o777}
			if err := entry(hdr); err != nil {
				return err
			}
		}
	}
	return nil
}

// fillContent fills b with data that compresses about as well as real
// image content: 256-byte runs, four in ten fresh random bytes, the others
// repeating a run close enough before them to be inside gzip's 32 KiB
// window. Random data alone would not compress at all, and random letters
// mixed into it barely more (they share the Huffman tables).
func fillContent(b []byte, content *rand.ChaCha8, rng *rand.Rand) {
	const run = 256
	for off := 0; off < len(b); off += run {
		end := min(off+run, len(b))
		if off == 0 || rng.IntN(10) < 4 {
			content.Read(b[off:end])
			continue
		}
		src := off - run*(1+rng.IntN(min(off/run, 96)))
		copy(b[off:end], b[src:])
	}
}

// largeFileSize is mostly about log-uniform between 256 B and 64 KiB, like
// the small files that dominate real images, and one time in fifty a large
// file of 256 KiB to 4 MiB. Integers only: floating-point functions may
// round differently on other architectures and change the digests.
func largeFileSize(rng *rand.Rand) int64 {
	if rng.IntN(50) == 0 {
		return 256<<10 + rng.Int64N(4<<20-256<<10)
	}
	octave := int64(1) << (8 + rng.IntN(8))
	return octave + rng.Int64N(octave)
}
