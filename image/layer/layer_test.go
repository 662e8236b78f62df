package layer

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// capNetBindService is a VFS_CAP_REVISION_2 security.capability value
// granting CAP_NET_BIND_SERVICE, permitted and effective.
func capNetBindService() string {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1) // revision 2, effective
	binary.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_NET_BIND_SERVICE)
	return string(b)
}

func TestEntryTypes(t *testing.T) {
	dir := t.TempDir()
	mtime := time.Date(2010, 1, 2, 3, 4, 5, 0, time.UTC)
	mtimeNs := mtime.Add(600) // only PAX headers keep sub-second times
	atime := time.Date(2011, 1, 2, 3, 4, 5, 0, time.UTC)
	xattrs := map[string]string{
		"SCHILY.xattr.user.comment":        "hello",
		"SCHILY.xattr.trusted.berth":       "t",
		"SCHILY.xattr.security.capability": capNetBindService(),
	}
	at := func(h *tar.Header) { h.ModTime = mtime }
	st := mustApply(t, dir, false,
		directory("d").with(func(h *tar.Header) { h.Mode = 0o1777; h.Uid = 12; h.Gid = 13; h.ModTime = mtime }),
		reg("d/file", "content").with(func(h *tar.Header) {
			h.Mode = 0o4751
			h.Uid, h.Gid = 1000, 1001
			h.ModTime, h.AccessTime = mtimeNs, atime
			h.Format = tar.FormatPAX
			h.PAXRecords = xattrs
		}),
		reg("d/sgid", "x").with(func(h *tar.Header) { h.Mode = 0o2755; h.Gid = 50; at(h) }),
		sym("d/link", "file").with(func(h *tar.Header) { h.Uid, h.Gid = 7, 8; at(h) }),
		sym("d/abslink", "/nonexistent/target").with(at),
		hard("d/hard", "d/file"),
		node("d/null", tar.TypeChar, 1, 3).with(func(h *tar.Header) { h.Mode = 0o666; h.Uid = 5; at(h) }),
		node("d/loop", tar.TypeBlock, 7, 0).with(func(h *tar.Header) { h.Mode = 0o660; h.Gid = 6; at(h) }),
		node("d/fifo", tar.TypeFifo, 0, 0).with(func(h *tar.Header) { h.Mode = 0o4620; at(h) }),
		directory("d/sub").with(func(h *tar.Header) { h.Mode = 0o2750; h.ModTime = mtime }),
		reg("d/sub/late", "written after d/sub's header").with(at),
		reg("implicit/parent/file", "parents not in the tar").with(at),
	)
	if st.Entries != 12 || st.Bytes != int64(len("content")+1+len("written after d/sub's header")+len("parents not in the tar")) {
		t.Errorf("stats %+v", st)
	}

	check := func(name string, typ, perm uint32, uid, gid uint32) *unix.Stat_t {
		t.Helper()
		s := lstat(t, filepath.Join(dir, name))
		if s.Mode&unix.S_IFMT != typ || (typ != unix.S_IFLNK && s.Mode&0o7777 != perm) || s.Uid != uid || s.Gid != gid {
			t.Errorf("%s: mode %o owner %d:%d, want type %o perm %o owner %d:%d", name, s.Mode, s.Uid, s.Gid, typ, perm, uid, gid)
		}
		want := mtime
		if name == "d/file" {
			want = mtimeNs
		}
		if name != "implicit" && name != "implicit/parent" && (s.Mtim.Sec != want.Unix() || s.Mtim.Nsec != int64(want.Nanosecond())) {
			t.Errorf("%s: mtime %v, want %v", name, time.Unix(s.Mtim.Unix()), want)
		}
		return s
	}
	check("d", unix.S_IFDIR, 0o1777, 12, 13)
	f := check("d/file", unix.S_IFREG, 0o4751, 1000, 1001)
	if f.Atim.Sec != atime.Unix() {
		t.Errorf("d/file: atime %v, want %v", time.Unix(f.Atim.Unix()), atime)
	}
	if f.Nlink != 2 {
		t.Errorf("d/file: %d links, want 2", f.Nlink)
	}
	if h := lstat(t, filepath.Join(dir, "d/hard")); h.Ino != f.Ino {
		t.Errorf("d/hard is not a hardlink of d/file")
	}
	if got := readFile(t, filepath.Join(dir, "d/file")); got != "content" {
		t.Errorf("d/file: %q", got)
	}
	check("d/sgid", unix.S_IFREG, 0o2755, 0, 50)
	check("d/link", unix.S_IFLNK, 0, 7, 8)
	check("d/abslink", unix.S_IFLNK, 0, 0, 0)
	for name, want := range map[string]string{"d/link": "file", "d/abslink": "/nonexistent/target"} {
		if got, _ := os.Readlink(filepath.Join(dir, name)); got != want {
			t.Errorf("%s -> %q, want %q", name, got, want)
		}
	}
	if s := check("d/null", unix.S_IFCHR, 0o666, 5, 0); s.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("d/null: rdev %x", s.Rdev)
	}
	if s := check("d/loop", unix.S_IFBLK, 0o660, 0, 6); s.Rdev != unix.Mkdev(7, 0) {
		t.Errorf("d/loop: rdev %x", s.Rdev)
	}
	check("d/fifo", unix.S_IFIFO, 0o4620, 0, 0)
	check("d/sub", unix.S_IFDIR, 0o2750, 0, 0)
	check("implicit", unix.S_IFDIR, 0o755, 0, 0)
	check("implicit/parent", unix.S_IFDIR, 0o755, 0, 0)

	for attr, want := range xattrs {
		attr = strings.TrimPrefix(attr, "SCHILY.xattr.")
		got, err := lgetxattr(filepath.Join(dir, "d/file"), attr)
		if err != nil || got != want {
			t.Errorf("d/file xattr %s = %q, %v; want %q", attr, got, err, want)
		}
	}
}

