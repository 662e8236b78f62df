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
	m, _, err := s.Manifest(target, platform)
	if err != nil {
		return UnpackResult{}, err
	}
	c, err := s.Config(m)
	if err != nil {
		return UnpackResult{}, err
	}
	if top, ok := s.unpacked(c); ok {
		return UnpackResult{ChainID: top}, nil
	}
	var res UnpackResult
	err = s.withLease(func(lease string) error {
		if err := s.leaseContent(lease, target.Digest, m.Config.Digest); err != nil {
			return err
		}
		u, err := s.NewUnpacker(lease, m, c)
		if err != nil {
			return err
		}
		for _, l := range m.Layers {
			u.Arrived(l.Digest)
		}
		res, err = u.Wait()
		return err
	})
	return res, err
}

// unpacked tells whether the whole chain of c's layers is committed, and
// its top.
func (s *Store) unpacked(c ocispec.Image) (digest.Digest, bool) {
	chain := ChainIDs(c.RootFS.DiffIDs)
	if len(chain) == 0 {
		return "", true
	}
	top := chain[len(chain)-1]
	_, err := s.Snapshots.Stat(top.String())
	return top, err == nil
}

// An Unpacker unpacks an image's layers as their blobs arrive, so that a
// pull extracts the layers it has while it downloads the others. On
// overlay each layer goes into an empty directory of its own and none
// waits for the one below it; they are stacked (committed with their
// parents) in order by Wait. With the copy driver each layer starts as a
// copy of the one below, so they are unpacked in order, each as soon as
// it and the one below are there.
type Unpacker struct {
	s       *Store
	lease   string
	layers  []ocispec.Descriptor
	diffIDs []digest.Digest
	chain   []digest.Digest
	first   int // the lowest layer whose snapshot is missing
	overlay bool
	// Progress, if set, hears when a layer starts and ends unpacking.
	// Set it before the first Arrived.
	Progress func(d ocispec.Descriptor, done bool, err error)

	mu      sync.Mutex
	keys    []string        // extract snapshot per layer from first; "" = already committed
	started []bool          // Arrived was called for the layer
	ready   []chan struct{} // closed when the layer's blob is there (copy driver)
	sizes   []int64
	errs    []error
	// committed marks the copy-driver layers this unpack committed
	// (overlay layers are committed by Wait).
	committed []bool
	sem       chan struct{}
	wg        sync.WaitGroup
	abort     chan struct{}
	aborted   sync.Once
}

// NewUnpacker starts an unpack of m's layers (with c its config) under
// lease, which the caller holds until Wait or Abort returns. The lease
// takes the layers' blobs and snapshots: the image's name may be
// repointed, and a prune run, while this unpacks.
func (s *Store) NewUnpacker(lease string, m ocispec.Manifest, c ocispec.Image) (*Unpacker, error) {
	ids := c.RootFS.DiffIDs
	if len(ids) != len(m.Layers) {
		return nil, fmt.Errorf("the manifest has %d layers, but its config lists %d diff IDs", len(m.Layers), len(ids))
	}
	u := &Unpacker{
		s: s, lease: lease, layers: m.Layers, diffIDs: ids, chain: ChainIDs(ids),
		overlay: s.Snapshots.Driver() == snapshot.Overlay,
		sem:     make(chan struct{}, max(1, goruntime.GOMAXPROCS(0))),
		abort:   make(chan struct{}),
	}
	u.first = len(u.chain)
	for i := len(u.chain) - 1; i >= 0; i-- {
		if _, err := s.Snapshots.Stat(u.chain[i].String()); err != nil {
			if !errors.Is(err, metadata.ErrNotFound) {
				return nil, err
			}
			u.first = i
			continue
		}
		break
	}
	n := len(u.chain) - u.first
	u.keys, u.started, u.sizes, u.errs = make([]string, n), make([]bool, n), make([]int64, n), make([]error, n)
	u.committed = make([]bool, n)
	u.ready = make([]chan struct{}, n)
	names := make([]string, 0, len(u.chain)+n)
	for _, id := range u.chain {
		names = append(names, id.String())
	}
	for j := range n {
		u.keys[j] = extractKey(lease, u.chain[u.first+j])
		u.ready[j] = make(chan struct{})
		names = append(names, u.keys[j])
	}
	if err := s.leaseSnapshot(lease, names...); err != nil {
		return nil, err
	}
	blobs := make([]digest.Digest, 0, len(m.Layers))
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest)
	}
	if err := s.leaseContent(lease, blobs...); err != nil {
		return nil, err
	}
	if !u.overlay && n > 0 {
		u.wg.Add(1)
		go u.inOrder()
	}
	return u, nil
}

