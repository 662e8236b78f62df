// Package snapshot keeps the file system layers of images and the writable
// layers of containers, as containerd's snapshotters do: one committed
// snapshot per layer chain (named by chain ID, so every image with the same
// layers shares them), active snapshots on top for writing, views for
// reading.
//
// Two drivers: overlay (each snapshot's directory holds only its own
// layer; a mount stacks them with overlayfs) and copy, the fallback where
// overlayfs cannot be used (each snapshot's directory holds its whole
// tree, copied from its parent; a mount is a bind mount).
//
// Records are in the metadata database; directories are
// <root>/<id>/fs (and <id>/work for overlay). A record is written before
// its directory is made and removed before it is removed, so a crash can
// leave a directory without a record (garbage collection removes it) but
// never a record without its directory.
package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/image/metadata"
	"github.com/moby/sys/mountinfo"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Driver is how snapshots are stored.
type Driver string

const (
	Overlay Driver = "overlay"
	Copy    Driver = "copy"
)

// Mount is one mount that makes a snapshot's tree appear at a target.
type Mount struct {
	Type    string   `json:"type"`
	Source  string   `json:"source"`
	Options []string `json:"options,omitempty"`
}

// Snapshotter manages the snapshots under one root.
type Snapshotter struct {
	root   string
	db     *metadata.DB
	driver Driver
}

// New opens the snapshots under root. want chooses the driver ("" picks
// overlay where it works, copy elsewhere); a root keeps the driver it was
// made with, since the two store trees differently.
func New(root string, db *metadata.DB, want Driver) (*Snapshotter, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	switch want {
	case "", Overlay, Copy:
	default:
		return nil, fmt.Errorf("snapshot driver %q: want overlay or copy", want)
	}
	marker := filepath.Join(root, "driver")
	var driver Driver
	if b, err := os.ReadFile(marker); err == nil {
		driver = Driver(strings.TrimSpace(string(b)))
		if want != "" && want != driver {
			return nil, fmt.Errorf("snapshots in %s use the %s driver, not %s (the two store layers differently)", root, driver, want)
		}
	} else {
		switch want {
		case Overlay:
			if err := checkOverlay(root); err != nil {
				return nil, fmt.Errorf("overlay snapshots in %s: %w", root, err)
			}
			driver = Overlay
		case Copy:
			driver = Copy
		case "":
			driver = Overlay
			if checkOverlay(root) != nil {
				driver = Copy
			}
		default:
			return nil, fmt.Errorf("snapshot driver %q: want overlay or copy", want)
		}
		if err := os.WriteFile(marker, []byte(driver+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	return &Snapshotter{root: root, db: db, driver: driver}, nil
}

// Driver is the driver in use.
func (s *Snapshotter) Driver() Driver { return s.driver }

// checkOverlay mounts a small overlay in root: overlayfs must exist and
// root's file system must work as an upper layer (not every one does:
// overlayfs itself, some network file systems).
func checkOverlay(root string) error {
	dir, err := os.MkdirTemp(root, ".check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"l1", "l2", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s:%s,upperdir=%s,workdir=%s", filepath.Join(dir, "l1"), filepath.Join(dir, "l2"),
		filepath.Join(dir, "u"), filepath.Join(dir, "w"))
	m := filepath.Join(dir, "m")
	if err := unix.Mount("overlay", m, "overlay", 0, opts); err != nil {
		return fmt.Errorf("test mount: %w", err)
	}
	return unix.Unmount(m, unix.MNT_DETACH)
}

func (s *Snapshotter) dir(id uint64) string {
	return filepath.Join(s.root, strconv.FormatUint(id, 10))
}

// fsDir is where a snapshot's files are.
func (s *Snapshotter) fsDir(id uint64) string { return filepath.Join(s.dir(id), "fs") }

// Dir returns the directory that holds an active snapshot's own files:
// what a layer is unpacked into directly (faster than through a mount).
// For overlay that is the layer alone; for copy, the whole tree.
func (s *Snapshotter) Dir(key string) (string, error) {
	sn, err := s.Stat(key)
	if err != nil {
		return "", err
	}
	return s.fsDir(sn.ID), nil
}

// Stat returns a snapshot's record.
func (s *Snapshotter) Stat(key string) (sn metadata.Snapshot, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		sn, err = metadata.GetSnapshot(tx, key)
		return err
	})
	return sn, err
}

// List returns every snapshot's record.
func (s *Snapshotter) List() (all []metadata.Snapshot, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		all, err = metadata.Snapshots(tx)
		return err
	})
	return all, err
}

// Prepare makes an active (writable) snapshot called key on parent ("" for
// an empty one) and returns the mounts that show it.
func (s *Snapshotter) Prepare(key, parent string, labels map[string]string) ([]Mount, error) {
	return s.create(metadata.Active, key, parent, labels)
}

// View makes a read-only snapshot of parent called key.
func (s *Snapshotter) View(key, parent string, labels map[string]string) ([]Mount, error) {
	if parent == "" {
		return nil, errors.New("a view needs a parent")
	}
	return s.create(metadata.View, key, parent, labels)
}

