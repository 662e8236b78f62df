package testimage_test

// An independent reader of what the package writes. It uses the standard
// library's gzip and sha256 rather than the writer's klauspost gzip and
// go-digest, and checks the specifications' rules rather than the
// writer's own idea of them.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type entry struct {
	hdr  *tar.Header
	data []byte
}

// readImage is one image found in a layout.
type readImage struct {
	desc     ocispec.Descriptor // as listed by its index
	manifest ocispec.Manifest
	config   ocispec.Image
	rawCfg   map[string]any
	layers   [][]entry
	// uncompressed and compressed sizes of the layers, in all
	tarBytes, blobBytes int64
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func digestOf(data []byte) string { return "sha256:" + sha256Hex(data) }

// readBlob reads the blob desc names from a layout and checks that its
// size and digest are what desc says.
func readBlob(t *testing.T, dir string, desc ocispec.Descriptor) []byte {
	t.Helper()
	alg, hexPart, ok := strings.Cut(string(desc.Digest), ":")
	if !ok || alg != "sha256" || len(hexPart) != 64 {
		t.Fatalf("bad digest %q", desc.Digest)
	}
	data, err := os.ReadFile(filepath.Join(dir, "blobs", alg, hexPart))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != desc.Size {
		t.Fatalf("blob %s: %d bytes, descriptor says %d", desc.Digest, len(data), desc.Size)
	}
	if got := digestOf(data); got != string(desc.Digest) {
		t.Fatalf("blob %s hashes to %s", desc.Digest, got)
	}
	return data
}

func unmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
}

// readLayout checks an OCI image layout and returns the images its
// index.json reaches, through nested indexes too.
func readLayout(t *testing.T, dir string) []readImage {
	t.Helper()
	var layout ocispec.ImageLayout
	data, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil {
		t.Fatal(err)
	}
	unmarshal(t, data, &layout)
	if layout.Version != "1.0.0" {
		t.Fatalf("imageLayoutVersion %q", layout.Version)
	}
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	referenced := map[string]bool{}
	for _, b := range blobs {
		if len(b.Name()) != 64 || !b.Type().IsRegular() {
			t.Errorf("stray blob %s", b.Name())
		}
	}
	if data, err = os.ReadFile(filepath.Join(dir, "index.json")); err != nil {
		t.Fatal(err)
	}
	var images []readImage
	var walkIndex func(data []byte)
	walkIndex = func(data []byte) {
		var idx ocispec.Index
		unmarshal(t, data, &idx)
		if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
			t.Fatalf("index: schemaVersion %d mediaType %q", idx.SchemaVersion, idx.MediaType)
		}
		for _, desc := range idx.Manifests {
			blob := readBlob(t, dir, desc)
			referenced[string(desc.Digest)] = true
			switch desc.MediaType {
			case ocispec.MediaTypeImageIndex:
				walkIndex(blob)
			case ocispec.MediaTypeImageManifest:
				images = append(images, readManifest(t, dir, desc, blob, referenced))
			default:
				t.Fatalf("index lists a %q", desc.MediaType)
			}
		}
	}
	walkIndex(data)
	for _, b := range blobs {
		if !referenced["sha256:"+b.Name()] {
			t.Errorf("blob %s is not referenced", b.Name())
		}
	}
	return images
}

