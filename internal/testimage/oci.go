package testimage

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// configFile is the image configuration as written. It is ocispec.Image
// plus Docker's Healthcheck, which both Docker and Podman read from OCI
// configs too.
type configFile struct {
	Created *time.Time `json:"created,omitempty"`
	ocispec.Platform
	Config  runConfig         `json:"config"`
	RootFS  ocispec.RootFS    `json:"rootfs"`
	History []ocispec.History `json:"history,omitempty"`
}

type runConfig struct {
	ocispec.ImageConfig
	Healthcheck *Healthcheck `json:"Healthcheck,omitempty"`
}

// built is an image whose blobs are in a layout.
type built struct {
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest
}

// build writes img's layers, config and manifest into the blob store of
// the layout at root. native is the compression of layers that name none.
func (img Image) build(root, native string) (built, error) {
	var b built
	created := Epoch
	cfg := configFile{
		Created:  &created,
		Platform: img.platform(),
		Config:   runConfig{ImageConfig: img.Config, Healthcheck: img.Healthcheck},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}},
	}
	for i, l := range img.Layers {
		comp, err := l.compression(native)
		if err != nil {
			return b, err
		}
		bw, err := newBlobWriter(root)
		if err != nil {
			return b, err
		}
		diffID, err := writeLayer(bw, l, comp)
		if err != nil {
			bw.abort()
			return b, fmt.Errorf("testimage: layer %d: %w", i, err)
		}
		desc, err := bw.commit(layerMediaType(comp))
		if err != nil {
			return b, err
		}
		b.layers = append(b.layers, desc)
		b.diffIDs = append(b.diffIDs, diffID)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		createdBy := l.CreatedBy
		if createdBy == "" {
			createdBy = fmt.Sprintf("testimage layer %d", i)
		}
		cfg.History = append(cfg.History, ocispec.History{Created: &created, CreatedBy: createdBy})
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return b, err
	}
	if b.config, err = putBlob(root, ocispec.MediaTypeImageConfig, data); err != nil {
		return b, err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    b.config,
		Layers:    b.layers,
	}
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	if data, err = json.Marshal(m); err != nil {
		return b, err
	}
	b.manifest, err = putBlob(root, ocispec.MediaTypeImageManifest, data)
	return b, err
}

// indexEntry is how img's manifest is listed in an index: with its
// platform, and its Name as the ref.name annotation.
func (img Image) indexEntry(manifest ocispec.Descriptor) ocispec.Descriptor {
	p := img.platform()
	manifest.Platform = &p
	if img.Name != "" {
		manifest.Annotations = map[string]string{ocispec.AnnotationRefName: img.Name}
	}
	return manifest
}

func initLayout(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	data, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), data, 0o644)
}

func newIndex(manifests []ocispec.Descriptor) ocispec.Index {
	if manifests == nil {
		manifests = []ocispec.Descriptor{}
	}
	return ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	}
}

func writeIndexFile(dir string, manifests ...ocispec.Descriptor) error {
	data, err := json.Marshal(newIndex(manifests))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ocispec.ImageIndexFile), data, 0o644)
}

// WriteOCILayout writes img as an OCI image layout in dir, which is created
// if needed; an index.json already there is replaced. It returns the
// descriptor index.json lists: the manifest's, with the platform and the
// ref.name annotation.
func (img Image) WriteOCILayout(dir string) (ocispec.Descriptor, error) {
	if err := initLayout(dir); err != nil {
		return ocispec.Descriptor{}, err
	}
	b, err := img.build(dir, Gzip)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := img.indexEntry(b.manifest)
	return desc, writeIndexFile(dir, desc)
}

// WriteOCIArchive writes img as an oci-archive: its OCI layout as a tar,
// what "skopeo copy ... oci-archive:" and "podman save --format
// oci-archive" produce.
func (img Image) WriteOCIArchive(w io.Writer) error {
	return viaTempLayout(w, func(dir string) error {
		_, err := img.WriteOCILayout(dir)
		return err
	})
}

// WriteOCIIndex writes a multi-platform OCI layout in dir: every image's
// manifest is listed in index.json itself, each with its platform (and its
// Name as ref.name), and blobs the images share are stored once.
func WriteOCIIndex(dir string, imgs ...Image) error {
	if err := initLayout(dir); err != nil {
		return err
	}
	var entries []ocispec.Descriptor
	for _, img := range imgs {
		b, err := img.build(dir, Gzip)
		if err != nil {
			return err
		}
		entries = append(entries, img.indexEntry(b.manifest))
	}
	return writeIndexFile(dir, entries...)
}

// WriteOCINestedIndex writes a multi-platform OCI layout in dir the way
// "skopeo copy --all" and docker save of a multi-platform image do:
// index.json lists a single image index, named name by its ref.name
// annotation, and that index lists the per-platform manifests. The images'
// own Names are not used. It returns the descriptor of the nested index.
func WriteOCINestedIndex(dir, name string, imgs ...Image) (ocispec.Descriptor, error) {
	if err := initLayout(dir); err != nil {
		return ocispec.Descriptor{}, err
	}
	entries := []ocispec.Descriptor{}
	for _, img := range imgs {
		b, err := img.build(dir, Gzip)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		p := img.platform()
		b.manifest.Platform = &p
		entries = append(entries, b.manifest)
	}
	data, err := json.Marshal(newIndex(entries))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := putBlob(dir, ocispec.MediaTypeImageIndex, data)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if name != "" {
		desc.Annotations = map[string]string{ocispec.AnnotationRefName: name}
	}
	return desc, writeIndexFile(dir, desc)
}

// viaTempLayout has fill write a layout in a temporary directory, then
// writes that directory to w as a tar. Archives are staged on disk because
// a tar header needs each blob's size before its bytes, and a layer's size
// is only known once it has been compressed.
func viaTempLayout(w io.Writer, fill func(dir string) error) error {
	dir, err := os.MkdirTemp("", "testimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := fill(dir); err != nil {
		return err
	}
	return ArchiveLayout(w, dir)
}
