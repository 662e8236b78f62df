package layer

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// epoch is a fixed mtime, far from now, so that a time that was not set
// shows.
var epoch = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// entry is a tar entry to write: its header, and its content for regular
// files (Size is filled in).
type entry struct {
	hdr  tar.Header
	body string
}

func reg(name, body string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: epoch}, body: body}
}

func directory(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch}}
}

func sym(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch}}
}

func hard(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: epoch}}
}

func node(name string, typ byte, major, minor int64) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o600, Devmajor: major, Devminor: minor, ModTime: epoch}}
}

// whiteout is an (empty, regular) whiteout file for name.
func whiteout(name string) entry {
	d, b := filepath.Split(name)
	return reg(d+".wh."+b, "")
}

func opaque(dir string) entry {
	return reg(filepath.Join(dir, ".wh..wh..opq"), "")
}

// with returns e changed by f, for the odd field.
func (e entry) with(f func(h *tar.Header)) entry {
	f(&e.hdr)
	return e
}

func layerTar(t testing.TB, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("write %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func apply(t testing.TB, dir string, overlay bool, ents ...entry) (Stats, error) {
	t.Helper()
	return Apply(dir, bytes.NewReader(layerTar(t, ents...)), Options{Overlay: overlay})
}

func mustApply(t testing.TB, dir string, overlay bool, ents ...entry) Stats {
	t.Helper()
	st, err := apply(t, dir, overlay, ents...)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return st
}

func lstat(t testing.TB, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return &st
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func lgetxattr(p, attr string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, attr, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// fileState is what a test checks has not changed outside the target.
type fileState struct {
	mode       uint32
	uid, gid   uint32
	nlink      uint64
	size       int64
	mtime, ctm unix.Timespec
	ino        uint64
	sum        [32]byte
	link       string
	xattrs     string
}

func (s fileState) String() string {
	return fmt.Sprintf("mode %o %d:%d nlink %d size %d mtime %v ctime %v ino %d link %q xattrs %q",
		s.mode, s.uid, s.gid, s.nlink, s.size, s.mtime, s.ctm, s.ino, s.link, s.xattrs)
}

// snapshot records the state of every file under each root, except the
// excluded directory (the target) and what it holds.
func snapshot(t testing.TB, exclude string, roots ...string) map[string]fileState {
	t.Helper()
	m := make(map[string]fileState)
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == exclude {
				return fs.SkipDir
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			s := fileState{mode: st.Mode, uid: st.Uid, gid: st.Gid, nlink: st.Nlink, size: st.Size,
				mtime: st.Mtim, ctm: st.Ctim, ino: st.Ino}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				s.sum = sha256.Sum256(b)
			case unix.S_IFLNK:
				s.link, _ = os.Readlink(p)
			}
			buf := make([]byte, 4096)
			if n, err := unix.Llistxattr(p, buf); err == nil {
				names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
				sort.Strings(names)
				s.xattrs = strings.Join(names, ",")
			}
			m[p] = s
			return nil
		})
		if err != nil {
			t.Fatalf("snapshot %s: %v", root, err)
		}
	}
	return m
}

// sameOutside fails if anything outside the target changed.
func sameOutside(t testing.TB, before, after map[string]fileState) {
	t.Helper()
	for p, b := range before {
		a, ok := after[p]
		if !ok {
			t.Errorf("%s disappeared", p)
			continue
		}
		if a != b {
			t.Errorf("%s changed:\n before %v\n after  %v", p, b, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

// sandbox is a target directory with things around it that a layer must
// not touch: a sentinel file and directory next to it, a hardlink-able
// file, and a separate directory elsewhere.
type sandbox struct {
	parent, dir, outside string
	sentinel             string // parent/sentinel
	victimDir            string // parent/victim, with a file inside
	far                  string // outside/far
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	parent := t.TempDir()
	s := &sandbox{
		parent:    parent,
		dir:       filepath.Join(parent, "dir"),
		outside:   t.TempDir(),
		sentinel:  filepath.Join(parent, "sentinel"),
		victimDir: filepath.Join(parent, "victim"),
	}
	s.far = filepath.Join(s.outside, "far")
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.sentinel, "sentinel")
	writeFile(t, filepath.Join(s.victimDir, "inside"), "inside")
	writeFile(t, s.far, "far")
	if err := os.Symlink("sentinel", filepath.Join(parent, "sentinel-link")); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *sandbox) snapshot(t testing.TB) map[string]fileState {
	return snapshot(t, s.dir, s.parent, s.outside)
}

func isLimit(err error, limit string) bool {
	return errors.Is(err, ErrLimit) && strings.Contains(err.Error(), limit)
}
