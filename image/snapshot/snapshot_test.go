package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/berth-dev/berth/image/metadata"
	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("snapshot tests mount file systems: run as root")
	}
}

func newSnapshotter(t *testing.T, d Driver) *Snapshotter {
	t.Helper()
	dir := t.TempDir()
	db, err := metadata.Open(filepath.Join(dir, "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(filepath.Join(dir, "snapshots"), db, d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mountAt mounts a snapshot and unmounts it when the test ends.
func mountAt(t *testing.T, ms []Mount) string {
	t.Helper()
	target := t.TempDir()
	if err := MountAll(ms, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Unmount(target); err != nil {
			t.Error(err)
		}
	})
	return target
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Both drivers must give the same view: committed layers stacked, an
// active snapshot writable on top without changing them, a view
// read-only.
func TestLayersStackAndActiveSnapshotsWriteOnTop(t *testing.T) {
	needRoot(t)
	for _, d := range []Driver{Overlay, Copy} {
		t.Run(string(d), func(t *testing.T) {
			s := newSnapshotter(t, d)
			if _, err := s.Prepare("x1", "", nil); err != nil {
				t.Fatal(err)
			}
			dir, _ := s.Dir("x1")
			writeFile(t, filepath.Join(dir, "etc/base"), "base")
			writeFile(t, filepath.Join(dir, "etc/replaced"), "old")
			if err := s.Commit("layer1", "x1"); err != nil {
				t.Fatal(err)
			}
			ms, err := s.Prepare("x2", "layer1", nil)
			if err != nil {
				t.Fatal(err)
			}
			root := mountAt(t, ms)
			writeFile(t, filepath.Join(root, "etc/replaced"), "new")
			writeFile(t, filepath.Join(root, "added"), "added")
			if err := Unmount(root); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit("layer2", "x2"); err != nil {
				t.Fatal(err)
			}

			ms, err = s.Prepare("container", "layer2", nil)
			if err != nil {
				t.Fatal(err)
			}
			c := mountAt(t, ms)
			for f, want := range map[string]string{"etc/base": "base", "etc/replaced": "new", "added": "added"} {
				if got := readFile(t, filepath.Join(c, f)); got != want {
					t.Errorf("%s: %q, want %q", f, got, want)
				}
			}
			writeFile(t, filepath.Join(c, "etc/base"), "changed by the container")

			ms, err = s.View("view", "layer2", nil)
			if err != nil {
				t.Fatal(err)
			}
			v := mountAt(t, ms)
			if got := readFile(t, filepath.Join(v, "etc/base")); got != "base" {
				t.Errorf("the container's write reached the committed layer: view reads %q", got)
			}
			if err := os.WriteFile(filepath.Join(v, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
				t.Errorf("writing into a view: %v, want EROFS", err)
			}
			if err := s.Remove("layer1"); !errors.Is(err, metadata.ErrInUse) {
				t.Errorf("removing a parent: %v, want ErrInUse", err)
			}
		})
	}
}

func TestCommitOfALayerAlreadyThereKeepsTheFirst(t *testing.T) {
	needRoot(t)
	s := newSnapshotter(t, Overlay)
	for _, k := range []string{"a", "b"} {
		if _, err := s.Prepare(k, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit("layer", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("layer", "b"); !errors.Is(err, metadata.ErrExists) {
		t.Fatalf("second commit: %v, want ErrExists", err)
	}
	if _, err := s.Stat("b"); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("the losing snapshot is still there: %v", err)
	}
}

// Overlay's mount options must fit in a page: a deep image with long
// paths is mounted with paths relative to the snapshots' directory.
func TestManyLayersMountBeyondThePageSize(t *testing.T) {
	needRoot(t)
	s := newSnapshotter(t, Overlay)
	parent := ""
	const n = 200
	for i := 0; i < n; i++ {
		key := "x" + strconv.Itoa(i)
		if _, err := s.Prepare(key, "", nil); err != nil {
			t.Fatal(err)
		}
		dir, _ := s.Dir(key)
		writeFile(t, filepath.Join(dir, fmt.Sprintf("layer%03d", i)), strconv.Itoa(i))
		name := "layer" + strconv.Itoa(i)
		if err := s.CommitOn(name, key, parent); err != nil {
			t.Fatal(err)
		}
		parent = name
	}
	ms, err := s.Prepare("top", parent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := len(fmt.Sprint(ms[0].Options)); l < os.Getpagesize() {
		t.Fatalf("options are only %d bytes: the test does not exceed the page", l)
	}
	root := mountAt(t, ms)
	for _, i := range []int{0, n / 2, n - 1} {
		if got := readFile(t, filepath.Join(root, fmt.Sprintf("layer%03d", i))); got != strconv.Itoa(i) {
			t.Fatalf("layer %d reads %q", i, got)
		}
	}
	wd, _ := os.Getwd()
	if wd == s.root {
		t.Fatal("the process's working directory changed")
	}
}

func TestOrphanDirectoriesAreRemoved(t *testing.T) {
	needRoot(t)
	s := newSnapshotter(t, Overlay)
	if _, err := s.Prepare("kept", "", nil); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(s.root, "999")
	writeFile(t, filepath.Join(orphan, "fs", "f"), "x")
	n, err := s.Orphans()
	if err != nil || n != 1 {
		t.Fatalf("Orphans: %d, %v", n, err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatal("orphan still there")
	}
	if dir, _ := s.Dir("kept"); dir == "" {
		t.Fatal("recorded snapshot lost")
	} else if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveRefusesASnapshotWithAMountInside(t *testing.T) {
	needRoot(t)
	s := newSnapshotter(t, Overlay)
	if _, err := s.Prepare("busy", "", nil); err != nil {
		t.Fatal(err)
	}
	dir, _ := s.Dir("busy")
	precious := t.TempDir()
	writeFile(t, filepath.Join(precious, "keep"), "x")
	inside := filepath.Join(dir, "mnt")
	os.Mkdir(inside, 0o755)
	if err := unix.Mount(precious, inside, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(inside, unix.MNT_DETACH)
	if err := s.Remove("busy"); err == nil {
		t.Fatal("removed a snapshot with a mount inside")
	}
	if _, err := os.Stat(filepath.Join(precious, "keep")); err != nil {
		t.Fatalf("the mounted tree lost its file: %v", err)
	}
}

func TestAStoreKeepsItsDriver(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	db, _ := metadata.Open(filepath.Join(dir, "m.db"))
	if _, err := New(filepath.Join(dir, "s"), db, Copy); err != nil {
		t.Fatal(err)
	}
	if _, err := New(filepath.Join(dir, "s"), db, Overlay); err == nil {
		t.Fatal("reopened a copy store as overlay")
	}
	s, err := New(filepath.Join(dir, "s"), db, "")
	if err != nil || s.Driver() != Copy {
		t.Fatalf("reopened with the default: %v, %v", s, err)
	}
}
