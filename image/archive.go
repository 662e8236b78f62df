package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/layer"
	"github.com/berth-dev/berth/image/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotations naming an image in an OCI layout's index: OCI's own (which
// podman and skopeo fill with the full name or a tag) and containerd's.
const (
	annotationRefName        = ocispec.AnnotationRefName
	annotationContainerdName = "io.containerd.image.name"
)

// dockerManifestEntry is one image of a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// archiveBlob is a file of the archive stored in the content store.
type archiveBlob struct {
	digest digest.Digest
	size   int64
}

// Load reads a docker-archive (`docker save`) or an OCI archive (an OCI
// image layout as a tar, as `podman save --format oci-archive` and
// skopeo's oci-archive write), plain or compressed, stores its content
// and names its images. Nothing is named unless everything the archive's
// images need for this host's platform arrived and checked out; what a
// failed load wrote is garbage for the next Prune.
func (s *Store) Load(r io.Reader) ([]string, error) {
	plain, _, err := layer.Decompress(r)
	if err != nil {
		return nil, err
	}
	defer plain.Close()
	var names []string
	err = s.withLease(func(lease string) error {
		files, links, docs, err := s.readArchive(lease, plain)
		if err != nil {
			return err
		}
		resolve := func(p string) (archiveBlob, error) {
			p = cleanArchivePath(p)
			for hops := 0; hops < 8; hops++ {
				if b, ok := files[p]; ok {
					return b, nil
				}
				t, ok := links[p]
				if !ok {
					break
				}
				p = t
			}
			return archiveBlob{}, fmt.Errorf("the archive has no file %q", p)
		}
		type named struct {
			name   string
			target ocispec.Descriptor
		}
		var todo []named
		switch {
		case docs["manifest.json"] != nil:
			var entries []dockerManifestEntry
			if err := json.Unmarshal(docs["manifest.json"], &entries); err != nil {
				return fmt.Errorf("manifest.json: %w", err)
			}
			if len(entries) == 0 {
				return errors.New("manifest.json lists no images")
			}
			for i, e := range entries {
				target, err := s.dockerEntry(lease, e, resolve)
				if err != nil {
					return fmt.Errorf("manifest.json[%d]: %w", i, err)
				}
				tags := e.RepoTags
				if len(tags) == 0 {
					todo = append(todo, named{"", target})
				}
				for _, t := range tags {
					n, err := NormalizeName(t)
					if err != nil {
						return fmt.Errorf("manifest.json[%d]: %w", i, err)
					}
					todo = append(todo, named{n, target})
				}
			}
		case docs["index.json"] != nil:
			if docs["oci-layout"] == nil {
				return errors.New("index.json without oci-layout: not an OCI image layout")
			}
			var layout ocispec.ImageLayout
			if err := json.Unmarshal(docs["oci-layout"], &layout); err != nil || layout.Version == "" {
				return fmt.Errorf("oci-layout is not a layout file (%v)", err)
			}
			idx, err := ParseIndex(docs["index.json"], ocispec.MediaTypeImageIndex)
			if err != nil {
				return fmt.Errorf("index.json: %w", err)
			}
			if len(idx.Manifests) == 0 {
				return errors.New("index.json lists no images")
			}
			for _, d := range idx.Manifests {
				todo = append(todo, named{layoutName(d), d})
			}
		default:
			return errors.New("neither a docker-archive (manifest.json) nor an OCI archive (oci-layout, index.json)")
		}
		// Everything must be there and well-formed for this host before
		// any name is recorded.
		for _, t := range todo {
			m, _, err := s.Manifest(t.target, "")
			if err != nil {
				return err
			}
			if _, err := s.Config(m); err != nil {
				return err
			}
			for i, l := range m.Layers {
				if !s.Content.Has(l.Digest) {
					return fmt.Errorf("manifest %s names layer %d %s, which the archive does not hold", t.target.Digest, i, l.Digest)
				}
			}
		}
		for _, t := range todo {
			name := t.name
			if name == "" {
				// Docker keeps such images untagged; Berth names them
				// by digest so that they are listed and kept.
				name = "sha256:" + t.target.Digest.Encoded()
			}
			if err := s.Put(name, t.target, nil); err != nil {
				return err
			}
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return names, nil
}

// maxArchiveDoc bounds the JSON files of an archive that are read into
// memory.
const maxArchiveDoc = 8 << 20

// readArchive stores every file of the archive as a blob (those under
// blobs/ checked against the digest their name says) and keeps the
// layout's JSON documents.
func (s *Store) readArchive(lease string, r io.Reader) (files map[string]archiveBlob, links map[string]string, docs map[string][]byte, err error) {
	files = map[string]archiveBlob{}
	links = map[string]string{}
	docs = map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("archive: %w", err)
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		name := cleanArchivePath(h.Name)
		if name == "" {
			return nil, nil, nil, fmt.Errorf("archive entry %q: path outside the archive", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			target := h.Linkname
			if h.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), target)
			}
			if links[name] = cleanArchivePath(target); links[name] == "" {
				return nil, nil, nil, fmt.Errorf("archive entry %q: link outside the archive", h.Name)
			}
			continue
		case tar.TypeReg:
		default:
			continue
		}
		switch name {
		case "manifest.json", "index.json", "oci-layout", "repositories":
			if h.Size > maxArchiveDoc {
				return nil, nil, nil, fmt.Errorf("archive entry %s is %d bytes: too large", name, h.Size)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("archive entry %s: %w", name, err)
			}
			docs[name] = b
			continue
		}
		if strings.HasSuffix(name, "/json") || strings.HasSuffix(name, "/VERSION") {
			continue // docker's legacy per-layer metadata; nothing needs it
		}
		var expected digest.Digest
		if rest, ok := strings.CutPrefix(name, "blobs/"); ok {
			alg, enc, _ := strings.Cut(rest, "/")
			expected = digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
			if err := expected.Validate(); err != nil {
				return nil, nil, nil, fmt.Errorf("archive entry %s: not a blob name: %w", name, err)
			}
		}
		b, err := s.storeArchiveFile(lease, name, tr, h.Size, expected)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("archive entry %s: %w", name, err)
		}
		files[name] = b
	}
	return files, links, docs, nil
}

