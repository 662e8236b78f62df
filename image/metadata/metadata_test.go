package metadata

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestImagesKeepTheirCreationTimeWhenRepointed(t *testing.T) {
	db := open(t)
	d1 := ocispec.Descriptor{Digest: digest.FromString("1")}
	d2 := ocispec.Descriptor{Digest: digest.FromString("2")}
	db.Update(func(tx *bolt.Tx) error { return PutImage(tx, Image{Name: "a", Target: d1}) })
	var first Image
	db.View(func(tx *bolt.Tx) (err error) { first, err = GetImage(tx, "a"); return })
	time.Sleep(time.Millisecond)
	db.Update(func(tx *bolt.Tx) error { return PutImage(tx, Image{Name: "a", Target: d2}) })
	var again Image
	db.View(func(tx *bolt.Tx) (err error) { again, err = GetImage(tx, "a"); return })
	if again.Target.Digest != d2.Digest || !again.Created.Equal(first.Created) || !again.Updated.After(first.Updated) {
		t.Fatalf("repointed: %+v (first %+v)", again, first)
	}
	err := db.Update(func(tx *bolt.Tx) error { return DeleteImage(tx, "missing") })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestSnapshotRules(t *testing.T) {
	db := open(t)
	err := db.Update(func(tx *bolt.Tx) error {
		if err := AddSnapshot(tx, &Snapshot{Name: "active", Kind: Active}); err != nil {
			return err
		}
		if err := AddSnapshot(tx, &Snapshot{Name: "child", Kind: Active, Parent: "active"}); err == nil {
			t.Error("a snapshot on an active parent was accepted")
		}
		if err := AddSnapshot(tx, &Snapshot{Name: "active", Kind: Active}); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate: %v", err)
		}
		base, err := CommitSnapshot(tx, "active", "base")
		if err != nil {
			return err
		}
		if base.Kind != Committed {
			t.Errorf("committed kind %s", base.Kind)
		}
		if _, err := CommitSnapshot(tx, "base", "again"); err == nil {
			t.Error("committed a committed snapshot")
		}
		if err := AddSnapshot(tx, &Snapshot{Name: "top", Kind: Active}); err != nil {
			return err
		}
		if err := SetParent(tx, "top", "base"); err != nil {
			return err
		}
		if err := SetParent(tx, "top", "other"); err == nil {
			t.Error("a parent was replaced")
		}
		if _, err := DeleteSnapshot(tx, "base"); !errors.Is(err, ErrInUse) {
			t.Errorf("deleting a parent: %v", err)
		}
		if _, err := DeleteSnapshot(tx, "top"); err != nil {
			return err
		}
		_, err = DeleteSnapshot(tx, "base")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotIDsAreUnique(t *testing.T) {
	db := open(t)
	ids := map[uint64]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := Snapshot{Name: string(rune('a' + i)), Kind: Active}
			if err := db.Update(func(tx *bolt.Tx) error { return AddSnapshot(tx, &s) }); err != nil {
				t.Error(err)
			}
			mu.Lock()
			ids[s.ID] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != 20 {
		t.Fatalf("%d distinct IDs for 20 snapshots", len(ids))
	}
}

func TestLeasesCollectWhatTheyProtect(t *testing.T) {
	db := open(t)
	d := digest.FromString("blob")
	err := db.Update(func(tx *bolt.Tx) error {
		if err := AddLease(tx, "l", time.Hour); err != nil {
			return err
		}
		if err := LeaseContent(tx, "l", d); err != nil {
			return err
		}
		return LeaseSnapshot(tx, "l", "snap")
	})
	if err != nil {
		t.Fatal(err)
	}
	var ls []Lease
	db.View(func(tx *bolt.Tx) (err error) { ls, err = Leases(tx); return })
	if len(ls) != 1 || ls[0].Content[0] != d || ls[0].Snapshots[0] != "snap" || !ls[0].Expires.After(time.Now()) {
		t.Fatalf("leases: %+v", ls)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return LeaseContent(tx, "nope", d) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lease content on a missing lease: %v", err)
	}
}

// A held database keeps one handle; commands that open per transaction
// wait for it rather than fail.
func TestHeldDatabaseIsSharedInProcess(t *testing.T) {
	db := open(t)
	if err := db.Hold(); err != nil {
		t.Fatal(err)
	}
	defer db.Release()
	for i := 0; i < 3; i++ {
		if err := db.Update(func(tx *bolt.Tx) error { return PutImage(tx, Image{Name: "x"}) }); err != nil {
			t.Fatal(err)
		}
	}
}
