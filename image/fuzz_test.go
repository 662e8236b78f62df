package image_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/snapshot"
	"github.com/berth-dev/berth/internal/testimage"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifests and indexes come from registries and archives: whatever they
// hold, parsing fails cleanly or yields descriptors that are well-formed.
func FuzzParseManifestAndIndex(f *testing.F) {
	for _, seed := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + zeros + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + zeros + `","size":3}]}`,
		`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + zeros + `","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}`,
		`{"schemaVersion":2,"config":{"digest":"sha256:../../x","size":-1}}`,
		`{"schemaVersion":1}`, `[]`, `null`, `{"layers":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mt, _ := image.DetectMediaType(b)
		if m, err := image.ParseManifest(b, mt); err == nil {
			for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
				if d.Digest.Validate() != nil || d.Size < 0 {
					t.Fatalf("accepted a bad descriptor %+v", d)
				}
			}
		}
		if x, err := image.ParseIndex(b, mt); err == nil {
			for _, d := range x.Manifests {
				if d.Digest.Validate() != nil || d.Size < 0 {
					t.Fatalf("accepted a bad descriptor %+v", d)
				}
			}
		}
		if c, err := image.ParseConfig(b); err == nil {
			for _, d := range c.RootFS.DiffIDs {
				if d.Validate() != nil {
					t.Fatalf("accepted a bad diff ID %q", d)
				}
			}
		}
	})
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

// Archives are untrusted: loading any bytes fails cleanly or loads, and
// writes nothing outside the store.
func FuzzLoad(f *testing.F) {
	if bb, err := testimage.Busybox(); err == nil {
		bb.Layers = bb.Layers[:0]
		bb.Layers = append(bb.Layers, testimage.Layer{Files: []testimage.File{{Path: "f", Data: []byte("x")}}})
		var d, o bytes.Buffer
		if bb.WriteDockerArchive(&d) == nil {
			f.Add(d.Bytes())
		}
		if bb.WriteOCIArchive(&o) == nil {
			f.Add(o.Bytes())
		}
	}
	f.Add([]byte("not an archive"))
	parent := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		root, err := os.MkdirTemp(parent, "store")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(root)
		s, err := image.Open(filepath.Join(root, "s"), image.Options{Snapshotter: snapshot.Copy})
		if err != nil {
			t.Fatal(err)
		}
		names, err := s.Load(bytes.NewReader(b))
		if err == nil {
			for _, n := range names {
				if _, err := s.Get(n); err != nil {
					t.Fatalf("loaded %q but cannot get it: %v", n, err)
				}
			}
		}
		ents, _ := os.ReadDir(root)
		if len(ents) != 1 {
			t.Fatalf("load wrote beside the store: %v", ents)
		}
	})
}
