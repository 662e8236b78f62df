package testimage

import (
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dockerManifestEntry is one element of a docker archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// v1Layer is the legacy per-layer "json" of classic docker archives. Docker
// 1.10 and later load through manifest.json and ignore it; it is written so
// the archive has every file docker save writes.
type v1Layer struct {
	ID           string     `json:"id"`
	Parent       string     `json:"parent,omitempty"`
	Created      *time.Time `json:"created"`
	OS           string     `json:"os,omitempty"`
	Architecture string     `json:"architecture,omitempty"`
}

// WriteDockerArchive writes img as docker save did up to Docker 24 (and as
// podman save and skopeo's docker-archive still load it):
//
//	manifest.json     [{"Config":"<hex>.json","RepoTags":[...],"Layers":["<id>/layer.tar",...]}]
//	repositories      {"repo":{"tag":"<id of the top layer>"}}
//	<hex>.json        the image config, named by its sha256
//	<id>/layer.tar    each layer; also <id>/VERSION ("1.0") and <id>/json
//
// A layer's <id> is the hex of its ChainID (the OCI chain of diff IDs),
// which is unique per position even when two layers have the same content;
// Docker uses a hash of the v1 json there, which loaders do not check.
// Layers are plain tar unless their Compression asks otherwise (Docker's
// loader sniffs compression, so compressed layer.tar files are legal).
func (img Image) WriteDockerArchive(w io.Writer) error {
	stage, err := os.MkdirTemp("", "testimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	layout, out := filepath.Join(stage, "oci"), filepath.Join(stage, "out")
	if err := initLayout(layout); err != nil {
		return err
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	b, err := img.build(layout, Uncompressed)
	if err != nil {
		return err
	}
	p := img.platform()
	entry := dockerManifestEntry{Config: b.config.Digest.Encoded() + ".json", RepoTags: img.RepoTags, Layers: []string{}}
	var chain digest.Digest
	parent := ""
	for i, l := range b.layers {
		if i == 0 {
			chain = b.diffIDs[0]
		} else {
			chain = digest.FromString(chain.String() + " " + b.diffIDs[i].String())
		}
		id := chain.Encoded()
		created := Epoch
		v1 := v1Layer{ID: id, Parent: parent, Created: &created}
		parent = id
		if i == len(b.layers)-1 {
			v1.OS, v1.Architecture = p.OS, p.Architecture
		}
		v1JSON, err := json.Marshal(v1)
		if err != nil {
			return err
		}
		dir := filepath.Join(out, id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		// Linked, not moved: two layers with the same bytes share one blob.
		if err := os.Link(blobPath(layout, l.Digest), filepath.Join(dir, "layer.tar")); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte("1.0"), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "json"), v1JSON, 0o644); err != nil {
			return err
		}
		entry.Layers = append(entry.Layers, path.Join(id, "layer.tar"))
	}
	if err := os.Link(blobPath(layout, b.config.Digest), filepath.Join(out, entry.Config)); err != nil {
		return err
	}
	top := ""
	if n := len(entry.Layers); n > 0 {
		top = path.Dir(entry.Layers[n-1])
	}
	if err := writeDockerIndexes(out, entry, top); err != nil {
		return err
	}
	return ArchiveLayout(w, out)
}

// WriteDockerArchiveOCI writes img as docker save does from Docker 25 on:
// an OCI layout (layers plain tar unless their Compression says otherwise,
// one index.json entry per RepoTag annotated with io.containerd.image.name
// for the full name and ref.name for the tag alone) plus manifest.json and
// repositories, whose paths point into blobs/sha256/.
func (img Image) WriteDockerArchiveOCI(w io.Writer) error {
	return viaTempLayout(w, func(dir string) error {
		if err := initLayout(dir); err != nil {
			return err
		}
		b, err := img.build(dir, Uncompressed)
		if err != nil {
			return err
		}
		entry := dockerManifestEntry{Config: blobRel(b.config.Digest), RepoTags: img.RepoTags, Layers: []string{}}
		for _, l := range b.layers {
			entry.Layers = append(entry.Layers, blobRel(l.Digest))
		}
		var entries []ocispec.Descriptor
		for _, ref := range img.RepoTags {
			desc := img.indexEntry(b.manifest)
			desc.Annotations = map[string]string{"io.containerd.image.name": ref}
			if _, tag, ok := splitTag(ref); ok {
				desc.Annotations[ocispec.AnnotationRefName] = tag
			}
			entries = append(entries, desc)
		}
		if len(entries) == 0 {
			desc := img.indexEntry(b.manifest)
			desc.Annotations = nil
			entries = append(entries, desc)
		}
		if err := writeIndexFile(dir, entries...); err != nil {
			return err
		}
		top := ""
		if n := len(b.layers); n > 0 {
			top = b.layers[n-1].Digest.Encoded()
		}
		return writeDockerIndexes(dir, entry, top)
	})
}

func blobRel(d digest.Digest) string {
	return path.Join("blobs", d.Algorithm().String(), d.Encoded())
}

// writeDockerIndexes writes manifest.json and repositories into dir.
func writeDockerIndexes(dir string, entry dockerManifestEntry, top string) error {
	data, err := json.Marshal([]dockerManifestEntry{entry})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644); err != nil {
		return err
	}
	repos := map[string]map[string]string{}
	for _, ref := range entry.RepoTags {
		if repo, tag, ok := splitTag(ref); ok && top != "" {
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][tag] = top
		}
	}
	if len(repos) == 0 {
		return nil
	}
	if data, err = json.Marshal(repos); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "repositories"), data, 0o644)
}

// splitTag splits "repo:tag"; a reference without a tag means "latest",
// and one pinned by digest has no place in repositories.
func splitTag(ref string) (repo, tag string, ok bool) {
	if strings.Contains(ref, "@") {
		return "", "", false
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ref[i+1:], true
	}
	return ref, "latest", true
}