func readManifest(t *testing.T, dir string, desc ocispec.Descriptor, blob []byte, referenced map[string]bool) readImage {
	t.Helper()
	img := readImage{desc: desc}
	unmarshal(t, blob, &img.manifest)
	m := img.manifest
	if m.SchemaVersion != 2 || m.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("manifest: schemaVersion %d mediaType %q", m.SchemaVersion, m.MediaType)
	}
	if m.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Fatalf("config mediaType %q", m.Config.MediaType)
	}
	cfg := readBlob(t, dir, m.Config)
	referenced[string(m.Config.Digest)] = true
	unmarshal(t, cfg, &img.config)
	unmarshal(t, cfg, &img.rawCfg)
	c := img.config
	if c.OS == "" || c.Architecture == "" || c.RootFS.Type != "layers" {
		t.Fatalf("config: os %q architecture %q rootfs.type %q", c.OS, c.Architecture, c.RootFS.Type)
	}
	if len(c.RootFS.DiffIDs) != len(m.Layers) || len(c.History) != len(m.Layers) {
		t.Fatalf("%d layers, %d diff_ids, %d history entries", len(m.Layers), len(c.RootFS.DiffIDs), len(c.History))
	}
	for i, l := range m.Layers {
		data := readBlob(t, dir, l)
		referenced[string(l.Digest)] = true
		raw := decompress(t, l.MediaType, data)
		if got := digestOf(raw); got != string(c.RootFS.DiffIDs[i]) {
			t.Fatalf("layer %d: uncompressed digest %s, diff_id %s", i, got, c.RootFS.DiffIDs[i])
		}
		img.layers = append(img.layers, readLayerTar(t, raw, true))
		img.tarBytes += int64(len(raw))
		img.blobBytes += int64(len(data))
	}
	return img
}

func decompress(t *testing.T, mediaType string, data []byte) []byte {
	t.Helper()
	var r io.Reader
	switch mediaType {
	case ocispec.MediaTypeImageLayer:
		return data
	case ocispec.MediaTypeImageLayerGzip:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case ocispec.MediaTypeImageLayerZstd:
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("layer mediaType %q", mediaType)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", mediaType, err)
	}
	return raw
}

// readLayerTar parses a layer. When wellFormed, it also checks what a
// writer of layers owes its readers: relative names, a directory before
// what is in it, a hardlink after its target, no name twice.
func readLayerTar(t *testing.T, raw []byte, wellFormed bool) []entry {
	t.Helper()
	var out []entry
	seen := map[string]byte{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{hdr, data})
		if !wellFormed {
			continue
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if name == "" || path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "../") {
			t.Errorf("entry name %q", hdr.Name)
		}
		if (hdr.Typeflag == tar.TypeDir) != strings.HasSuffix(hdr.Name, "/") {
			t.Errorf("%q: typeflag %c and the trailing slash disagree", hdr.Name, hdr.Typeflag)
		}
		if _, dup := seen[name]; dup {
			t.Errorf("%s twice", name)
		}
		if dir := path.Dir(name); dir != "." && seen[dir] != tar.TypeDir {
			t.Errorf("%s comes before its directory %s", name, dir)
		}
		if hdr.Typeflag == tar.TypeLink {
			if _, ok := seen[hdr.Linkname]; !ok {
				t.Errorf("hardlink %s comes before its target %s", name, hdr.Linkname)
			}
		}
		seen[name] = hdr.Typeflag
	}
	return out
}

// untar unpacks an archive of a layout (or a docker archive) into dir,
// accepting only relative names, directories and regular files.
func untar(t *testing.T, archive []byte, dir string) []string {
	t.Helper()
	var names []string
	for _, e := range readLayerTar(t, archive, true) {
		names = append(names, e.hdr.Name)
		p := filepath.Join(dir, filepath.FromSlash(e.hdr.Name))
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, e.data, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("archive entry %s has typeflag %c", e.hdr.Name, e.hdr.Typeflag)
		}
	}
	return names
}

// extractRootfs unpacks layer entries into dir as a container runtime
// would, enough to execute what they hold. Ownership and xattrs are not
// applied.
func extractRootfs(t *testing.T, entries []entry, dir string) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(e.hdr.Name, "/")))
		mode := os.FileMode(e.hdr.Mode).Perm()
		var err error
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			err = os.WriteFile(p, e.data, mode)
		case tar.TypeSymlink:
			err = os.Symlink(e.hdr.Linkname, p)
		case tar.TypeLink:
			err = os.Link(filepath.Join(dir, filepath.FromSlash(e.hdr.Linkname)), p)
		default:
			t.Fatalf("cannot extract %s (typeflag %c)", e.hdr.Name, e.hdr.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
