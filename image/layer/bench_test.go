package layer

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchLayer is shaped like a distribution image layer: 5000 files in 250
// directories a few levels deep, mostly small, some symlinks and hardlinks.
func benchLayer(b *testing.B) (layer []byte, content int64) {
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	var ents []entry
	for d := range 250 {
		dir := fmt.Sprintf("usr/lib/pkg%d/sub%d", d/10, d%10)
		ents = append(ents, directory(dir))
		for f := range 20 {
			// Sizes from 0 to 64 KiB, skewed small as in real trees.
			size := int(rng.ExpFloat64() * 8192)
			size = min(size, 64<<10)
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(rng.Uint32())
			}
			content += int64(size)
			name := fmt.Sprintf("%s/file%d.so", dir, f)
			ents = append(ents, reg(name, string(body)).with(func(h *tar.Header) { h.Mode = 0o755 }))
			if f%10 == 0 {
				ents = append(ents, sym(name+".1", fmt.Sprintf("file%d.so", f)))
			}
			if f%20 == 1 {
				ents = append(ents, hard(name+".hard", name))
			}
		}
	}
	return layerTar(b, ents...), content
}

func BenchmarkApply(b *testing.B) {
	layer, content := benchLayer(b)
	gz := compress(b, Gzip, layer)
	zst := compress(b, Zstd, layer)
	run := func(b *testing.B, f func(dir string) error) {
		b.SetBytes(content)
		base := b.TempDir()
		for i := 0; b.Loop(); i++ {
			dir := filepath.Join(base, fmt.Sprint(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := f(dir); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, overlay := range []bool{true, false} {
		o := Options{Overlay: overlay}
		mode := map[bool]string{true: "overlay", false: "apply"}[overlay]
		b.Run(mode+"/tar", func(b *testing.B) {
			run(b, func(dir string) error {
				_, err := Apply(dir, bytes.NewReader(layer), o)
				return err
			})
		})
		b.Run(mode+"/gzip", func(b *testing.B) {
			run(b, func(dir string) error {
				_, _, err := ApplyCompressed(dir, bytes.NewReader(gz), o)
				return err
			})
		})
		b.Run(mode+"/zstd", func(b *testing.B) {
			run(b, func(dir string) error {
				_, _, err := ApplyCompressed(dir, bytes.NewReader(zst), o)
				return err
			})
		})
	}
	// Over an existing copy of itself: every entry replaces one.
	b.Run("apply/over-itself", func(b *testing.B) {
		dir := b.TempDir()
		if _, err := Apply(dir, bytes.NewReader(layer), Options{}); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(content)
		for b.Loop() {
			if _, err := Apply(dir, bytes.NewReader(layer), Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
