package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// noWhiteoutNames fails if a name starting with ".wh." is in the tree.
func noWhiteoutNames(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(d.Name(), ".wh.") {
			t.Errorf("%s: a whiteout file in the output", p)
		}
		return nil
	})
}

func isWhiteoutDevice(t *testing.T, p string) bool {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isOpaque(p string) bool {
	v, err := lgetxattr(p, "trusted.overlay.opaque")
	return err == nil && v == "y"
}

func TestOverlayWhiteouts(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, true,
		whiteout("gone"),
		directory("d"),
		whiteout("d/gone"),
		opaque("d"),
		whiteout("deep/er/gone"), // parents not in the tar
		opaque("implicit/opq"),
		reg("kept-before", "mine"), whiteout("kept-before"),
		whiteout("kept-after"), reg("kept-after", "mine"),
		whiteout("dir-before"), directory("dir-before"), reg("dir-before/x", ""),
		directory("dir-after"), whiteout("dir-after"),
		whiteout("implicit-after"), reg("implicit-after/x", ""),
		reg("file/x", "").with(func(h *tar.Header) { h.Name = "file" }), whiteout("file/below"),
		reg(".wh..wh.plnk/12345", "aufs"), directory(".wh..wh.aufs"),
		directory("fake-opaque").with(func(h *tar.Header) {
			h.Format = tar.FormatPAX
			h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.trusted.overlay.redirect": "/etc"}
		}),
	)
	noWhiteoutNames(t, dir)
	for _, p := range []string{"gone", "d/gone", "deep/er/gone"} {
		if !isWhiteoutDevice(t, filepath.Join(dir, p)) {
			t.Errorf("%s is not a 0/0 character device", p)
		}
	}
	for _, p := range []string{"d", "implicit/opq", "dir-before", "dir-after", "implicit-after"} {
		if !isOpaque(filepath.Join(dir, p)) {
			t.Errorf("%s is not opaque", p)
		}
	}
	for _, p := range []string{".", "deep", "deep/er", "implicit", "fake-opaque"} {
		if isOpaque(filepath.Join(dir, p)) {
			t.Errorf("%s is opaque", p)
		}
	}
	if _, err := lgetxattr(filepath.Join(dir, "fake-opaque"), "trusted.overlay.redirect"); err == nil {
		t.Errorf("the layer set trusted.overlay.redirect")
	}
	for _, p := range []string{"kept-before", "kept-after"} {
		if got := readFile(t, filepath.Join(dir, p)); got != "mine" {
			t.Errorf("%s: %q: this layer's own entry was whited out", p, got)
		}
	}
	if s := lstat(t, filepath.Join(dir, "file")); s.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("file: mode %o", s.Mode)
	}
}

func TestApplyWhiteouts(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, false,
		reg("file", "lower"),
		reg("tree/a/b/c", "lower"),
		sym("tree/link", "/"),
		reg("opq/lower", "lower"),
		reg("opq/sub/lower", "lower"),
		reg("opq/sub/deeper/lower", "lower"),
		reg("opq/ours-later/lower", "lower"),
		reg("mixed/lower", "lower"),
		reg("mixed/keep", "lower"),
		reg("wo-dir/lower", "lower"),
		reg("wo-dir2/lower", "lower"),
	)
	mustApply(t, dir, false,
		whiteout("file"),
		whiteout("tree"),
		whiteout("never-there"),
		whiteout("missing-dir/x"),
		reg("opq/sub/mine-before", "mine"),
		opaque("opq"),
		reg("opq/mine-after", "mine"),
		reg("opq/ours-later/mine", "mine"),
		reg("mixed/mine", "mine"),
		whiteout("mixed/lower"),
		whiteout("mixed/mine"),
		directory("wo-dir"), reg("wo-dir/mine", "mine"), whiteout("wo-dir"),
		whiteout("wo-dir2"), reg("wo-dir2/mine", "mine"),
		reg(".wh..wh.plnk/1", "aufs"),
	)
	noWhiteoutNames(t, dir)
	var got []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			r, _ := filepath.Rel(dir, p)
			got = append(got, r)
		}
		return nil
	})
	want := []string{
		"mixed/keep", "mixed/mine",
		"opq/mine-after", "opq/ours-later/mine", "opq/sub/mine-before",
		"wo-dir/mine", "wo-dir2/mine",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("files after the whiteouts:\n got  %v\n want %v", got, want)
	}
	if exists(filepath.Join(dir, "missing-dir")) {
		t.Errorf("a whiteout created its directory")
	}
}

