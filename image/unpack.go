package image

import (
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"sync"

	"github.com/berth-dev/berth/image/layer"
	"github.com/berth-dev/berth/image/metadata"
	"github.com/berth-dev/berth/image/snapshot"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// UnpackResult tells what an unpack did.
type UnpackResult struct {
	// ChainID names the committed snapshot of the whole image ("" for an
	// image without layers).
	ChainID digest.Digest
	// Unpacked is how many layers were unpacked now; the others were
	// there already (shared with another image, or unpacked before).
	Unpacked int
	Bytes    int64
}

// Unpack makes sure every layer of the image's manifest for platform
// ("" = host) is a committed snapshot, and returns the top one. Layers are
// checked against the config's diff IDs as they are unpacked; a layer that
// does not match is an error and leaves nothing behind.
func (s *Store) Unpack(target ocispec.Descriptor, platform string) (UnpackResult, error) {
	var res UnpackResult
	m, _, err := s.Manifest(target, platform)
	if err != nil {
		return res, err
	}
	c, err := s.Config(m)
	if err != nil {
		return res, err
	}
	chain := ChainIDs(c.RootFS.DiffIDs)
	if len(chain) == 0 {
		return res, nil
	}
	res.ChainID = chain[len(chain)-1]
	// The first layer from which the chain is missing.
	first := len(chain)
	for i := len(chain) - 1; i >= 0; i-- {
		if _, err := s.Snapshots.Stat(chain[i].String()); err != nil {
			if !errors.Is(err, metadata.ErrNotFound) {
				return res, err
			}
			first = i
			continue
		}
		break
	}
	if first == len(chain) {
		return res, nil
	}
	err = s.withLease(func(lease string) error {
		// The whole chain and every blob it comes from: the image's
		// name may be repointed, and a prune run, while this unpacks.
		names := make([]string, 0, 2*len(chain))
		for _, id := range chain {
			names = append(names, id.String())
		}
		for _, id := range chain[first:] {
			names = append(names, extractKey(lease, id))
		}
		if err := s.leaseSnapshot(lease, names...); err != nil {
			return err
		}
		blobs := []digest.Digest{target.Digest, m.Config.Digest}
		for _, l := range m.Layers {
			blobs = append(blobs, l.Digest)
		}
		if err := s.leaseContent(lease, blobs...); err != nil {
			return err
		}
		if s.Snapshots.Driver() == snapshot.Overlay {
			return s.unpackParallel(m.Layers, c.RootFS.DiffIDs, chain, first, lease, &res)
		}
		return s.unpackInOrder(m.Layers, c.RootFS.DiffIDs, chain, first, lease, &res)
	})
	return res, err
}

// unpackParallel unpacks overlay layers side by side: each goes into an
// empty directory of its own, so none waits for the one below it; they
// are stacked (committed with their parents) in order after.
func (s *Store) unpackParallel(layers []ocispec.Descriptor, diffIDs, chain []digest.Digest, first int, lease string, res *UnpackResult) error {
	n := len(chain) - first
	keys := make([]string, n)
	errs := make([]error, n)
	sizes := make([]int64, n)
	sem := make(chan struct{}, max(1, goruntime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	for j := 0; j < n; j++ {
		i := first + j
		if _, err := s.Snapshots.Stat(chain[i].String()); err == nil {
			continue // committed meanwhile (or below first, shared)
		}
		keys[j] = extractKey(lease, chain[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			sizes[j], errs[j] = s.unpackLayer(keys[j], "", layers[i], diffIDs[i], true, nil)
		}()
	}
	wg.Wait()
	cleanup := func(from int) {
		for j := from; j < n; j++ {
			if keys[j] != "" {
				_ = s.Snapshots.Remove(keys[j])
			}
		}
	}
	for j, err := range errs {
		if err != nil && !errors.Is(err, layer.ErrLinkBelow) {
			cleanup(0)
			return fmt.Errorf("layer %d (%s): %w", first+j, layers[first+j].Digest, err)
		}
	}
	for j := 0; j < n; j++ {
		i := first + j
		if keys[j] == "" {
			continue
		}
		parent := ""
		if i > 0 {
			parent = chain[i-1].String()
		}
		if errs[j] != nil {
			// It links to a file of a layer below, which had to be
			// there first: unpack it again, now over them.
			if err := s.Snapshots.Remove(keys[j]); err != nil {
				cleanup(j + 1)
				return err
			}
			lowers, err := s.Snapshots.LayerDirs(parent)
			if err == nil {
				sizes[j], err = s.unpackLayer(keys[j], "", layers[i], diffIDs[i], true, lowers)
			}
			if err != nil {
				cleanup(j)
				return fmt.Errorf("layer %d (%s): %w", i, layers[i].Digest, err)
			}
		}
		err := s.Snapshots.CommitOn(chain[i].String(), keys[j], parent)
		if err != nil && !errors.Is(err, metadata.ErrExists) {
			cleanup(j)
			return fmt.Errorf("commit layer %d: %w", i, err)
		}
		if err == nil {
			res.Unpacked++
			res.Bytes += sizes[j]
		}
	}
	return nil
}

// unpackInOrder unpacks copy-driver layers one on top of the other: each
// starts as a copy of the one below.
func (s *Store) unpackInOrder(layers []ocispec.Descriptor, diffIDs, chain []digest.Digest, first int, lease string, res *UnpackResult) error {
	for i := first; i < len(chain); i++ {
		if _, err := s.Snapshots.Stat(chain[i].String()); err == nil {
			continue
		}
		parent := ""
		if i > 0 {
			parent = chain[i-1].String()
		}
		key := extractKey(lease, chain[i])
		size, err := s.unpackLayer(key, parent, layers[i], diffIDs[i], false, nil)
		if err != nil {
			_ = s.Snapshots.Remove(key)
			return fmt.Errorf("layer %d (%s): %w", i, layers[i].Digest, err)
		}
		err = s.Snapshots.Commit(chain[i].String(), key)
		if err != nil && !errors.Is(err, metadata.ErrExists) {
			_ = s.Snapshots.Remove(key)
			return fmt.Errorf("commit layer %d: %w", i, err)
		}
		if err == nil {
			res.Unpacked++
			res.Bytes += size
		}
	}
	return nil
}

// unpackLayer prepares the active snapshot key on parent and applies one
// layer blob into it, checking the uncompressed content against diffID.
func (s *Store) unpackLayer(key, parent string, desc ocispec.Descriptor, diffID digest.Digest, overlay bool, lowers []string) (int64, error) {
	if _, err := s.Snapshots.Prepare(key, parent, nil); err != nil {
		return 0, err
	}
	dir, err := s.Snapshots.Dir(key)
	if err != nil {
		return 0, err
	}
	r, err := s.Content.Open(desc.Digest)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	st, got, err := layer.ApplyCompressed(dir, r, layer.Options{Overlay: overlay, Lowers: lowers})
	if err != nil {
		return 0, err
	}
	// The blob's own digest was checked as it was read to the end.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return 0, err
	}
	if got != diffID {
		return 0, fmt.Errorf("uncompressed content is %s, but the image config says %s (rootfs.diff_ids)", got, diffID)
	}
	return st.Bytes, nil
}

// extractPrefix starts the names of the active snapshots layers are
// unpacked into: protected by their unpack's lease alone, and garbage
// once it is gone.
const extractPrefix = "extract-"

func extractKey(lease string, chainID digest.Digest) string {
	return extractPrefix + lease + "-" + chainID.Encoded()
}
