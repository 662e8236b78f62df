package image

import (
	"errors"
	"fmt"
	"time"

	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/metadata"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// PruneResult is what a garbage collection removed.
type PruneResult struct {
	Blobs      []digest.Digest `json:"blobs"`
	BlobBytes  int64           `json:"blobBytes"`
	Snapshots  []string        `json:"snapshots"`
	Orphans    int             `json:"orphanDirectories"`
	Ingests    int             `json:"abandonedIngests"`
	LeasesDone int             `json:"expiredLeases"`
}

// Prune removes what nothing refers to: blobs that no image (through its
// index, manifests and configs) and no lease names, committed snapshots
// that are no image's layer chain and under no active snapshot or lease,
// directories and ingests that crashed commands left. The database is
// held for the whole collection, so no other command changes the store
// meanwhile.
func (s *Store) Prune() (PruneResult, error) {
	var res PruneResult
	if err := s.DB.Hold(); err != nil {
		return res, err
	}
	defer s.DB.Release()

	now := time.Now()
	blobs := map[digest.Digest]bool{}
	snaps := map[string]bool{}
	// A blob committed after a live lease began may be one its owner
	// wrote but has not yet named in the lease (the digest of a blob of
	// unknown content is known only once it is written).
	var protectAfter time.Time
	var images []metadata.Image
	var all []metadata.Snapshot
	err := s.DB.Update(func(tx *bolt.Tx) error {
		var err error
		if images, err = metadata.Images(tx); err != nil {
			return err
		}
		leases, err := metadata.Leases(tx)
		if err != nil {
			return err
		}
		for _, l := range leases {
			if now.After(l.Expires) {
				if err := metadata.DeleteLease(tx, l.ID); err != nil {
					return err
				}
				res.LeasesDone++
				continue
			}
			for _, d := range l.Content {
				blobs[d] = true
			}
			for _, n := range l.Snapshots {
				snaps[n] = true
			}
			if protectAfter.IsZero() || l.Created.Before(protectAfter) {
				protectAfter = l.Created
			}
		}
		all, err = metadata.Snapshots(tx)
		return err
	})
	if err != nil {
		return res, err
	}
	for _, img := range images {
		if err := s.markContent(img.Target, blobs, snaps, 0); err != nil {
			return res, fmt.Errorf("image %s: %w", img.Name, err)
		}
	}
	// Active snapshots and views are containers' and users' own; they
	// and everything under them stay.
	byName := map[string]metadata.Snapshot{}
	for _, sn := range all {
		byName[sn.Name] = sn
	}
	for _, sn := range all {
		if sn.Kind != metadata.Committed {
			snaps[sn.Name] = true
		}
	}
	for name := range snaps {
		for p := byName[name].Parent; p != "" && !snapsHas(snaps, p); p = byName[p].Parent {
			snaps[p] = true
		}
	}

	err = s.Content.Walk(func(i content.Info) error {
		if blobs[i.Digest] || (!protectAfter.IsZero() && !i.ModTime.Before(protectAfter)) {
			return nil
		}
		if err := s.Content.Delete(i.Digest); err != nil {
			return err
		}
		res.Blobs = append(res.Blobs, i.Digest)
		res.BlobBytes += i.Size
		return nil
	})
	if err != nil {
		return res, err
	}
	if len(res.Blobs) > 0 {
		err = s.DB.Update(func(tx *bolt.Tx) error {
			for _, d := range res.Blobs {
				if err := metadata.SetContentLabels(tx, d, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return res, err
		}
	}

	// Snapshots go children first: keep removing the unreferenced ones
	// that nothing is built on until none is left.
	for {
		removed := false
		left, err := s.Snapshots.List()
		if err != nil {
			return res, err
		}
		for _, sn := range left {
			if snaps[sn.Name] || hasChild(left, sn.Name) {
				continue
			}
			if err := s.Snapshots.Remove(sn.Name); err != nil {
				return res, fmt.Errorf("snapshot %s: %w", sn.Name, err)
			}
			res.Snapshots = append(res.Snapshots, sn.Name)
			removed = true
		}
		if !removed {
			break
		}
	}
	if res.Orphans, err = s.Snapshots.Orphans(); err != nil {
		return res, err
	}
	if res.Ingests, err = s.Content.RemoveAbandoned(); err != nil {
		return res, err
	}
	return res, nil
}

func snapsHas(m map[string]bool, k string) bool { return m[k] }

func hasChild(all []metadata.Snapshot, name string) bool {
	for _, c := range all {
		if c.Parent == name {
			return true
		}
	}
	return false
}

// markContent marks a descriptor's blob and everything it refers to, and
// the snapshots of every image config it reaches. Blobs that are missing
// (an index's other platforms, never fetched) are skipped.
func (s *Store) markContent(d ocispec.Descriptor, blobs map[digest.Digest]bool, snaps map[string]bool, depth int) error {
	if depth > 8 {
		return errors.New("indexes nested too deep")
	}
	blobs[d.Digest] = true
	if !s.Content.Has(d.Digest) {
		return nil
	}
	mt := d.MediaType
	if !IsManifest(mt) && !IsIndex(mt) {
		if mt != "" {
			return nil // a layer, a config, or another artifact's blob
		}
	}
	b, err := s.Content.ReadBlob(d.Digest, maxManifestSize)
	if err != nil {
		return err
	}
	if mt == "" {
		if mt, err = DetectMediaType(b); err != nil {
			return nil // not a document that refers to others
		}
	}
	switch {
	case IsIndex(mt):
		idx, err := ParseIndex(b, mt)
		if err != nil {
			return err
		}
		for _, m := range idx.Manifests {
			if err := s.markContent(m, blobs, snaps, depth+1); err != nil {
				return err
			}
		}
	case IsManifest(mt):
		m, err := ParseManifest(b, mt)
		if err != nil {
			return err
		}
		blobs[m.Config.Digest] = true
		for _, l := range m.Layers {
			blobs[l.Digest] = true
		}
		if c, err := s.Config(m); err == nil {
			for _, id := range ChainIDs(c.RootFS.DiffIDs) {
				snaps[id.String()] = true
			}
		}
	}
	return nil
}