// Arrived says the blob d is in the content store: the layers made of it
// may be unpacked. Blobs the image does not use are ignored.
func (u *Unpacker) Arrived(d digest.Digest) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for j := range u.keys {
		i := u.first + j
		if u.layers[i].Digest != d || u.started[j] {
			continue
		}
		u.started[j] = true
		if !u.overlay {
			close(u.ready[j])
			continue
		}
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			select {
			case u.sem <- struct{}{}:
			case <-u.abort:
				u.errs[j] = errAborted
				return
			}
			defer func() { <-u.sem }()
			if _, err := u.s.Snapshots.Stat(u.chain[i].String()); err == nil {
				u.keys[j] = "" // committed meanwhile by another unpack
				return
			}
			u.report(i, false, nil)
			u.sizes[j], u.errs[j] = u.s.unpackLayer(u.keys[j], "", u.layers[i], u.diffIDs[i], true, nil)
			if u.errs[j] == nil || errors.Is(u.errs[j], layer.ErrLinkBelow) {
				// Done, or redone over its lowers when they are stacked.
				u.report(i, true, nil)
			}
		}()
	}
}

var errAborted = errors.New("unpack aborted")

func (u *Unpacker) report(i int, done bool, err error) {
	if u.Progress != nil {
		u.Progress(u.layers[i], done, err)
	}
}

// inOrder unpacks copy-driver layers one on top of the other, each as
// soon as its blob is there, committing each before the next.
func (u *Unpacker) inOrder() {
	defer u.wg.Done()
	for j := range u.keys {
		i := u.first + j
		select {
		case <-u.ready[j]:
		case <-u.abort:
			u.errs[j] = errAborted
			return
		}
		if _, err := u.s.Snapshots.Stat(u.chain[i].String()); err == nil {
			u.keys[j] = ""
			continue
		}
		parent := ""
		if i > 0 {
			parent = u.chain[i-1].String()
		}
		u.report(i, false, nil)
		size, err := u.s.unpackLayer(u.keys[j], parent, u.layers[i], u.diffIDs[i], false, nil)
		if err == nil {
			err = u.s.Snapshots.Commit(u.chain[i].String(), u.keys[j])
			// Committed by another unpack meanwhile: as good.
			u.committed[j] = err == nil
			if errors.Is(err, metadata.ErrExists) {
				err = nil
			}
		}
		if err != nil {
			u.errs[j] = fmt.Errorf("layer %d (%s): %w", i, u.layers[i].Digest, err)
			u.report(i, true, err)
			return
		}
		u.report(i, true, nil)
		u.keys[j] = ""
		u.sizes[j] = size
	}
}

// Abort stops the unpack and removes what it extracted but did not
// commit. It waits for the extractions under way.
func (u *Unpacker) Abort() {
	u.aborted.Do(func() { close(u.abort) })
	u.wg.Wait()
	u.cleanup(0)
}

func (u *Unpacker) cleanup(from int) {
	for j := from; j < len(u.keys); j++ {
		if u.keys[j] != "" {
			_ = u.s.Snapshots.Remove(u.keys[j])
		}
	}
}

// Wait waits until every layer is unpacked, which needs Arrived for every
// layer's blob, and commits them in order. On failure it removes what it
// extracted; the layers committed before the failure stay, for the next
// unpack to build on.
func (u *Unpacker) Wait() (UnpackResult, error) {
	var res UnpackResult
	if len(u.chain) > 0 {
		res.ChainID = u.chain[len(u.chain)-1]
	}
	u.mu.Lock()
	for j, ok := range u.started {
		if !ok {
			u.mu.Unlock()
			u.Abort()
			i := u.first + j
			return res, fmt.Errorf("layer %d (%s) never arrived", i, u.layers[i].Digest)
		}
	}
	u.mu.Unlock()
	u.wg.Wait()
	if !u.overlay {
		for j, err := range u.errs {
			if err != nil {
				u.cleanup(0)
				return res, err
			}
			if u.committed[j] {
				res.Unpacked++
				res.Bytes += u.sizes[j]
			}
		}
		return res, nil
	}
	for j, err := range u.errs {
		if err != nil && !errors.Is(err, layer.ErrLinkBelow) {
			u.cleanup(0)
			i := u.first + j
			u.report(i, true, err)
			return res, fmt.Errorf("layer %d (%s): %w", i, u.layers[i].Digest, err)
		}
	}
	for j := range u.keys {
		i := u.first + j
		if u.keys[j] == "" {
			continue
		}
		parent := ""
		if i > 0 {
			parent = u.chain[i-1].String()
		}
		if u.errs[j] != nil {
			// It links to a file of a layer below, which had to be
			// there first: unpack it again, now over them.
			if err := u.s.Snapshots.Remove(u.keys[j]); err != nil {
				u.cleanup(j + 1)
				return res, err
			}
			lowers, err := u.s.Snapshots.LayerDirs(parent)
			if err == nil {
				u.sizes[j], err = u.s.unpackLayer(u.keys[j], "", u.layers[i], u.diffIDs[i], true, lowers)
			}
			if err != nil {
				u.cleanup(j)
				return res, fmt.Errorf("layer %d (%s): %w", i, u.layers[i].Digest, err)
			}
		}
		err := u.s.Snapshots.CommitOn(u.chain[i].String(), u.keys[j], parent)
		if err != nil && !errors.Is(err, metadata.ErrExists) {
			u.cleanup(j)
			return res, fmt.Errorf("commit layer %d: %w", i, err)
		}
		if err == nil {
			res.Unpacked++
			res.Bytes += u.sizes[j]
		} else {
			_ = u.s.Snapshots.Remove(u.keys[j])
		}
		u.keys[j] = ""
	}
	return res, nil
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