func (s *Store) storeArchiveFile(lease, name string, r io.Reader, size int64, expected digest.Digest) (archiveBlob, error) {
	if expected != "" {
		if err := s.leaseContent(lease, expected); err != nil {
			return archiveBlob{}, err
		}
	}
	w, err := s.Content.Writer("load-"+lease+"-"+name, expected, size)
	if errors.Is(err, content.ErrExists) {
		return archiveBlob{expected, size}, nil
	}
	if err != nil {
		return archiveBlob{}, err
	}
	if w.Offset() > 0 {
		if err := w.Truncate(0); err != nil {
			w.Close()
			return archiveBlob{}, err
		}
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return archiveBlob{}, err
	}
	d := w.Digest()
	if expected == "" {
		if err := s.leaseContent(lease, d); err != nil {
			w.Abort()
			return archiveBlob{}, err
		}
	}
	got, err := w.Commit(size, expected)
	if err != nil && !errors.Is(err, content.ErrExists) {
		return archiveBlob{}, err
	}
	return archiveBlob{got, size}, nil
}

// cleanArchivePath is a file's path inside an archive, or "" if it would
// leave it.
func cleanArchivePath(p string) string {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return ""
		}
	}
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// dockerEntry turns one manifest.json entry into a stored Docker schema 2
// manifest and returns its descriptor.
func (s *Store) dockerEntry(lease string, e dockerManifestEntry, resolve func(string) (archiveBlob, error)) (ocispec.Descriptor, error) {
	cfg, err := resolve(e.Config)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	man := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: MediaTypeDockerManifest,
		Config:    ocispec.Descriptor{MediaType: MediaTypeDockerConfig, Digest: cfg.digest, Size: cfg.size},
	}
	for i, p := range e.Layers {
		b, err := resolve(p)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("layer %d: %w", i, err)
		}
		mt, err := s.layerMediaType(b.digest)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("layer %d: %w", i, err)
		}
		man.Layers = append(man.Layers, ocispec.Descriptor{MediaType: mt, Digest: b.digest, Size: b.size})
	}
	return s.writeJSON(lease, MediaTypeDockerManifest, man)
}