// describe lists a tree for comparison: type, mode, owner, content.
func describe(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		r, _ := filepath.Rel(root, p)
		line := fmt.Sprintf("%s %o %d:%d", r, st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %q mtime %d", b, st.Mtim.Sec)
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" dev %x", st.Rdev)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestOverlayMatchesApply applies layers both ways and checks that what
// overlayfs shows from the overlay-mode layers is what applying them one
// over another gives.
func TestOverlayMatchesApply(t *testing.T) {
	mode := func(m int64) func(*tar.Header) { return func(h *tar.Header) { h.Mode = m } }
	layers := [][]entry{{
		directory("etc"), reg("etc/passwd", "root"), reg("etc/conf.d/a", "a"), reg("etc/conf.d/b", "b"),
		reg("usr/bin/x", "x1"), reg("usr/bin/y", "y1"),
		reg("var/cache/c1", "c1"), reg("var/cache/sub/c2", "c2"),
		reg("opt/keep/k", "k"),
		sym("link", "etc"),
		reg("lib/file", "lib"),
		reg("gone/deep/deeper/f", "f"),
		reg("both/lower", "lower"), reg("both2/lower", "lower"),
		node("fifo", tar.TypeFifo, 0, 0),
		reg("dev/null-ish", "").with(mode(0o600)),
	}, {
		directory("etc").with(mode(0o700)),
		whiteout("etc/passwd"),
		whiteout("opt"),
		opaque("var/cache"), reg("var/cache/new", "new"), directory("var/cache/sub"), reg("var/cache/sub/n2", "n2"),
		reg("usr/bin/x", "x2"), reg("usr/bin/z", "z2"),
		reg("etc/conf.d/c", "c"), opaque("etc/conf.d"),
		reg("new2", "n"), whiteout("new2"),
		sym("lib", "usr/bin"),
		directory("link"), reg("link/inside", "i"),
		whiteout("gone"),
		whiteout("both"), directory("both"), reg("both/mine", "mine"),
		directory("both2"), reg("both2/mine", "mine"), whiteout("both2"),
		whiteout("fifo"), reg("fifo", "now a file"),
		whiteout("never-existed"),
		node("dev/null-ish", tar.TypeChar, 1, 3).with(mode(0o666)),
	}, {
		// Writers list the directories of changed entries; an overlay
		// layer cannot know the attributes of ones it does not list.
		directory("etc").with(mode(0o700)), directory("etc/conf.d"),
		whiteout("etc/conf.d/c"),
		whiteout("usr/bin/z"),
		whiteout("var/cache"),
		reg("var/cache/fresh", "fresh"),
		opaque("new3"), reg("new3/x", "x"),
		whiteout("both/mine"), reg("both/again", "again"),
		reg("usr/bin/y", "y3").with(mode(0o4755)),
	}}

	base := t.TempDir()
	flat := filepath.Join(base, "flat")
	merged := filepath.Join(base, "merged")
	var lowers []string
	for _, d := range []string{flat, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range layers {
		mustApply(t, flat, false, l...)
		d := filepath.Join(base, fmt.Sprint("layer", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		mustApply(t, d, true, l...)
		noWhiteoutNames(t, d)
		lowers = append([]string{d}, lowers...)
	}

	err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lowers, ":"))
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENODEV) {
		t.Skipf("cannot mount overlayfs here: %v", err)
	}
	if err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })

	got, want := describe(t, merged), describe(t, flat)
	// The roots differ in what is beside the trees, not in them.
	got, want = got[1:], want[1:]
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("overlayfs view of the overlay layers:\n%s\n\nlayers applied in one directory:\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range []string{"etc/passwd", "opt", "gone", "both/lower", "both/mine", "both2/lower", "etc/conf.d/a", "var/cache/c1", "usr/bin/z", "new2"} {
		if exists(filepath.Join(flat, p)) != (p == "new2") {
			t.Errorf("%s: exists %v", p, exists(filepath.Join(flat, p)))
		}
	}
}
