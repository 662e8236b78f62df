// Package metadata is the image store's database (bbolt): images by name,
// snapshots, leases and content labels. It knows nothing of blobs or
// directories; the image package keeps them and this in step.
//
// The database file is opened for each transaction rather than for the
// life of the process: bbolt locks the file while it is open, and several
// short-lived `berth image` commands on one store must be able to run side
// by side. A long-running process (the daemon) may Hold it open instead.
package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrInUse: a snapshot that others are built on cannot go.
	ErrInUse = errors.New("in use")
)

var (
	bImages    = []byte("images")
	bSnapshots = []byte("snapshots")
	bLeases    = []byte("leases")
	bContent   = []byte("content")
)

// lockTimeout is how long a command waits for another holding the
// database; the holder's transactions are short, so this only runs out if
// something is stuck.
const lockTimeout = 30 * time.Second

// DB is the metadata database at one path.
type DB struct {
	path string
	mu   sync.Mutex
	held *bolt.DB
}

// Open prepares the database at path (creating it and its buckets).
func Open(path string) (*DB, error) {
	d := &DB{path: path}
	err := d.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bImages, bSnapshots, bLeases, bContent} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Hold keeps the database open until Release, for a process that uses it
// constantly.
func (d *DB) Hold() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held != nil {
		return nil
	}
	b, err := d.open()
	if err != nil {
		return err
	}
	d.held = b
	return nil
}

// Release undoes Hold.
func (d *DB) Release() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held == nil {
		return nil
	}
	err := d.held.Close()
	d.held = nil
	return err
}

func (d *DB) open() (*bolt.DB, error) {
	b, err := bolt.Open(d.path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("metadata database %s: still locked by another process after %s", d.path, lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("metadata database %s: %w", d.path, err)
	}
	return b, nil
}

func (d *DB) with(fn func(*bolt.DB) error) error {
	d.mu.Lock()
	held := d.held
	d.mu.Unlock()
	if held != nil {
		return fn(held)
	}
	b, err := d.open()
	if err != nil {
		return err
	}
	defer b.Close()
	return fn(b)
}

// Update runs fn in a read-write transaction.
func (d *DB) Update(fn func(*bolt.Tx) error) error {
	return d.with(func(b *bolt.DB) error { return b.Update(fn) })
}

// View runs fn in a read-only transaction.
func (d *DB) View(fn func(*bolt.Tx) error) error {
	return d.with(func(b *bolt.DB) error { return b.View(fn) })
}

func get[T any](tx *bolt.Tx, bucket []byte, key string) (T, error) {
	var v T
	raw := tx.Bucket(bucket).Get([]byte(key))
	if raw == nil {
		return v, fmt.Errorf("%s %q: %w", bucket[:len(bucket)-1], key, ErrNotFound)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%s %q: corrupt record: %w", bucket[:len(bucket)-1], key, err)
	}
	return v, nil
}

func put(tx *bolt.Tx, bucket []byte, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), raw)
}