func (s *Snapshotter) create(kind metadata.Kind, key, parent string, labels map[string]string) ([]Mount, error) {
	if key == "" {
		return nil, errors.New("snapshot key is empty")
	}
	sn := metadata.Snapshot{Name: key, Kind: kind, Parent: parent, Labels: labels}
	err := s.db.Update(func(tx *bolt.Tx) error { return metadata.AddSnapshot(tx, &sn) })
	if err != nil {
		return nil, err
	}
	if err := s.makeDirs(sn); err != nil {
		s.removeRecord(key)
		os.RemoveAll(s.dir(sn.ID))
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	return s.Mounts(key)
}

func (s *Snapshotter) makeDirs(sn metadata.Snapshot) error {
	d := s.dir(sn.ID)
	if err := os.Mkdir(d, 0o700); err != nil {
		return err
	}
	if s.driver == Overlay {
		if err := os.Mkdir(filepath.Join(d, "fs"), 0o755); err != nil {
			return err
		}
		if sn.Kind == metadata.Active {
			return os.Mkdir(filepath.Join(d, "work"), 0o700)
		}
		return nil
	}
	if sn.Kind == metadata.View {
		// A view of a copy-driver snapshot is its parent's tree,
		// bound read-only: nothing to copy.
		return nil
	}
	if sn.Parent == "" {
		return os.Mkdir(filepath.Join(d, "fs"), 0o755)
	}
	p, err := s.Stat(sn.Parent)
	if err != nil {
		return err
	}
	// cp -a keeps what a layer holds: owners, modes, times, hardlinks,
	// device nodes, xattrs; reflinks make it cheap where the file system
	// has them.
	out, err := exec.Command("cp", "-a", "--reflink=auto", s.fsDir(p.ID), filepath.Join(d, "fs")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy parent %q: %v: %s", sn.Parent, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (s *Snapshotter) removeRecord(key string) {
	_ = s.db.Update(func(tx *bolt.Tx) error {
		_, err := metadata.DeleteSnapshot(tx, key)
		return err
	})
}

// chain returns the IDs of a snapshot and its ancestors, nearest first.
func (s *Snapshotter) chain(tx *bolt.Tx, name string) ([]metadata.Snapshot, error) {
	var out []metadata.Snapshot
	for name != "" {
		sn, err := metadata.GetSnapshot(tx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, sn)
		name = sn.Parent
		if len(out) > 1000 {
			return nil, errors.New("snapshot chain too long (a loop?)")
		}
	}
	return out, nil
}

// Mounts returns the mounts that show a snapshot: for overlay, an
// overlay of its ancestors' layers (with its own as the upper one if it is
// active); for copy, a bind mount of its tree.
func (s *Snapshotter) Mounts(key string) ([]Mount, error) {
	var chain []metadata.Snapshot
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		chain, err = s.chain(tx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	sn := chain[0]
	ro := sn.Kind != metadata.Active
	bind := func(id uint64) []Mount {
		opts := []string{"rbind", "rw"}
		if ro {
			opts[1] = "ro"
		}
		return []Mount{{Type: "bind", Source: s.fsDir(id), Options: opts}}
	}
	if s.driver == Copy {
		if sn.Kind == metadata.View {
			return bind(chain[1].ID), nil
		}
		return bind(sn.ID), nil
	}
	lowers := chain[1:]
	if sn.Kind == metadata.Committed {
		lowers = chain
	}
	if sn.Kind == metadata.Active && len(lowers) == 0 {
		return bind(sn.ID), nil
	}
	if sn.Kind != metadata.Active && len(lowers) == 1 {
		return bind(lowers[0].ID), nil
	}
	var dirs []string
	for _, l := range lowers {
		dirs = append(dirs, s.fsDir(l.ID))
	}
	opts := []string{"lowerdir=" + strings.Join(dirs, ":")}
	if sn.Kind == metadata.Active {
		opts = append(opts, "upperdir="+s.fsDir(sn.ID), "workdir="+filepath.Join(s.dir(sn.ID), "work"))
	}
	// index=off: an overlay mounted again on other upper directories
	// (every container of an image) must not be refused for it.
	opts = append(opts, "index=off")
	return []Mount{{Type: "overlay", Source: "overlay", Options: opts}}, nil
}

// LayerDirs are the directories of a committed snapshot's layer and its
// ancestors', nearest first: the lower layers a new layer on it is
// unpacked over (overlay only).
func (s *Snapshotter) LayerDirs(name string) ([]string, error) {
	var chain []metadata.Snapshot
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		chain, err = s.chain(tx, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	dirs := make([]string, len(chain))
	for i, sn := range chain {
		dirs[i] = s.fsDir(sn.ID)
	}
	return dirs, nil
}

// Commit turns the active snapshot key into the committed, read-only
// snapshot name. If name exists already (another unpack of the same layer
// won), key is removed and ErrExists returned: the caller uses name.
func (s *Snapshotter) Commit(name, key string) error {
	return s.commit(name, key, false, "")
}

// CommitOn is Commit that also sets the snapshot's parent: overlay layers
// can be unpacked side by side, each into its own empty directory, and
// stacked only as they are committed in order.
func (s *Snapshotter) CommitOn(name, key, parent string) error {
	if s.driver != Overlay {
		return errors.New("only overlay snapshots can change their parent")
	}
	return s.commit(name, key, true, parent)
}

func (s *Snapshotter) commit(name, key string, reparent bool, parent string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		if reparent {
			if err := metadata.SetParent(tx, key, parent); err != nil {
				return err
			}
		}
		_, err := metadata.CommitSnapshot(tx, key, name)
		return err
	})
	if errors.Is(err, metadata.ErrExists) {
		if rerr := s.Remove(key); rerr != nil {
			return rerr
		}
		return err
	}
	if err != nil {
		return err
	}
	if s.driver == Overlay {
		// A committed layer is never an upper directory again.
		sn, err := s.Stat(name)
		if err == nil {
			os.RemoveAll(filepath.Join(s.dir(sn.ID), "work"))
		}
	}
	return nil
}

// Remove removes a snapshot that no other snapshot is built on.
func (s *Snapshotter) Remove(key string) error {
	sn, err := s.Stat(key)
	if err != nil {
		return err
	}
	if err := checkNoMounts(s.dir(sn.ID)); err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) (err error) {
		sn, err = metadata.DeleteSnapshot(tx, key)
		return err
	})
	if err != nil {
		return err
	}
	return removeTree(s.dir(sn.ID))
}

