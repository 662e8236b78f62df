package layer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// overlayOpaque marks a directory in an overlayfs layer whose lower
// counterparts are hidden.
const overlayOpaque = "trusted.overlay.opaque"

// A whiteout hides what lower layers have under its name, never what its
// own layer has (image-spec: "files that are present in the same layer as
// a whiteout file can only be hidden by whiteout files in subsequent
// layers"). So when a layer has both ".wh.X" and X, X is what shows, and
// if X is a directory nothing of the lower layers' X shows through: X
// becomes opaque. Both modes produce that whatever the order of the two
// in the tar.

type pendingWhiteout struct {
	entry string // the tar name, for errors
	name  string // what it hides
}

// whiteout applies the whiteout entry base (".wh." something) in parent.
func (a *applier) whiteout(entry, parent, base string) error {
	if base == opaqueMarker {
		return a.opaque(parent)
	}
	if strings.HasPrefix(base, aufsMetaPrefix) {
		return nil
	}
	victim := base[len(whiteoutPrefix):]
	if victim == "" || victim == "." || victim == ".." {
		return fmt.Errorf("whiteout %q names no file", base)
	}
	name := join(parent, victim)

	if a.overlay {
		// The device is made once all of the layer's own entries are
		// there: an X later in the tar must replace it, and X/child
		// must not find a device where its parent should be.
		a.whiteouts = append(a.whiteouts, pendingWhiteout{entry: entry, name: name})
		return nil
	}

	a.markOurs(parent)
	// Nothing is created for a whiteout: if its directory is missing
	// there is nothing to hide.
	pfd, _, err := a.dirs.get(parent, false)
	if errNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if a.isOurs(name) {
		return a.hideLowerAt(pfd, victim, name)
	}
	return a.clear(parent, pfd, victim, name)
}

// finishWhiteouts makes the overlayfs whiteouts: a 0/0 character device
// where the layer has nothing by that name, the opaque xattr where it has a
// directory.
func (a *applier) finishWhiteouts() error {
	for _, w := range a.whiteouts {
		if err := a.overlayWhiteout(w.name); err != nil {
			return fmt.Errorf("layer entry %q: %w", w.entry, err)
		}
	}
	return nil
}

func (a *applier) overlayWhiteout(name string) error {
	parent, victim := split(name)
	pfd, _, err := a.dirs.get(parent, false)
	if errors.Is(err, unix.ENOENT) {
		pfd, _, err = a.dirs.get(parent, true)
	}
	if errors.Is(err, unix.ENOTDIR) {
		// The layer has a non-directory on the way, which hides all
		// of the lower layers' content below it anyway.
		return nil
	}
	if err != nil {
		return err
	}
	if a.copiedUp[name] {
		// Copied up for a hardlink, not the layer's own: the whiteout
		// hides it (the link keeps the content under its own name).
		if err := unix.Unlinkat(pfd, victim, 0); err != nil {
			return &os.PathError{Op: "unlink", Path: name, Err: err}
		}
	}
	err = unix.Mknodat(pfd, victim, unix.S_IFCHR, 0)
	if !errors.Is(err, unix.EEXIST) {
		if err != nil {
			return &os.PathError{Op: "mknod whiteout", Path: name, Err: err}
		}
		return nil
	}
	fd, err := unix.Openat(pfd, victim, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	return setOpaque(fd, name)
}

func setOpaque(fd int, name string) error {
	if err := unix.Fsetxattr(fd, overlayOpaque, []byte("y"), 0); err != nil {
		return &os.PathError{Op: "setxattr " + overlayOpaque, Path: name, Err: err}
	}
	return nil
}

// opaque applies an opaque marker: lower layers' content of dir is hidden.
func (a *applier) opaque(dir string) error {
	a.markOurs(dir)
	pfd, _, err := a.dirs.get(dir, true)
	if err != nil {
		return err
	}
	// The cached descriptor may be O_PATH, which takes no xattrs and
	// cannot be read.
	fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if a.overlay {
		return setOpaque(fd, dir)
	}
	return a.hideLower(fd, dir)
}

// hideLowerAt hides the lower layers' content of base in pfd, an entry of
// this layer, if it is a directory.
func (a *applier) hideLowerAt(pfd int, base, name string) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errNotFound(err) || errors.Is(err, unix.ELOOP) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	return a.hideLower(fd, name)
}

// hideLower removes what lower layers put in the directory fd (named dir).
func (a *applier) hideLower(fd int, dir string) error {
	if a.buf == nil {
		a.buf = make([]byte, copyBufSize)
	}
	removed, err := a.pruneLower(fd, dir)
	if removed {
		a.dirs.invalidate(dir)
	}
	return err
}

// pruneLower removes from the directory fd (named dir) everything this
// layer did not create, descending into the directories it did: what they
// hold from lower layers is hidden too.
func (a *applier) pruneLower(fd int, dir string) (removed bool, err error) {
	names, err := readDirNames(fd, a.buf)
	if err != nil {
		return false, fmt.Errorf("%s: %w", dir, err)
	}
	for _, n := range names {
		child := join(dir, n)
		if !a.isOurs(child) {
			if err := removeAll(fd, n, a.buf); err != nil {
				return true, &os.PathError{Op: "remove", Path: child, Err: err}
			}
			removed = true
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return removed, &os.PathError{Op: "fstatat", Path: child, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		cfd, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return removed, &os.PathError{Op: "open", Path: child, Err: err}
		}
		r, err := a.pruneLower(cfd, child)
		unix.Close(cfd)
		removed = removed || r
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}