// layerMediaType tells a stored layer's compression from its first bytes:
// docker-archive does not say.
func (s *Store) layerMediaType(d digest.Digest) (string, error) {
	r, err := s.Content.Open(d)
	if err != nil {
		return "", err
	}
	defer r.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(r, head)
	switch layer.Detect(head[:n]) {
	case layer.Gzip:
		return MediaTypeDockerLayer, nil
	case layer.Zstd:
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return mediaTypeDockerLayerTar, nil
}

// layoutName is the name an OCI layout gives an index entry: containerd's
// annotation, or OCI's ref name if it is a full reference (skopeo puts
// only a tag there, which names nothing on its own).
func layoutName(d ocispec.Descriptor) string {
	for _, a := range []string{annotationContainerdName, annotationRefName} {
		v := d.Annotations[a]
		if v == "" {
			continue
		}
		if _, err := reference.ParseNormalized(v); err == nil && (strings.ContainsAny(v, "/:@") || a == annotationContainerdName) {
			if n, err := NormalizeName(v); err == nil {
				return n
			}
		}
	}
	return ""
}

// Archive formats Save writes.
const (
	FormatOCI    = "oci-archive"
	FormatDocker = "docker-archive"
)

// Save writes images as one archive. docker-archive holds each image's
// manifest for this host (what `docker load` reads), and is an OCI layout
// at the same time, as Docker 25 writes it; oci-archive holds each
// image's whole index where all of it is present.
func (s *Store) Save(w io.Writer, names []string, format string) error {
	if format != FormatOCI && format != FormatDocker {
		return fmt.Errorf("archive format %q: want %s or %s", format, FormatOCI, FormatDocker)
	}
	if len(names) == 0 {
		return errors.New("no image to save")
	}
	tw := tar.NewWriter(w)
	written := map[digest.Digest]bool{}
	var index ocispec.Index
	index.SchemaVersion = 2
	index.MediaType = ocispec.MediaTypeImageIndex
	var dockerEntries []dockerManifestEntry
	for _, n := range names {
		img, err := s.Get(n)
		if err != nil {
			return err
		}
		target := img.Target
		var blobs []ocispec.Descriptor
		if format == FormatOCI {
			blobs, err = s.reachable(target)
		}
		if format == FormatDocker || err != nil {
			// The host's manifest alone.
			m, desc, merr := s.Manifest(target, "")
			if merr != nil {
				return fmt.Errorf("%s: %w", n, merr)
			}
			target = desc
			blobs = append([]ocispec.Descriptor{desc, m.Config}, m.Layers...)
			if format == FormatDocker {
				e := dockerManifestEntry{Config: blobPath(m.Config.Digest)}
				if tag := repoTag(img.Name); tag != "" {
					e.RepoTags = []string{tag}
				}
				for _, l := range m.Layers {
					e.Layers = append(e.Layers, blobPath(l.Digest))
				}
				dockerEntries = append(dockerEntries, e)
			}
		}
		for _, b := range blobs {
			if written[b.Digest] {
				continue
			}
			if err := s.writeBlobEntry(tw, b.Digest); err != nil {
				return err
			}
			written[b.Digest] = true
		}
		desc := ocispec.Descriptor{MediaType: target.MediaType, Digest: target.Digest, Size: target.Size, Platform: target.Platform}
		if !strings.HasPrefix(img.Name, "sha256:") {
			desc.Annotations = map[string]string{annotationRefName: img.Name, annotationContainerdName: img.Name}
		}
		index.Manifests = append(index.Manifests, desc)
	}
	docs := map[string]any{
		"oci-layout": ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion},
		"index.json": index,
	}
	if format == FormatDocker {
		docs["manifest.json"] = dockerEntries
	}
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, err := json.Marshal(docs[k])
		if err != nil {
			return err
		}
		if err := writeTarFile(tw, k, b); err != nil {
			return err
		}
	}
	return tw.Close()
}

// repoTag is a name as docker-archive's RepoTags hold it: familiar, with
// its tag and without a digest (docker load refuses a digest there). A
// name without a tag has none.
func repoTag(name string) string {
	ref, err := reference.ParseNormalized(name)
	if err != nil || ref.Tag == "" {
		return ""
	}
	ref.Digest = ""
	return ref.Familiar()
}

func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// archiveTime is the time of every entry Save writes: archives of the
// same images are the same bytes.
var archiveTime = time.Unix(0, 0)

func writeTarFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: archiveTime, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func (s *Store) writeBlobEntry(tw *tar.Writer, d digest.Digest) error {
	r, err := s.Content.Open(d)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := tw.WriteHeader(&tar.Header{Name: blobPath(d), Mode: 0o444, Size: r.Size(), ModTime: archiveTime, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	// Read through the verifying reader: a blob that rotted on disk
	// fails the save rather than going out.
	_, err = io.Copy(tw, r)
	return err
}

// reachable lists a target's blobs: the target, and for an index or
// manifest everything it names. It fails if any is missing.
func (s *Store) reachable(d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	return s.reachableFrom(d, 0)
}

// Reachable lists a target's blobs (see reachable): an error says the
// store lacks some of it, as an index pulled for one platform does.
func (s *Store) Reachable(d ocispec.Descriptor) ([]ocispec.Descriptor, error) { return s.reachable(d) }

func (s *Store) reachableFrom(d ocispec.Descriptor, depth int) ([]ocispec.Descriptor, error) {
	if depth > 8 {
		return nil, errors.New("indexes nested too deep")
	}
	if !s.Content.Has(d.Digest) {
		return nil, fmt.Errorf("%s: %w", d.Digest, content.ErrNotFound)
	}
	kids, m, err := s.children(d)
	if err != nil {
		return nil, err
	}
	out := []ocispec.Descriptor{d}
	for _, k := range kids {
		if m != nil {
			// A config or layer: there, or the image is incomplete.
			if !s.Content.Has(k.Digest) {
				return nil, fmt.Errorf("%s: %w", k.Digest, content.ErrNotFound)
			}
			out = append(out, k)
			continue
		}
		sub, err := s.reachableFrom(k, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}