func TestDirectoryTimesSetLast(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, true,
		directory("./"),
		directory("a"),
		directory("a/b"),
		reg("a/b/f", "x"),
		reg("a/g", "y"),
		sym("a/b/l", "f"),
		node("a/b/n", tar.TypeFifo, 0, 0),
		reg("top", "z"),
		whiteout("a/gone"),
		opaque("a/b"),
	)
	for _, name := range []string{".", "a", "a/b"} {
		if s := lstat(t, filepath.Join(dir, name)); s.Mtim.Sec != epoch.Unix() {
			t.Errorf("%s: mtime %v, want %v", name, time.Unix(s.Mtim.Unix()), epoch)
		}
	}
}

func TestRootEntry(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, false, directory("./").with(func(h *tar.Header) { h.Mode = 0o750; h.Uid, h.Gid = 3, 4 }))
	if s := lstat(t, dir); s.Mode&0o7777 != 0o750 || s.Uid != 3 || s.Gid != 4 {
		t.Errorf("root: mode %o owner %d:%d", s.Mode, s.Uid, s.Gid)
	}
	for _, e := range []entry{reg(".", "x"), reg("", "x"), sym(".", "x"), node("/.", tar.TypeFifo, 0, 0)} {
		if _, err := apply(t, t.TempDir(), false, e); err == nil {
			t.Errorf("%q of type %q over the root: no error", e.hdr.Name, e.hdr.Typeflag)
		}
	}
}

func TestNames(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, false,
		reg("/abs", "1"),
		reg("./dot", "2"),
		reg("a/../b", "3"),
		reg("//double//slash", "4"),
	)
	for name, want := range map[string]string{"abs": "1", "dot": "2", "b": "3", "double/slash": "4"} {
		if got := readFile(t, filepath.Join(dir, name)); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if exists(filepath.Join(dir, "a")) {
		t.Errorf("a/../b created a")
	}
	long := strings.Repeat("d/", 2048) + "f"
	if _, err := apply(t, t.TempDir(), false, reg(long, "")); err == nil || !strings.Contains(err.Error(), "PATH_MAX") {
		t.Errorf("name of %d bytes: %v", len(long), err)
	}
}

