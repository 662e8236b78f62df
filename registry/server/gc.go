package server

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/image/content"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// GCResult is what a collection removed.
type GCResult struct {
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// GC removes the blobs of a registry's store that no repository links and
// no manifest is (deleting a blob or manifest only unlinks it). It runs
// on a registry that is not serving: the database's lock, which a
// running server holds, keeps the two apart, so no push can commit a blob
// between the mark and the sweep.
func GC(root string) (GCResult, error) {
	var res GCResult
	db, err := bolt.Open(filepath.Join(root, "registry.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return res, errors.New("the registry is running (its database is locked): stop it to collect garbage")
	}
	if err != nil {
		return res, err
	}
	defer db.Close()
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		return res, err
	}
	live := map[digest.Digest]bool{}
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range repoNames(tx) {
			for _, b := range []string{"blobs", "manifests"} {
				bk, err := sub(tx, name, b, false)
				if err != nil {
					continue
				}
				bk.ForEach(func(k, _ []byte) error {
					live[digest.Digest(k)] = true
					return nil
				})
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	err = cs.Walk(func(i content.Info) error {
		if live[i.Digest] {
			return nil
		}
		if err := cs.Delete(i.Digest); err != nil {
			return fmt.Errorf("delete %s: %w", i.Digest, err)
		}
		res.Blobs++
		res.Bytes += i.Size
		return nil
	})
	return res, err
}
