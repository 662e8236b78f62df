// Package image turns image names into runnable root filesystems, the way
// containerd's content store, image store and snapshotters do together:
// blobs by digest (image/content), names and records (image/metadata), and
// unpacked layers (image/snapshot), kept consistent by leases and garbage
// collection.
package image

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/metadata"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/snapshot"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// ErrNotFound: no image by that name or ID.
var ErrNotFound = errors.New("no such image")

// Store is an image store under one root directory.
type Store struct {
	root      string
	Content   *content.Store
	DB        *metadata.DB
	Snapshots *snapshot.Snapshotter
	log       *slog.Logger
}

// Options configure Open.
type Options struct {
	// Snapshotter is the snapshot driver: "" (overlay where it works),
	// "overlay" or "copy".
	Snapshotter snapshot.Driver
	Logger      *slog.Logger
}

// Open opens (creating) the store under root.
func Open(root string, o Options) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		return nil, err
	}
	db, err := metadata.Open(filepath.Join(root, "metadata.db"))
	if err != nil {
		return nil, err
	}
	sn, err := snapshot.New(filepath.Join(root, "snapshots"), db, o.Snapshotter)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{root: root, Content: cs, DB: db, Snapshots: sn, log: log}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// tmpDir is for work files that must be on the store's file system.
func (s *Store) tmpDir() (string, error) {
	d := filepath.Join(s.root, "tmp")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(d, "work-")
}

// NormalizeName turns a user's image name into the full form images are
// stored under, as Docker does: "busybox" is
// "docker.io/library/busybox:latest"; a name with a digest keeps it.
func NormalizeName(name string) (string, error) {
	ref, err := reference.ParseNormalized(name)
	if err != nil {
		return "", fmt.Errorf("image name %w", err)
	}
	return ref.WithDefaultTag().String(), nil
}

// FamiliarName is the short form of a stored name, as docker prints it
// ("busybox:latest"); names that are digests stay as they are.
func FamiliarName(name string) string {
	ref, err := reference.ParseNormalized(name)
	if err != nil {
		return name
	}
	return ref.Familiar()
}

// Image is one named image with what ls and inspect show of it.
type Image struct {
	metadata.Image
	// ID is the config's digest for the host's platform (Docker's image
	// ID), or the target's digest if the image has nothing for it.
	ID digest.Digest `json:"id"`
}