func TestReplace(t *testing.T) {
	t.Run("file over file", func(t *testing.T) {
		dir := t.TempDir()
		mustApply(t, dir, false, reg("f", "old"), hard("other", "f"))
		mustApply(t, dir, false, reg("f", "new").with(func(h *tar.Header) { h.Mode = 0o600 }))
		if got := readFile(t, filepath.Join(dir, "f")); got != "new" {
			t.Errorf("f: %q", got)
		}
		// A new inode: the old one's other name keeps its content.
		if got := readFile(t, filepath.Join(dir, "other")); got != "old" {
			t.Errorf("other: %q, the write went through to the old inode", got)
		}
		if s := lstat(t, filepath.Join(dir, "f")); s.Mode&0o777 != 0o600 || s.Nlink != 1 {
			t.Errorf("f: mode %o nlink %d", s.Mode, s.Nlink)
		}
	})
	t.Run("dir over dir merges", func(t *testing.T) {
		dir := t.TempDir()
		mustApply(t, dir, false, directory("d"), reg("d/keep", "k"))
		mustApply(t, dir, false, directory("d").with(func(h *tar.Header) { h.Mode = 0o700; h.Uid = 9 }), reg("d/new", "n"))
		if !exists(filepath.Join(dir, "d/keep")) || !exists(filepath.Join(dir, "d/new")) {
			t.Errorf("d was not merged")
		}
		if s := lstat(t, filepath.Join(dir, "d")); s.Mode&0o7777 != 0o700 || s.Uid != 9 || s.Mtim.Sec != epoch.Unix() {
			t.Errorf("d: mode %o uid %d mtime %d: not updated", s.Mode, s.Uid, s.Mtim.Sec)
		}
	})
	for _, e := range []entry{reg("d", "file"), sym("d", "target"), hard("d", "h"), node("d", tar.TypeFifo, 0, 0)} {
		t.Run(string(e.hdr.Typeflag)+" over dir", func(t *testing.T) {
			dir := t.TempDir()
			mustApply(t, dir, false, reg("h", "h"), directory("d"), directory("d/sub"), reg("d/sub/f", "f"))
			mustApply(t, dir, false, e)
			if s := lstat(t, filepath.Join(dir, "d")); s.Mode&unix.S_IFMT == unix.S_IFDIR {
				t.Errorf("d is still a directory")
			}
		})
	}
	for _, lower := range []entry{reg("x", "file"), sym("x", "d"), node("x", tar.TypeFifo, 0, 0)} {
		t.Run("dir over "+string(lower.hdr.Typeflag), func(t *testing.T) {
			dir := t.TempDir()
			mustApply(t, dir, false, directory("d"), reg("d/in-d", "must stay"), lower)
			mustApply(t, dir, false, directory("x").with(func(h *tar.Header) { h.Mode = 0o711 }), reg("x/f", "f"))
			if s := lstat(t, filepath.Join(dir, "x")); s.Mode&unix.S_IFMT != unix.S_IFDIR || s.Mode&0o777 != 0o711 {
				t.Errorf("x: mode %o, want a 0711 directory", s.Mode)
			}
			if s := lstat(t, filepath.Join(dir, "d")); s.Mode&0o777 != 0o755 || exists(filepath.Join(dir, "d/f")) {
				t.Errorf("the symlink was followed: d is mode %o", s.Mode)
			}
		})
	}
	t.Run("file over symlink does not write through", func(t *testing.T) {
		dir := t.TempDir()
		mustApply(t, dir, false, reg("target", "target"), sym("link", "target"), sym("dangling", "nowhere"))
		mustApply(t, dir, false, reg("link", "new"), reg("dangling", "new"))
		if got := readFile(t, filepath.Join(dir, "target")); got != "target" {
			t.Errorf("target: %q: written through the symlink", got)
		}
		if exists(filepath.Join(dir, "nowhere")) {
			t.Errorf("nowhere created through a dangling symlink")
		}
		for _, name := range []string{"link", "dangling"} {
			if s := lstat(t, filepath.Join(dir, name)); s.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Errorf("%s: mode %o, want a regular file", name, s.Mode)
			}
		}
	})
	t.Run("same layer, twice", func(t *testing.T) {
		dir := t.TempDir()
		mustApply(t, dir, true, reg("f", "1"), reg("f", "2"), hard("f", "f"), directory("d"), reg("d", "3"), directory("d"), reg("d/x", "4"))
		if got := readFile(t, filepath.Join(dir, "f")); got != "2" {
			t.Errorf("f: %q", got)
		}
		if got := readFile(t, filepath.Join(dir, "d/x")); got != "4" {
			t.Errorf("d/x: %q", got)
		}
	})
}