// Discard removes a snapshot's record, like Remove, but only renames its
// directory aside (quick, on the same file system) and returns where it
// went, for the caller to delete later: garbage collection deletes trees
// after it has released the database.
func (s *Snapshotter) Discard(key string) (string, error) {
	sn, err := s.Stat(key)
	if err != nil {
		return "", err
	}
	dir := s.dir(sn.ID)
	if err := checkNoMounts(dir); err != nil {
		return "", err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		_, err := metadata.DeleteSnapshot(tx, key)
		return err
	})
	if err != nil {
		return "", err
	}
	trash := filepath.Join(s.root, trashPrefix+strconv.FormatUint(sn.ID, 10))
	if err := os.Rename(dir, trash); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return trash, nil
}

// trashPrefix names directories Discard set aside; Orphans deletes any a
// crash left.
const trashPrefix = "trash-"

// Orphans removes directories that have no record (left by a crash between
// the two, or set aside by a Discard that was not followed through),
// returning how many. It needs no lock: directories are listed before
// records are read, and a record is always written before its directory
// is made.
func (s *Snapshotter) Orphans() (int, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return 0, err
	}
	all, err := s.List()
	if err != nil {
		return 0, err
	}
	known := map[string]bool{}
	for _, sn := range all {
		known[strconv.FormatUint(sn.ID, 10)] = true
	}
	n := 0
	for _, e := range ents {
		_, err := strconv.ParseUint(e.Name(), 10, 64)
		orphan := err == nil && !known[e.Name()]
		if !orphan && !strings.HasPrefix(e.Name(), trashPrefix) {
			continue
		}
		if err := removeTree(filepath.Join(s.root, e.Name())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// removeTree removes a snapshot directory, refusing one with something
// mounted inside it: RemoveAll would go on into the mounted tree.
func removeTree(dir string) error {
	if err := checkNoMounts(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove snapshot directory: %w", err)
	}
	return nil
}

// checkNoMounts refuses a snapshot directory that a mount of this mount
// namespace uses: something mounted inside it, or an overlay built on it
// (a bundle's rootfs, say). (Containers in their own mount namespaces are
// their engine's to track.)
func checkNoMounts(dir string) error {
	all, err := mountinfo.GetMounts(nil)
	if err != nil {
		return err
	}
	for _, m := range all {
		if m.Mountpoint == dir || strings.HasPrefix(m.Mountpoint, dir+"/") {
			return fmt.Errorf("snapshot directory %s has %s mounted inside, unmount it first: %w", dir, m.Mountpoint, metadata.ErrInUse)
		}
		if m.FSType == "overlay" && strings.Contains(m.VFSOptions, dir+"/") {
			return fmt.Errorf("snapshot %s is a layer of the overlay mounted at %s, unmount it first: %w", filepath.Base(dir), m.Mountpoint, metadata.ErrInUse)
		}
	}
	return nil
}

// DiskUsage is the space the files under dir take on disk and how many
// inodes they are (a file with several links counted once).
func DiskUsage(dir string) (size, inodes int64, err error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		k := inode{st.Dev, st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		size += st.Blocks * 512
		inodes++
		return nil
	})
	return size, inodes, err
}

// Usage is the disk space a snapshot's own directory takes, in bytes, and
// its inode count (hardlinks counted once).
func (s *Snapshotter) Usage(key string) (size, inodes int64, err error) {
	sn, err := s.Stat(key)
	if err != nil {
		return 0, 0, err
	}
	return DiskUsage(s.dir(sn.ID))
}