func all[T any](tx *bolt.Tx, bucket []byte) ([]T, error) {
	var out []T
	err := tx.Bucket(bucket).ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%s %q: corrupt record: %w", bucket[:len(bucket)-1], k, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// Image is a name for a manifest or index.
type Image struct {
	Name    string             `json:"name"`
	Target  ocispec.Descriptor `json:"target"`
	Labels  map[string]string  `json:"labels,omitempty"`
	Created time.Time          `json:"created"`
	Updated time.Time          `json:"updated"`
}

// PutImage creates or repoints an image name.
func PutImage(tx *bolt.Tx, img Image) error {
	now := time.Now().UTC()
	if old, err := get[Image](tx, bImages, img.Name); err == nil {
		img.Created = old.Created
	} else {
		img.Created = now
	}
	img.Updated = now
	return put(tx, bImages, img.Name, img)
}

// GetImage finds an image by its full name.
func GetImage(tx *bolt.Tx, name string) (Image, error) { return get[Image](tx, bImages, name) }

// Images lists all images, by name.
func Images(tx *bolt.Tx) ([]Image, error) { return all[Image](tx, bImages) }

// DeleteImage removes a name; what it pointed to goes at the next
// garbage collection unless something else refers to it.
func DeleteImage(tx *bolt.Tx, name string) error {
	b := tx.Bucket(bImages)
	if b.Get([]byte(name)) == nil {
		return fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	return b.Delete([]byte(name))
}

// Kind is a snapshot's state.
type Kind string

const (
	// Committed snapshots are read-only layers, named by chain ID.
	Committed Kind = "committed"
	// Active snapshots are writable (an unpack in progress, a
	// container's root).
	Active Kind = "active"
	// View snapshots are read-only mounts of a committed one.
	View Kind = "view"
)

// Snapshot is one snapshot's record; its directory is named by ID.
type Snapshot struct {
	Name    string            `json:"name"`
	Kind    Kind              `json:"kind"`
	Parent  string            `json:"parent,omitempty"`
	ID      uint64            `json:"id"`
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// AddSnapshot records a new snapshot and gives it a unique ID.
func AddSnapshot(tx *bolt.Tx, s *Snapshot) error {
	b := tx.Bucket(bSnapshots)
	if b.Get([]byte(s.Name)) != nil {
		return fmt.Errorf("snapshot %q: %w", s.Name, ErrExists)
	}
	if s.Parent != "" {
		p, err := GetSnapshot(tx, s.Parent)
		if err != nil {
			return fmt.Errorf("parent: %w", err)
		}
		if p.Kind != Committed {
			return fmt.Errorf("parent snapshot %q is %s, not committed", s.Parent, p.Kind)
		}
	}
	id, err := b.NextSequence()
	if err != nil {
		return err
	}
	s.ID = id
	s.Created = time.Now().UTC()
	return put(tx, bSnapshots, s.Name, s)
}

// GetSnapshot finds a snapshot by name.
func GetSnapshot(tx *bolt.Tx, name string) (Snapshot, error) {
	return get[Snapshot](tx, bSnapshots, name)
}

// Snapshots lists all snapshots.
func Snapshots(tx *bolt.Tx) ([]Snapshot, error) { return all[Snapshot](tx, bSnapshots) }

// CommitSnapshot commits an active snapshot under its final name.
func CommitSnapshot(tx *bolt.Tx, key, name string) (Snapshot, error) {
	s, err := GetSnapshot(tx, key)
	if err != nil {
		return s, err
	}
	if s.Kind != Active {
		return s, fmt.Errorf("snapshot %q is %s; only an active one can be committed", key, s.Kind)
	}
	if tx.Bucket(bSnapshots).Get([]byte(name)) != nil {
		return s, fmt.Errorf("snapshot %q: %w", name, ErrExists)
	}
	if err := tx.Bucket(bSnapshots).Delete([]byte(key)); err != nil {
		return s, err
	}
	s.Name, s.Kind = name, Committed
	return s, put(tx, bSnapshots, name, s)
}

// SetParent gives a parentless active snapshot its parent, which must be
// committed.
func SetParent(tx *bolt.Tx, key, parent string) error {
	sn, err := GetSnapshot(tx, key)
	if err != nil {
		return err
	}
	if sn.Parent == parent {
		return nil
	}
	if sn.Parent != "" || sn.Kind != Active {
		return fmt.Errorf("snapshot %q: only a parentless active snapshot can be given a parent", key)
	}
	if parent != "" {
		p, err := GetSnapshot(tx, parent)
		if err != nil {
			return fmt.Errorf("parent: %w", err)
		}
		if p.Kind != Committed {
			return fmt.Errorf("parent snapshot %q is %s, not committed", parent, p.Kind)
		}
	}
	sn.Parent = parent
	return put(tx, bSnapshots, key, sn)
}

// DeleteSnapshot removes a snapshot's record, refusing one that others
// have as parent.
func DeleteSnapshot(tx *bolt.Tx, name string) (Snapshot, error) {
	s, err := GetSnapshot(tx, name)
	if err != nil {
		return s, err
	}
	children, err := Snapshots(tx)
	if err != nil {
		return s, err
	}
	for _, c := range children {
		if c.Parent == name {
			return s, fmt.Errorf("snapshot %q is the parent of %q: %w", name, c.Name, ErrInUse)
		}
	}
	return s, tx.Bucket(bSnapshots).Delete([]byte(name))
}

// Lease protects content and snapshots from garbage collection while
// something is being made of them (a pull, a load, an unpack) and nothing
// else refers to them yet. A lease that outlives its expiry (its owner
// died) protects nothing.
type Lease struct {
	ID        string          `json:"id"`
	Created   time.Time       `json:"created"`
	Expires   time.Time       `json:"expires"`
	Owner     *Owner          `json:"owner,omitempty"`
	Content   []digest.Digest `json:"content,omitempty"`
	Snapshots []string        `json:"snapshots,omitempty"`
}

// Owner is the process that holds a lease. A lease whose owner is gone (a
// command killed mid-load) protects nothing, whatever its expiry says.
type Owner struct {
	PID int `json:"pid"`
	// Start is the process's start time in clock ticks since boot
	// (/proc/PID/stat), and Boot the boot's ID: together with the PID
	// they name one process, not whichever reuses its PID later.
	Start uint64 `json:"start"`
	Boot  string `json:"boot"`
}

// Self is the calling process as a lease owner.
func Self() *Owner {
	pid := os.Getpid()
	start, err := procStart(pid)
	if err != nil {
		return nil
	}
	return &Owner{PID: pid, Start: start, Boot: bootID()}
}

// Alive reports whether the owner process still runs.
func (o *Owner) Alive() bool {
	if o.Boot != bootID() {
		return false
	}
	start, err := procStart(o.PID)
	return err == nil && start == o.Start
}

func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing one.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// Live reports whether a lease still protects what it names.
func (l Lease) Live(now time.Time) bool {
	if now.After(l.Expires) {
		return false
	}
	return l.Owner == nil || l.Owner.Alive()
}

// AddLease starts a lease held by this process.
func AddLease(tx *bolt.Tx, id string, ttl time.Duration) error {
	if tx.Bucket(bLeases).Get([]byte(id)) != nil {
		return fmt.Errorf("lease %q: %w", id, ErrExists)
	}
	now := time.Now().UTC()
	return put(tx, bLeases, id, Lease{ID: id, Created: now, Expires: now.Add(ttl), Owner: Self()})
}

// LeaseContent adds blobs to a lease (before they are written: a blob
// must be protected from the moment it exists).
func LeaseContent(tx *bolt.Tx, id string, ds ...digest.Digest) error {
	l, err := get[Lease](tx, bLeases, id)
	if err != nil {
		return err
	}
	l.Content = append(l.Content, ds...)
	return put(tx, bLeases, id, l)
}

// LeaseSnapshot adds snapshots to a lease.
func LeaseSnapshot(tx *bolt.Tx, id string, names ...string) error {
	l, err := get[Lease](tx, bLeases, id)
	if err != nil {
		return err
	}
	l.Snapshots = append(l.Snapshots, names...)
	return put(tx, bLeases, id, l)
}

// DeleteLease ends a lease; what only it protected goes at the next
// garbage collection.
func DeleteLease(tx *bolt.Tx, id string) error {
	return tx.Bucket(bLeases).Delete([]byte(id))
}

// Leases lists the leases.
func Leases(tx *bolt.Tx) ([]Lease, error) { return all[Lease](tx, bLeases) }

// SetContentLabels replaces a blob's labels (nil removes them).
func SetContentLabels(tx *bolt.Tx, d digest.Digest, labels map[string]string) error {
	if len(labels) == 0 {
		return tx.Bucket(bContent).Delete([]byte(d))
	}
	return put(tx, bContent, string(d), labels)
}

// ContentLabels returns a blob's labels (none is not an error).
func ContentLabels(tx *bolt.Tx, d digest.Digest) map[string]string {
	l, err := get[map[string]string](tx, bContent, string(d))
	if err != nil {
		return nil
	}
	return l
}

// ContentWithLabels lists the blobs that have labels.
func ContentWithLabels(tx *bolt.Tx) ([]digest.Digest, error) {
	var out []digest.Digest
	err := tx.Bucket(bContent).ForEach(func(k, _ []byte) error {
		out = append(out, digest.Digest(k))
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, err
}