// Get finds an image by name (normalized), or by ID or a prefix of one
// (at least 4 hex digits, "sha256:" optional) if that names exactly one.
func (s *Store) Get(nameOrID string) (Image, error) {
	var img Image
	if name, err := NormalizeName(nameOrID); err == nil {
		err := s.DB.View(func(tx *bolt.Tx) error {
			m, err := metadata.GetImage(tx, name)
			img.Image = m
			return err
		})
		if err == nil {
			img.ID = s.imageID(img.Image)
			return img, nil
		}
		if !errors.Is(err, metadata.ErrNotFound) {
			return img, err
		}
	}
	hex := strings.TrimPrefix(nameOrID, "sha256:")
	if len(hex) >= 4 && isHex(hex) {
		all, err := s.List()
		if err != nil {
			return img, err
		}
		var found []Image
		for _, i := range all {
			if strings.HasPrefix(i.ID.Encoded(), hex) || strings.HasPrefix(i.Target.Digest.Encoded(), hex) {
				found = append(found, i)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		if len(found) > 1 {
			// One ID may have several names; any of them will do
			// for reading, but not for removal (see Remove).
			same := true
			for _, f := range found {
				same = same && f.ID == found[0].ID
			}
			if same {
				return found[0], nil
			}
			return img, fmt.Errorf("%q matches %d images: give more of the ID", nameOrID, len(found))
		}
	}
	return img, fmt.Errorf("%s: %w", nameOrID, ErrNotFound)
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// imageID is the config digest of the image's manifest for this host.
func (s *Store) imageID(img metadata.Image) digest.Digest {
	m, _, err := s.Manifest(img.Target, "")
	if err != nil {
		return img.Target.Digest
	}
	return m.Config.Digest
}

// List returns all images, sorted by name.
func (s *Store) List() ([]Image, error) {
	all, err := s.Records()
	if err != nil {
		return nil, err
	}
	out := make([]Image, len(all))
	for i, m := range all {
		out[i] = Image{Image: m, ID: s.imageID(m)}
	}
	return out, nil
}

// Records returns every image's record, by name, without reading their
// manifests (List does, for their IDs; Describe does too).
func (s *Store) Records() ([]metadata.Image, error) {
	var all []metadata.Image
	err := s.DB.View(func(tx *bolt.Tx) (err error) {
		all, err = metadata.Images(tx)
		return err
	})
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, err
}

// Put names target. An existing name is repointed.
func (s *Store) Put(name string, target ocispec.Descriptor, labels map[string]string) error {
	return s.DB.Update(func(tx *bolt.Tx) error {
		return metadata.PutImage(tx, metadata.Image{Name: name, Target: target, Labels: labels})
	})
}

// Tag gives the image src the name dst as well.
func (s *Store) Tag(src, dst string) (string, error) {
	img, err := s.Get(src)
	if err != nil {
		return "", err
	}
	name, err := NormalizeName(dst)
	if err != nil {
		return "", err
	}
	// A name with a digest says what it names: it must be that.
	if ref, err := reference.ParseNormalized(name); err == nil && ref.Digest != "" && ref.Digest != img.Target.Digest {
		return "", fmt.Errorf("%s names %s, but the image is %s", dst, ref.Digest, img.Target.Digest)
	}
	return name, s.Put(name, img.Target, img.Labels)
}

// Remove removes image names. A name removes only itself; an ID removes
// every name of that image, as `docker rmi ID` does when forced. Content
// and snapshots go at the next Prune.
func (s *Store) Remove(nameOrID string, allNames bool) ([]string, error) {
	img, err := s.Get(nameOrID)
	if err != nil {
		return nil, err
	}
	names := []string{img.Name}
	if name, nerr := NormalizeName(nameOrID); nerr != nil || name != img.Name {
		// Given by ID: every name of it.
		all, err := s.List()
		if err != nil {
			return nil, err
		}
		names = nil
		for _, i := range all {
			if i.ID == img.ID {
				names = append(names, i.Name)
			}
		}
		if len(names) > 1 && !allNames {
			return nil, fmt.Errorf("image %s has %d names (%s): remove them by name, or force", nameOrID, len(names), strings.Join(names, ", "))
		}
	}
	err = s.DB.Update(func(tx *bolt.Tx) error {
		for _, n := range names {
			if err := metadata.DeleteImage(tx, n); err != nil {
				return err
			}
		}
		return nil
	})
	return names, err
}

// Manifest resolves a target (manifest or index) to the manifest for a
// platform ("" = the host's), returning it with its descriptor.
func (s *Store) Manifest(target ocispec.Descriptor, platform string) (ocispec.Manifest, ocispec.Descriptor, error) {
	match, err := PlatformMatcher(platform)
	if err != nil {
		return ocispec.Manifest{}, ocispec.Descriptor{}, err
	}
	desc := target
	for depth := 0; ; depth++ {
		if depth > 4 {
			return ocispec.Manifest{}, desc, errors.New("indexes nested too deep")
		}
		b, err := s.Content.ReadBlob(desc.Digest, maxManifestSize)
		if err != nil {
			if depth > 0 {
				p := platformOf(desc)
				err = fmt.Errorf("the index names manifest %s for %s/%s%s, which the store does not have: %w",
					desc.Digest, p.OS, p.Architecture, variant(p.Variant), err)
			}
			return ocispec.Manifest{}, desc, err
		}
		mt := desc.MediaType
		if mt == "" {
			if mt, err = DetectMediaType(b); err != nil {
				return ocispec.Manifest{}, desc, fmt.Errorf("%s: %w", desc.Digest, err)
			}
		}
		if IsManifest(mt) {
			m, err := ParseManifest(b, mt)
			if err != nil {
				return m, desc, fmt.Errorf("manifest %s: %w", desc.Digest, err)
			}
			desc.MediaType = mt
			if depth == 0 && platform != "" {
				// Not chosen from an index: the config says what it
				// runs on.
				c, err := s.Config(m)
				if err != nil {
					return m, desc, err
				}
				if !match.Match(c.Platform) {
					return m, desc, fmt.Errorf("the image is for %s/%s%s, not %s", c.OS, c.Architecture, variant(c.Variant), platform)
				}
			}
			return m, desc, nil
		}
		if !IsIndex(mt) {
			return ocispec.Manifest{}, desc, fmt.Errorf("%s: mediaType %q is neither a manifest nor an index", desc.Digest, mt)
		}
		idx, err := ParseIndex(b, mt)
		if err != nil {
			return ocispec.Manifest{}, desc, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		best, err := Choose(idx, match, platform)
		if err != nil {
			return ocispec.Manifest{}, desc, fmt.Errorf("index %s %w", desc.Digest, err)
		}
		desc = best
	}
}

// Choose picks an index's manifest for a platform (platform is only for
// the error; "" is this host's).
func Choose(idx ocispec.Index, match Matcher, platform string) (ocispec.Descriptor, error) {
	var best *ocispec.Descriptor
	var offered []string
	for i := range idx.Manifests {
		d := idx.Manifests[i]
		p := platformOf(d)
		if d.Platform == nil {
			// An index entry without a platform (attestations, or a
			// nested index) is taken only if nothing else is.
			if best == nil && !isAttestation(d) {
				best = &idx.Manifests[i]
			}
			continue
		}
		offered = append(offered, p.OS+"/"+p.Architecture+variant(p.Variant))
		if match.Match(p) && (best == nil || best.Platform == nil || match.Less(p, *best.Platform)) {
			best = &idx.Manifests[i]
		}
	}
	if best == nil {
		want := platform
		if want == "" {
			want = "this host's platform"
		}
		return ocispec.Descriptor{}, fmt.Errorf("has no manifest for %s (it has %s)", want, strings.Join(offered, ", "))
	}
	return *best, nil
}

func variant(v string) string {
	if v == "" {
		return ""
	}
	return "/" + v
}

// isAttestation: BuildKit puts provenance documents in indexes as
// "unknown/unknown" manifests with this annotation.
func isAttestation(d ocispec.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] == "attestation-manifest"
}

// Config reads and checks a manifest's image config.
func (s *Store) Config(m ocispec.Manifest) (ocispec.Image, error) {
	b, err := s.Content.ReadBlob(m.Config.Digest, maxConfigSize)
	if err != nil {
		return ocispec.Image{}, fmt.Errorf("image config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return c, fmt.Errorf("image config %s: %w", m.Config.Digest, err)
	}
	if len(c.RootFS.DiffIDs) != len(m.Layers) {
		return c, fmt.Errorf("image config %s lists %d layers (rootfs.diff_ids), its manifest %d", m.Config.Digest, len(c.RootFS.DiffIDs), len(m.Layers))
	}
	return c, nil
}

// WithLease runs fn under a lease, for writers outside this package (a
// registry pull): fn names what it writes with LeaseContent before writing.
func (s *Store) WithLease(fn func(id string) error) error { return s.withLease(fn) }

// LeaseContent adds blobs to a lease WithLease started.
func (s *Store) LeaseContent(id string, ds ...digest.Digest) error { return s.leaseContent(id, ds...) }

// withLease runs fn with a lease that protects what fn writes from a
// concurrent garbage collection until fn's result is recorded. The lease
// expires on its own if this process dies.
func (s *Store) withLease(fn func(id string) error) error {
	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	if err := s.DB.Update(func(tx *bolt.Tx) error { return metadata.AddLease(tx, id, 24*time.Hour) }); err != nil {
		return err
	}
	err := fn(id)
	if derr := s.DB.Update(func(tx *bolt.Tx) error { return metadata.DeleteLease(tx, id) }); err == nil {
		err = derr
	}
	return err
}

func (s *Store) leaseContent(id string, ds ...digest.Digest) error {
	return s.DB.Update(func(tx *bolt.Tx) error { return metadata.LeaseContent(tx, id, ds...) })
}

func (s *Store) leaseSnapshot(id string, names ...string) error {
	return s.DB.Update(func(tx *bolt.Tx) error { return metadata.LeaseSnapshot(tx, id, names...) })
}

// sourcePrefix starts the content labels that record where a blob was
// pulled from: sourcePrefix+registry = repositories, comma-separated. A
// push to that registry mounts the blob from there, as containerd's
// distribution.source labels let it.
const sourcePrefix = "berth.io/distribution.source."

// AddSource records that the blobs ds came from repository repo of
// registry.
func (s *Store) AddSource(registry, repo string, ds ...digest.Digest) error {
	key := sourcePrefix + registry
	return s.DB.Update(func(tx *bolt.Tx) error {
		for _, d := range ds {
			l := metadata.ContentLabels(tx, d)
			repos := strings.Split(l[key], ",")
			if l[key] == "" {
				repos = nil
			}
			if slices.Contains(repos, repo) {
				continue
			}
			// The most recent first, and only a few: a mount needs one.
			repos = append([]string{repo}, repos...)
			if len(repos) > 5 {
				repos = repos[:5]
			}
			if l == nil {
				l = map[string]string{}
			}
			l[key] = strings.Join(repos, ",")
			if err := metadata.SetContentLabels(tx, d, l); err != nil {
				return err
			}
		}
		return nil
	})
}

// Sources lists the repositories of registry that blob d was pulled
// from, the most recent first.
func (s *Store) Sources(registry string, d digest.Digest) []string {
	var v string
	_ = s.DB.View(func(tx *bolt.Tx) error {
		v = metadata.ContentLabels(tx, d)[sourcePrefix+registry]
		return nil
	})
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}
