package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A layer may hardlink to a file only its base has (the file was linked,
// not rewritten, when the layer was made). Unpacked alone for overlayfs,
// the file is copied up from the nearest lower layer, as overlayfs would.
func TestHardlinkToALowerLayerCopiesItUp(t *testing.T) {
	base := t.TempDir()
	if _, err := apply(t, base, true, entry{hdr: reg("bin/tool", "").hdr, body: "#!tool"}); err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(base, "bin/tool")
	if err := unix.Setxattr(tool, "user.origin", []byte("base"), 0); err != nil {
		t.Fatal(err)
	}
	os.Chown(tool, 1000, 1001)
	unix.Chmod(tool, 0o4750)
	if st := lstat(t, tool); st.Mode&0o7777 != 0o4750 {
		t.Fatalf("test setup: mode %o", st.Mode&0o7777)
	}

	// Alone, the link cannot be made; the caller retries with lowers.
	if _, err := apply(t, t.TempDir(), true, hard("bin/alias", "bin/tool")); !errors.Is(err, ErrLinkBelow) {
		t.Fatalf("without lowers: %v, want ErrLinkBelow", err)
	}

	dir := t.TempDir()
	ents := []entry{hard("bin/alias", "bin/tool")}
	if _, err := applyOpts(t, dir, Options{Overlay: true, Lowers: []string{base}}, ents...); err != nil {
		t.Fatal(err)
	}
	var st, alias unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "bin/tool"), &st); err != nil {
		t.Fatal(err)
	}
	unix.Lstat(filepath.Join(dir, "bin/alias"), &alias)
	if st.Ino != alias.Ino || st.Nlink != 2 {
		t.Fatalf("alias is not a link to the copied-up tool (inodes %d, %d; links %d)", st.Ino, alias.Ino, st.Nlink)
	}
	if st.Uid != 1000 || st.Gid != 1001 || st.Mode&0o7777 != 0o4750 {
		t.Fatalf("copied up as %d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	v := make([]byte, 16)
	if n, err := unix.Getxattr(filepath.Join(dir, "bin/tool"), "user.origin", v); err != nil || string(v[:n]) != "base" {
		t.Fatalf("xattr not copied up: %q, %v", v[:n], err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bin/alias")); string(b) != "#!tool" {
		t.Fatalf("content %q", b)
	}
}

func TestHardlinkBelowRespectsWhiteoutsAndStaysInside(t *testing.T) {
	base := t.TempDir()
	if _, err := apply(t, base, true, reg("gone", "x"), reg("etc/secret", "lower"), sym("evil", "/etc")); err != nil {
		t.Fatal(err)
	}
	middle := t.TempDir()
	if _, err := apply(t, middle, true, whiteout("gone")); err != nil {
		t.Fatal(err)
	}
	lowers := []string{middle, base}
	_, err := applyOpts(t, t.TempDir(), Options{Overlay: true, Lowers: lowers}, hard("again", "gone"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("link to a whited-out file: %v", err)
	}
	// A target through a lower layer's symlink is refused: never the
	// host's /etc/passwd, and never a copy that would hide the symlink.
	for _, target := range []string{"evil/passwd", "evil/secret"} {
		dir := t.TempDir()
		if _, err := applyOpts(t, dir, Options{Overlay: true, Lowers: lowers}, hard("pw", target)); err == nil {
			b, _ := os.ReadFile(filepath.Join(dir, "pw"))
			t.Fatalf("linked %s through a lower symlink: %q", target, b)
		}
	}
}

func applyOpts(t testing.TB, dir string, o Options, ents ...entry) (Stats, error) {
	t.Helper()
	return Apply(dir, bytes.NewReader(layerTar(t, ents...)), o)
}

// The copy-up finds what overlayfs would show: a lower layer's own file
// under its own opaque directory, and nothing under a nearer file.
func TestHardlinkBelowFollowsOverlayLookup(t *testing.T) {
	base := t.TempDir()
	mustApply(t, base, true, reg("d/f", "in an opaque dir"), opaque("d"), reg("x/y", "under a dir"))
	nearer := t.TempDir()
	mustApply(t, nearer, true, reg("x", "a file where x/ was"))
	lowers := []string{nearer, base}

	dir := t.TempDir()
	if _, err := applyOpts(t, dir, Options{Overlay: true, Lowers: lowers}, hard("g", "d/f")); err != nil {
		t.Fatalf("the opaque directory hid its own file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "g")); string(b) != "in an opaque dir" {
		t.Fatalf("g reads %q", b)
	}
	if _, err := applyOpts(t, t.TempDir(), Options{Overlay: true, Lowers: lowers}, hard("h", "x/y")); err == nil {
		t.Fatal("x/y was found below a nearer layer's file x")
	}
}

// A layer that links to a lower file and whites out the old name keeps the
// link and hides the name, as a mounted overlay would show it.
func TestWhiteoutOfACopiedUpFileStillHidesIt(t *testing.T) {
	base := t.TempDir()
	mustApply(t, base, true, reg("old", "content"))
	dir := t.TempDir()
	if _, err := applyOpts(t, dir, Options{Overlay: true, Lowers: []string{base}}, hard("new", "old"), whiteout("old")); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, filepath.Join(dir, "old")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("old is %o, not a whiteout", st.Mode)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new")); string(b) != "content" {
		t.Fatalf("new reads %q", b)
	}
}

// Parents made for a copied-up file carry the lower directories' owner and
// mode, not the 0755 root:root of a parent the tar does not list.
func TestCopiedUpParentsKeepTheirMetadata(t *testing.T) {
	base := t.TempDir()
	mustApply(t, base, true,
		directory("home/u").with(func(h *tar.Header) { h.Mode, h.Uid, h.Gid = 0o700, 1000, 1000 }),
		reg("home/u/f", "x"))
	dir := t.TempDir()
	if _, err := applyOpts(t, dir, Options{Overlay: true, Lowers: []string{base}}, hard("home/u/g", "home/u/f")); err != nil {
		t.Fatal(err)
	}
	st := lstat(t, filepath.Join(dir, "home/u"))
	if st.Mode&0o7777 != 0o700 || st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("home/u is %o %d:%d, want 700 1000:1000", st.Mode&0o7777, st.Uid, st.Gid)
	}
	if b := lstat(t, filepath.Join(base, "home/u")); b.Mtim != st.Mtim {
		t.Fatalf("home/u mtime %v, lower's %v", st.Mtim, b.Mtim)
	}
}

// A lower layer's device node is never opened (that would run its driver
// on the host).
func TestHardlinkToALowerDeviceIsRefusedWithoutOpeningIt(t *testing.T) {
	base := t.TempDir()
	// 1:3 is /dev/null, harmless to open, but the error shows whether it
	// was opened: "not a regular file" comes before any open.
	mustApply(t, base, true, node("dev/thing", tar.TypeChar, 1, 3))
	_, err := applyOpts(t, t.TempDir(), Options{Overlay: true, Lowers: []string{base}}, hard("l", "dev/thing"))
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("link to a lower device: %v", err)
	}
}
