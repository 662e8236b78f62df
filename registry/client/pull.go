package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PullOptions shape a pull.
type PullOptions struct {
	// Platform of the manifest to fetch from an index ("" = this host's).
	Platform string
	// NoUnpack leaves the layers as blobs.
	NoUnpack bool
	// Progress hears of every blob (nil: nothing).
	Progress Progress
	// Parallel downloads at once (0: 4).
	Parallel int
}

// PullResult says what a pull did.
type PullResult struct {
	Name    string
	Target  ocispec.Descriptor
	Fetched int // blobs downloaded now; the others were in the store
}

// Pull fetches an image into the store as docker pull does: the index or
// manifest named, the manifest for the platform, then config and layers
// side by side, each verified by digest, under a lease until the name
// points at them; then unpacks it. What the store has is not fetched again.
func (c *Client) Pull(ctx context.Context, s *image.Store, name string, o PullOptions) (PullResult, error) {
	ref, err := reference.ParseNormalized(name)
	if err != nil {
		return PullResult{}, fmt.Errorf("image name %w", err)
	}
	ref = ref.WithDefaultTag()
	res := PullResult{Name: ref.String()}
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	match, err := image.PlatformMatcher(o.Platform)
	if err != nil {
		return res, err
	}
	repo := c.Repository(ref, true)
	tagOrDigest := ref.Tag
	if ref.Digest != "" {
		tagOrDigest = ref.Digest.String()
	}
	err = s.WithLease(func(lease string) error {
		b, desc, err := repo.Manifest(ctx, tagOrDigest)
		if err != nil {
			return err
		}
		res.Target = desc
		if err := storeDoc(s, lease, b, desc); err != nil {
			return err
		}
		// Down the indexes to the platform's manifest.
		for depth := 0; image.IsIndex(desc.MediaType); depth++ {
			if depth > 4 {
				return errors.New("indexes nested too deep")
			}
			idx, err := image.ParseIndex(b, desc.MediaType)
			if err != nil {
				return fmt.Errorf("index %s: %w", desc.Digest, err)
			}
			child, err := image.Choose(idx, match, o.Platform)
			if err != nil {
				return fmt.Errorf("%s: index %s %w", ref.Familiar(), desc.Digest, err)
			}
			if b, desc, err = repo.Manifest(ctx, child.Digest.String()); err != nil {
				return err
			}
			if err := storeDoc(s, lease, b, desc); err != nil {
				return err
			}
		}
		m, err := image.ParseManifest(b, desc.MediaType)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		ds := []digest.Digest{m.Config.Digest}
		for _, l := range m.Layers {
			ds = append(ds, l.Digest)
		}
		if err := s.LeaseContent(lease, ds...); err != nil {
			return err
		}
		// The config first: its diff IDs let each layer be unpacked
		// as soon as it is there, while the others download.
		n, err := fetchAll(ctx, repo, s, []ocispec.Descriptor{m.Config}, o, nil)
		res.Fetched += n
		if err != nil {
			return err
		}
		c, err := s.Config(m)
		if err != nil {
			return err
		}
		var u *image.Unpacker
		if !o.NoUnpack {
			if u, err = s.NewUnpacker(lease, m, c); err != nil {
				return err
			}
			if up, ok := o.Progress.(UnpackProgress); ok {
				u.Progress = up.Unpacking
			}
		}
		arrived := func(d digest.Digest) {
			if u != nil {
				u.Arrived(d)
			}
		}
		n, err = fetchAll(ctx, repo, s, m.Layers, o, arrived)
		res.Fetched += n
		if err != nil {
			if u != nil {
				u.Abort()
			}
			return err
		}
		if u != nil {
			if _, err := u.Wait(); err != nil {
				return err
			}
		}
		// A push of these blobs to another repository of the registry
		// mounts them from this one.
		if err := s.AddSource(ref.Domain, ref.Path, ds...); err != nil {
			return err
		}
		// Named only once everything it needs is there and verified.
		return s.Put(res.Name, res.Target, nil)
	})
	if err != nil {
		return res, fmt.Errorf("pull %s: %w", ref.Familiar(), err)
	}
	return res, nil
}

// UnpackProgress is a Progress that also hears of layers being unpacked.
type UnpackProgress interface {
	Progress
	Unpacking(d ocispec.Descriptor, done bool, err error)
}

func storeDoc(s *image.Store, lease string, b []byte, desc ocispec.Descriptor) error {
	if err := s.LeaseContent(lease, desc.Digest); err != nil {
		return err
	}
	return s.Content.WriteBlob("pull-"+desc.Digest.String(), bytes.NewReader(b), desc)
}

// fetchAll downloads the blobs the store lacks, o.Parallel at a time, in
// order, telling arrived (if set) of each blob in the store, and returns
// how many it fetched.
func fetchAll(ctx context.Context, repo *Repo, s *image.Store, blobs []ocispec.Descriptor, o PullOptions, arrived func(digest.Digest)) (int, error) {
	if arrived == nil {
		arrived = func(digest.Digest) {}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fetched := 0
	seen := map[digest.Digest]bool{}
	for _, b := range blobs {
		if seen[b.Digest] {
			continue
		}
		seen[b.Digest] = true
		if s.Content.Has(b.Digest) {
			arrived(b.Digest)
			continue
		}
		// Taken here, not in the goroutine, so that downloads start in
		// the manifest's order: the lowest layers, unpacked first by the
		// copy driver, come first.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := repo.FetchBlob(ctx, s.Content, "pull-"+b.Digest.String(), b, o.Progress)
			if err == nil {
				arrived(b.Digest)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				cancel() // the pull fails; the others stop
				return
			}
			fetched++
		}()
	}
	wg.Wait()
	if len(errs) == 0 && ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return fetched, errors.Join(errs...)
}

type noProgress struct{}

func (noProgress) Start(ocispec.Descriptor, int64) {}
func (noProgress) Add(ocispec.Descriptor, int64)   {}
func (noProgress) Done(ocispec.Descriptor, error)  {}