func TestHardlinks(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, false,
		reg("a/f", "f"),
		sym("a/s", "f"),
		sym("root", "/"),
		hard("b/to-f", "a/f"),
		hard("b/abs", "/a/f"),
		hard("b/via-root", "root/a/f"),
		hard("b/to-symlink", "a/s"),
	)
	f := lstat(t, filepath.Join(dir, "a/f"))
	for _, name := range []string{"b/to-f", "b/abs", "b/via-root"} {
		if s := lstat(t, filepath.Join(dir, name)); s.Ino != f.Ino {
			t.Errorf("%s is not a link to a/f", name)
		}
	}
	// Links are made to a symlink itself, not to what it points at.
	if s := lstat(t, filepath.Join(dir, "b/to-symlink")); s.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("b/to-symlink: mode %o, want a symlink", s.Mode)
	}

	for _, tc := range []struct {
		target, want string
	}{
		{"missing", "does not exist"},
		{"missing-dir/f", "does not exist"},
		{"../../etc/passwd", "climbs out"},
		{"/etc/passwd", "does not exist"},
		{"a", "not a file"},
		{".", "root"},
	} {
		_, err := apply(t, t.TempDir(), false, directory("a"), hard("l", tc.target))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"l"`) {
			t.Errorf("hardlink to %q: %v, want an error naming the entry and saying %q", tc.target, err, tc.want)
		}
	}
}

func TestLimits(t *testing.T) {
	dir := t.TempDir()
	_, err := Apply(dir, bytes.NewReader(layerTar(t, reg("a", "12345"), reg("b", "67890"))), Options{MaxBytes: 9})
	if !isLimit(err, "MaxBytes") || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("MaxBytes 9, 10 bytes: %v", err)
	}
	_, err = Apply(t.TempDir(), bytes.NewReader(layerTar(t, reg("a", "12345"), reg("b", "67890"))), Options{MaxBytes: 10})
	if err != nil {
		t.Errorf("MaxBytes 10, 10 bytes: %v", err)
	}
	_, err = Apply(t.TempDir(), bytes.NewReader(layerTar(t, directory("a"), directory("b"), directory("c"))), Options{MaxEntries: 2})
	if !isLimit(err, "MaxEntries") {
		t.Errorf("MaxEntries 2, 3 entries: %v", err)
	}
	trailing := append(layerTar(t, reg("a", "12345")), make([]byte, 4096)...)
	if _, err = Apply(t.TempDir(), bytes.NewReader(trailing), Options{MaxBytes: 1000}); !isLimit(err, "MaxBytes") {
		t.Errorf("4 KiB after the archive, MaxBytes 1000: %v", err)
	}
	if _, err = Apply(t.TempDir(), bytes.NewReader(trailing), Options{}); err != nil {
		t.Errorf("4 KiB of padding after the archive: %v", err)
	}
	if _, err = Apply(t.TempDir(), bytes.NewReader(nil), Options{MaxBytes: -1}); err == nil {
		t.Errorf("negative limit: no error")
	}

	// A header declaring a huge file, followed by an endless stream:
	// the limit must stop it before any of the content is read.
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bomb", Size: 1 << 40, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	endless := &countingReader{r: zeros{}}
	_, err = Apply(dir, io.MultiReader(bytes.NewReader(hdr.Bytes()), endless), Options{MaxBytes: 1 << 20})
	if !isLimit(err, "MaxBytes") {
		t.Errorf("1 TiB entry: %v", err)
	}
	if endless.n != 0 {
		t.Errorf("read %d bytes of an entry over the limit", endless.n)
	}
	if exists(filepath.Join(dir, "bomb")) {
		t.Errorf("bomb created")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestBadInput(t *testing.T) {
	valid := layerTar(t, reg("a", strings.Repeat("x", 2000)))
	badSum := bytes.Clone(valid)
	badSum[0] ^= 1
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"empty":            {nil, "empty stream"},
		"cut in a header":  {valid[:100], "unexpected EOF"},
		"cut in content":   {valid[:512+1000], "unexpected EOF"},
		"garbage":          {bytes.Repeat([]byte("not a tar "), 100), "invalid tar header"},
		"bad checksum":     {badSum, "invalid tar header"},
		"unsupported type": {layerTar(t, entry{hdr: tar.Header{Typeflag: 'V', Name: "volume", ModTime: epoch}}), "unsupported entry type"},
		"owner too large":  {layerTar(t, reg("a", "").with(func(h *tar.Header) { h.Uid = 1 << 33; h.Format = tar.FormatPAX })), "out of range"},
		"device too large": {layerTar(t, node("n", tar.TypeChar, 1<<33, 0).with(func(h *tar.Header) { h.Format = tar.FormatGNU })), "out of range"},
	} {
		_, err := Apply(t.TempDir(), bytes.NewReader(tc.data), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
	// archive/tar with GODEBUG=tarinsecurepath=0 returns ErrInsecurePath
	// with the header; Apply makes up its own mind.
	t.Setenv("GODEBUG", "tarinsecurepath=0")
	dir := t.TempDir()
	mustApply(t, dir, false, reg("/abs", "x"))
	if !exists(filepath.Join(dir, "abs")) {
		t.Errorf("/abs not applied with tarinsecurepath=0")
	}
	if _, err := apply(t, t.TempDir(), false, reg("../x", "x")); err == nil || errors.Is(err, tar.ErrInsecurePath) {
		t.Errorf("../x with tarinsecurepath=0: %v", err)
	}
}

func TestChmodViaProc(t *testing.T) {
	// The path taken on kernels without fchmodat2.
	dir := t.TempDir()
	mustApply(t, dir, false, node("fifo", tar.TypeFifo, 0, 0), sym("link", "fifo"))
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	if err := chmodViaProc(d, "fifo", 0o4711); err != nil {
		t.Fatal(err)
	}
	if s := lstat(t, filepath.Join(dir, "fifo")); s.Mode&0o7777 != 0o4711 {
		t.Errorf("fifo: mode %o", s.Mode)
	}
	if err := chmodViaProc(d, "link", 0o600); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("chmod of a symlink: %v", err)
	}
	if s := lstat(t, filepath.Join(dir, "fifo")); s.Mode&0o7777 != 0o4711 {
		t.Errorf("fifo changed through the symlink: mode %o", s.Mode)
	}
}

func TestDirCache(t *testing.T) {
	// Many directories visited in turn, more than the cache holds, and
	// replaced under cached names.
	var ents []entry
	for i := range 3 {
		for j := range 20 {
			d := filepath.Join("r", string(rune('a'+j)))
			ents = append(ents, directory(d), reg(filepath.Join(d, "f"+string(rune('0'+i))), "x"))
		}
	}
	ents = append(ents,
		// "s" is cached as r/b, then points elsewhere.
		sym("s", "r/b"),
		reg("s/1", "in r/b"),
		sym("s", "r/c"),
		reg("s/2", "in r/c"),
		// x/d/e is cached, then removed with x/d and made anew.
		directory("x/d/e"),
		reg("x/d/e/f", ""),
		reg("x/d", "x/d is a file now"),
		reg("x/d/e/g", ""),
	)
	dir := t.TempDir()
	_, err := apply(t, dir, false, ents...)
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a file through a file: %v", err)
	}
	ents[len(ents)-1] = directory("x/d")
	ents = append(ents, reg("x/d/e/g", "g"))
	dir = t.TempDir()
	mustApply(t, dir, false, ents...)
	for j := range 20 {
		for i := range 3 {
			if !exists(filepath.Join(dir, "r", string(rune('a'+j)), "f"+string(rune('0'+i)))) {
				t.Errorf("r/%c/f%d missing", 'a'+j, i)
			}
		}
	}
	if !exists(filepath.Join(dir, "r/b/1")) || !exists(filepath.Join(dir, "r/c/2")) || exists(filepath.Join(dir, "r/b/2")) {
		t.Errorf("s/2 went to a stale directory")
	}
	if exists(filepath.Join(dir, "x/d/e/f")) || readFile(t, filepath.Join(dir, "x/d/e/g")) != "g" {
		t.Errorf("x/d/e/g went to a stale directory")
	}
}

func TestXattrsOnLinksAndNodes(t *testing.T) {
	dir := t.TempDir()
	xattrs := func(h *tar.Header) {
		h.Format = tar.FormatPAX
		h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.x": "on-it", "SCHILY.xattr.user.x": "dropped"}
	}
	mustApply(t, dir, false,
		reg("target", "t"),
		sym("link", "target").with(xattrs),
		node("fifo", tar.TypeFifo, 0, 0).with(xattrs),
		node("null", tar.TypeChar, 1, 3).with(xattrs),
	)
	for _, name := range []string{"link", "fifo", "null"} {
		p := filepath.Join(dir, name)
		if v, err := lgetxattr(p, "trusted.x"); err != nil || v != "on-it" {
			t.Errorf("%s: trusted.x = %q, %v", name, v, err)
		}
		// Linux allows user.* only on regular files and directories.
		if _, err := lgetxattr(p, "user.x"); err == nil {
			t.Errorf("%s: user.x set", name)
		}
	}
	if _, err := lgetxattr(filepath.Join(dir, "target"), "trusted.x"); err == nil {
		t.Errorf("the symlink's xattr went to its target")
	}
}

// TestSetgidParents checks the owner of new entries in setgid directories,
// where a new file takes the directory's group and Apply must chown it even
// when the header's owner is Apply's own.
func TestSetgidParents(t *testing.T) {
	dir := t.TempDir()
	sg := func(gid int) func(*tar.Header) {
		return func(h *tar.Header) { h.Mode = 0o2755; h.Gid = gid }
	}
	mustApply(t, dir, false,
		directory("sg").with(sg(50)),
		reg("sg/f", "f"),
		directory("sg/sub"),
		sym("sg/link", "f"),
		node("sg/fifo", tar.TypeFifo, 0, 0),
		reg("sg/implicit/f", "f"),
		directory("plain"),
		sym("alias", "plain"),
		reg("alias/before", "cached as not setgid"),
		directory("plain").with(sg(60)),
		reg("alias/after", "must see the setgid bit"),
	)
	for _, name := range []string{"sg/f", "sg/sub", "sg/link", "sg/fifo", "sg/implicit/f", "plain/before", "plain/after"} {
		if s := lstat(t, filepath.Join(dir, name)); s.Gid != 0 {
			t.Errorf("%s: group %d, want 0", name, s.Gid)
		}
	}
	if s := lstat(t, filepath.Join(dir, "sg/sub")); s.Mode&unix.S_ISGID != 0 {
		t.Errorf("sg/sub: mode %o, kept the inherited setgid bit", s.Mode)
	}
}
