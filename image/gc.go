package image

import (
	"errors"
	"fmt"
	"os"
	"strings"
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
// index, manifests and configs) and no live lease names; committed
// snapshots that are no image's layer chain and under no active snapshot
// or lease; and what killed commands left (their leases, the layers they
// were unpacking, orphan directories, ingests). The database is held
// while marking and unlinking, so no other command changes the store
// meanwhile; snapshot trees are only renamed aside then, and deleted once
// it is released.
func (s *Store) Prune() (PruneResult, error) {
	var res PruneResult
	trash, err := s.collect(&res)
	for _, dir := range trash {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove snapshot directory: %w", rerr)
		}
	}
	if err != nil {
		return res, err
	}
	if res.Orphans, err = s.Snapshots.Orphans(); err != nil {
		return res, err
	}
	if res.Ingests, err = s.Content.RemoveAbandoned(); err != nil {
		return res, err
	}
	return res, nil
}

// collect marks and sweeps with the database held, returning the snapshot
// directories to delete.
func (s *Store) collect(res *PruneResult) ([]string, error) {
	if err := s.DB.Hold(); err != nil {
		return nil, err
	}
	defer s.DB.Release()

	now := time.Now()
	blobs := map[digest.Digest]bool{}
	snaps := map[string]bool{}
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
			if !l.Live(now) {
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
		}
		all, err = metadata.Snapshots(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, img := range images {
		if err := s.markContent(img.Target, blobs, snaps, 0); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
	}
	// Active snapshots and views are containers' and bundles' roots;
	// they and everything under them stay. The layers an unpack is
	// writing stay only while its lease does.
	byName := map[string]metadata.Snapshot{}
	for _, sn := range all {
		byName[sn.Name] = sn
	}
	for _, sn := range all {
		if sn.Kind != metadata.Committed && !strings.HasPrefix(sn.Name, extractPrefix) {
			snaps[sn.Name] = true
		}
	}
	for name := range snaps {
		for p := byName[name].Parent; p != "" && !snaps[p]; p = byName[p].Parent {
			snaps[p] = true
		}
	}

	err = s.Content.Walk(func(i content.Info) error {
		if blobs[i.Digest] {
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
		return nil, err
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
			return nil, err
		}
	}

	// Snapshots go children first: keep discarding the unreferenced ones
	// that nothing is built on until none is left.
	var trash []string
	for {
		removed := false
		left, err := s.Snapshots.List()
		if err != nil {
			return trash, err
		}
		for _, sn := range left {
			if snaps[sn.Name] || hasChild(left, sn.Name) {
				continue
			}
			dir, err := s.Snapshots.Discard(sn.Name)
			if err != nil {
				return trash, fmt.Errorf("snapshot %s: %w", sn.Name, err)
			}
			trash = append(trash, dir)
			res.Snapshots = append(res.Snapshots, sn.Name)
			removed = true
		}
		if !removed {
			break
		}
	}
	return trash, nil
}

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
	kids, m, err := s.children(d)
	if err != nil {
		return err
	}
	if m != nil {
		for _, k := range kids {
			blobs[k.Digest] = true
		}
		if c, err := s.Config(*m); err == nil {
			for _, id := range ChainIDs(c.RootFS.DiffIDs) {
				snaps[id.String()] = true
			}
		}
		return nil
	}
	for _, k := range kids {
		if err := s.markContent(k, blobs, snaps, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// children reads a blob and returns what it names: the manifests of an
// index, or the config and layers of a manifest (then m is the manifest).
// Any other blob (a layer, a config, an artifact's) names nothing.
func (s *Store) children(d ocispec.Descriptor) (kids []ocispec.Descriptor, m *ocispec.Manifest, err error) {
	mt := d.MediaType
	if mt != "" && !IsManifest(mt) && !IsIndex(mt) {
		return nil, nil, nil
	}
	b, err := s.Content.ReadBlob(d.Digest, maxManifestSize)
	if err != nil {
		return nil, nil, err
	}
	if mt == "" {
		if mt, err = DetectMediaType(b); err != nil {
			return nil, nil, nil // not a document that refers to others
		}
	}
	if IsIndex(mt) {
		idx, err := ParseIndex(b, mt)
		if err != nil {
			return nil, nil, err
		}
		return idx.Manifests, nil, nil
	}
	man, err := ParseManifest(b, mt)
	if err != nil {
		return nil, nil, err
	}
	return append([]ocispec.Descriptor{man.Config}, man.Layers...), &man, nil
}
