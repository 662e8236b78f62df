package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/inroot"
	"golang.org/x/sys/unix"
)

// Entries are created relative to their parent's descriptor, never
// following a symlink in the last component: O_NOFOLLOW, O_EXCL,
// AT_SYMLINK_NOFOLLOW, or calls that never follow (mkdirat, mknodat,
// symlinkat, linkat without AT_SYMLINK_FOLLOW, unlinkat). Creation is tried
// first and what is in the way is removed only on EEXIST, which costs
// nothing in the common case of a fresh directory.

func (a *applier) dir(name, parent, base string, hdr *tar.Header) error {
	uid, gid, err := owner(hdr)
	if err != nil {
		return err
	}
	perm := permOf(hdr)
	if name == "." {
		fd := int(a.root.Fd())
		if err := a.setMeta(fd, name, hdr, uid, gid, perm, true); err != nil {
			return err
		}
		if setgid := perm&unix.S_ISGID != 0; setgid != a.dirs.rootSetgid {
			// Symlinks may have cached the root under other names.
			a.dirs.rootSetgid = setgid
			a.dirs.invalidate("")
		}
		a.recordDirTime(name, times(hdr))
		return nil
	}

	pfd, psetgid, err := a.dirs.get(parent, true)
	if err != nil {
		return err
	}
	created := true
	err = unix.Mkdirat(pfd, base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "fstatat", Path: name, Err: err}
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			// A directory over a directory merges into it.
			created = false
			err = nil
			if (st.Mode^perm)&unix.S_ISGID != 0 {
				// Whether new entries take the directory's group
				// changes; names cached through symlinks would
				// not see it.
				a.dirs.invalidate(parent)
			}
		} else {
			if err := a.remove(parent, pfd, base, name, st.Mode); err != nil {
				return err
			}
			err = unix.Mkdirat(pfd, base, 0o700)
		}
	}
	if err != nil {
		return &os.PathError{Op: "mkdirat", Path: name, Err: err}
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "openat", Path: name, Err: err}
	}
	if err := a.setMeta(fd, name, hdr, uid, gid, perm, !created || psetgid); err != nil {
		unix.Close(fd)
		return err
	}
	// The entries that follow are most likely this directory's children.
	a.dirs.put(name, fd, perm&unix.S_ISGID != 0)
	a.recordDirTime(name, times(hdr))
	return nil
}

func (a *applier) file(name, parent, base string, hdr *tar.Header, r io.Reader) error {
	uid, gid, err := owner(hdr)
	if err != nil {
		return err
	}
	if hdr.Size > a.maxBytes-a.stats.Bytes {
		return fmt.Errorf("%w: MaxBytes: file of %d bytes takes the layer over %d bytes", ErrLimit, hdr.Size, a.maxBytes)
	}
	fd, psetgid, err := a.newFile(parent, base, name, r, hdr.Size)
	if err == nil {
		// After the content: writing clears setuid bits and file
		// capabilities, and chown clears them too.
		err = a.setMeta(fd, name, hdr, uid, gid, permOf(hdr), psetgid)
	}
	if err == nil {
		ts := times(hdr)
		if err = futimens(fd, &ts); err != nil {
			err = &os.PathError{Op: "futimens", Path: name, Err: err}
		}
	}
	if fd < 0 {
		return err
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: name, Err: cerr}
	}
	return err
}

// newFile creates a regular file (replacing what is in the way) and writes
// size bytes of r into it. The descriptor is returned, open, even when the
// copy failed, for the caller to close; it is -1 if creation failed.
func (a *applier) newFile(parent, base, name string, r io.Reader, size int64) (fd int, psetgid bool, err error) {
	fd = -1
	_, psetgid, err = a.create(parent, base, name, func(pfd int) error {
		var err error
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return -1, false, &os.PathError{Op: "create", Path: name, Err: err}
	}
	n, err := a.copyContent(fd, r, size)
	a.stats.Bytes += n
	return fd, psetgid, err
}

func (a *applier) copyContent(fd int, r io.Reader, size int64) (int64, error) {
	if a.buf == nil {
		a.buf = make([]byte, copyBufSize)
	}
	var done int64
	for done < size {
		chunk := a.buf[:min(int64(len(a.buf)), size-done)]
		n, err := io.ReadFull(r, chunk)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if werr := writeAll(fd, chunk[:n]); werr != nil {
			return done, fmt.Errorf("write: %w", werr)
		}
		done += int64(n)
		if err != nil {
			return done, fmt.Errorf("read content: %w", err)
		}
	}
	return done, nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b = b[n:]
	}
	return nil
}

func (a *applier) symlink(name, parent, base string, hdr *tar.Header) error {
	uid, gid, err := owner(hdr)
	if err != nil {
		return err
	}
	// The target is kept as written: it is resolved later, by whoever
	// follows the link, against the container's root.
	pfd, psetgid, err := a.create(parent, base, name, func(pfd int) error {
		return unix.Symlinkat(hdr.Linkname, pfd, base)
	})
	if err != nil {
		return &os.PathError{Op: "symlink", Path: name, Err: err}
	}
	return a.setMetaAt(pfd, base, name, hdr, uid, gid, psetgid, false)
}

func (a *applier) node(name, parent, base string, hdr *tar.Header) error {
	uid, gid, err := owner(hdr)
	if err != nil {
		return err
	}
	mode := permOf(hdr)
	var dev uint64
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	if hdr.Typeflag != tar.TypeFifo {
		if hdr.Devmajor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor < 0 || hdr.Devminor > 1<<32-1 {
			return fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		dev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	}
	pfd, psetgid, err := a.create(parent, base, name, func(pfd int) error {
		return unix.Mknodat(pfd, base, mode, int(dev))
	})
	if err != nil {
		return &os.PathError{Op: "mknod", Path: name, Err: err}
	}
	return a.setMetaAt(pfd, base, name, hdr, uid, gid, psetgid, true)
}

// hardlink links name to an existing file. The header's owner, mode and
// times are not applied: they belong to the shared inode, which got them
// from its own entry, and a link entry changing them would change the
// target too.
func (a *applier) hardlink(name, parent, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	if target == "." {
		return fmt.Errorf("hardlink target %q is the layer's root", hdr.Linkname)
	}
	if target == name {
		// GNU tar stores a file named twice as a link to itself.
		pfd, _, err := a.dirs.get(parent, false)
		if err == nil {
			var st unix.Stat_t
			err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return fmt.Errorf("hardlink to itself, and nothing there: %w", err)
		}
		return nil
	}
	tparent, tbase := split(target)
	link := func() error {
		_, _, err := a.create(parent, base, name, func(pfd int) error {
			// The target's parent is resolved in the root like any other
			// name, so "/etc/passwd" and symlinks to "/" stay inside;
			// linkat without AT_SYMLINK_FOLLOW links a symlink itself.
			tpfd, _, err := a.dirs.get(tparent, false)
			if err != nil {
				return err
			}
			return unix.Linkat(tpfd, tbase, pfd, base, 0)
		})
		return err
	}
	// Before the link's own parents are made: copy-up makes the
	// target's parents with the lower layers' metadata, and the two may
	// share some.
	if a.overlay && !a.exists(tparent, tbase) {
		if len(a.lowers) == 0 {
			return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, ErrLinkBelow)
		}
		if err := a.copyUp(target); err != nil {
			if errNotFound(err) {
				return fmt.Errorf("hardlink target %q does not exist in the layer or below: %w", hdr.Linkname, err)
			}
			return err
		}
	}
	err = link()
	switch {
	case err == nil:
		return nil
	case errNotFound(err):
		return fmt.Errorf("hardlink target %q does not exist in the layer or below: %w", hdr.Linkname, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("hardlink target %q: not a file (a directory?): %w", hdr.Linkname, err)
	default:
		return fmt.Errorf("hardlink to %q: %w", hdr.Linkname, err)
	}
}

// create runs mk in parent's directory; if something is in the way (EEXIST)
// it is removed and mk runs once more. It returns the parent's descriptor,
// which stays valid until the next cache call.
func (a *applier) create(parent, base, name string, mk func(pfd int) error) (int, bool, error) {
	pfd, psetgid, err := a.dirs.get(parent, true)
	if err != nil {
		return -1, false, err
	}
	err = mk(pfd)
	if errors.Is(err, unix.EEXIST) {
		if err := a.clear(parent, pfd, base, name); err != nil {
			return -1, false, err
		}
		// clear keeps parent cached: pfd is still open.
		err = mk(pfd)
	}
	return pfd, psetgid, err
}

// clear removes what is at base in the directory pfd (the directory
// parent), without following it if it is a symlink.
func (a *applier) clear(parent string, pfd int, base, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "fstatat", Path: name, Err: err}
	}
	return a.remove(parent, pfd, base, name, st.Mode)
}

// remove removes base, of type mode, from pfd.
func (a *applier) remove(parent string, pfd int, base, name string, mode uint32) error {
	var err error
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if a.buf == nil {
			a.buf = make([]byte, copyBufSize)
		}
		err = removeAll(pfd, base, a.buf)
		a.forgetDirTime(name)
		a.dirs.invalidate(parent)
	case unix.S_IFLNK:
		// Names resolved through the symlink are cached.
		err = unix.Unlinkat(pfd, base, 0)
		a.dirs.invalidate(parent)
	default:
		err = unix.Unlinkat(pfd, base, 0)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

// setMeta sets owner, mode and xattrs through fd, a file or directory
// opened for this entry, in the order that keeps them: chown clears setuid,
// setgid and security.capability.
func (a *applier) setMeta(fd int, name string, hdr *tar.Header, uid, gid int, perm uint32, mustChown bool) error {
	if mustChown || uid != a.euid || gid != a.egid {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return &os.PathError{Op: "fchown", Path: name, Err: err}
		}
	}
	// Always: the mode given at creation went through the umask and the
	// parent's default ACL.
	if err := unix.Fchmod(fd, perm); err != nil {
		return &os.PathError{Op: "fchmod", Path: name, Err: err}
	}
	return forEachXattr(hdr, false, func(attr string, value []byte) error {
		return unix.Fsetxattr(fd, attr, value, 0)
	})
}

// setMetaAt sets owner, mode (for device nodes and fifos), xattrs and times
// of base in pfd, which this entry just created; nothing is opened, so a
// device is never opened and a fifo never blocks.
func (a *applier) setMetaAt(pfd int, base, name string, hdr *tar.Header, uid, gid int, psetgid, chmod bool) error {
	if psetgid || uid != a.euid || gid != a.egid {
		if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "fchownat", Path: name, Err: err}
		}
	}
	if chmod {
		if err := chmodNoFollow(pfd, base, permOf(hdr)); err != nil {
			return &os.PathError{Op: "fchmodat", Path: name, Err: err}
		}
	}
	err := forEachXattr(hdr, true, func(attr string, value []byte) error {
		return unix.Lsetxattr(procPath(pfd, base), attr, value, 0)
	})
	if err != nil {
		return err
	}
	return setTimes(pfd, base, name, hdr)
}

func setTimes(pfd int, base, name string, hdr *tar.Header) error {
	ts := times(hdr)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: name, Err: err}
	}
	return nil
}

// exists reports whether this layer has parent/base (not following it).
func (a *applier) exists(parent, base string) bool {
	pfd, _, err := a.dirs.get(parent, false)
	if err != nil {
		return false
	}
	var st unix.Stat_t
	return unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// copyUp copies a regular file from the lower layers into this layer, for
// a hardlink to link to, as overlayfs copies a file up before linking it.
// The file is looked up as overlayfs would: in each layer, nearest first,
// until it is found or something hides it (a whiteout, a non-directory on
// its path, an opaque directory above it). Its parent directories come up
// with the owner, mode and times the mounted image shows for them.
func (a *applier) copyUp(name string) error {
	for i, lower := range a.lowers {
		root, err := os.OpenFile(lower, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		found, hides := lookupInLayer(root, name)
		if !found {
			root.Close()
			if hides {
				return unix.ENOENT
			}
			continue
		}
		// No symlink on the way (lookupInLayer saw real directories).
		// A regular file only: opening a device node the layer holds
		// would run its driver on the host.
		src, err := inroot.OpenRegular(int(root.Fd()), name,
			unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS)
		root.Close()
		if errors.Is(err, inroot.ErrNotRegular) {
			return fmt.Errorf("hardlink target %q in a lower layer is not a regular file", name)
		}
		if err != nil {
			return err
		}
		defer src.Close()
		if err := a.copyUpParents(name, a.lowers[:i+1]); err != nil {
			return err
		}
		if err := a.copyFrom(src, name); err != nil {
			return err
		}
		if a.copiedUp == nil {
			a.copiedUp = map[string]bool{}
		}
		a.copiedUp[name] = true
		return nil
	}
	return unix.ENOENT
}

// lookupInLayer looks name up in one layer's directory without following
// anything: found if the layer has it, hides if the layer hides it from
// the layers below (a whiteout of it or of a parent, a parent that is not
// a directory here, an opaque parent).
func lookupInLayer(root *os.File, name string) (found, hides bool) {
	parts := strings.Split(name, "/")
	opaque := false
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		var st unix.Stat_t
		// Every earlier part was seen to be a real directory, so this
		// resolves no symlink.
		if err := unix.Fstatat(int(root.Fd()), p, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return false, opaque
		}
		typ := st.Mode & unix.S_IFMT
		if typ == unix.S_IFCHR && st.Rdev == 0 {
			return false, true // a whiteout
		}
		if i == len(parts)-1 {
			return true, true
		}
		if typ != unix.S_IFDIR {
			return false, true
		}
		if opaqueIn(root, p) {
			opaque = true
		}
	}
	return false, opaque
}

func opaqueIn(root *os.File, dir string) bool {
	fd, err := unix.Openat(int(root.Fd()), dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	buf := make([]byte, 2)
	n, err := unix.Fgetxattr(fd, overlayOpaque, buf)
	return err == nil && string(buf[:n]) == "y"
}

// copyUpParents makes the parents of name that this layer lacks, each with
// the metadata of the nearest lower layer's directory of that name (which
// the mounted image shows), instead of the 0755 root:root a parent the tar
// does not list gets.
func (a *applier) copyUpParents(name string, lowers []string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		dir := strings.Join(parts[:i], "/")
		parent, base := split(dir)
		pfd, _, err := a.dirs.get(parent, false)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			continue // this layer has it: its own metadata stands
		}
		var meta unix.Stat_t
		found := false
		for _, lower := range lowers {
			if unix.Lstat(filepath.Join(lower, dir), &meta) == nil && meta.Mode&unix.S_IFMT == unix.S_IFDIR {
				found = true
				break
			}
		}
		if !found {
			continue // made below as any missing parent is
		}
		if err := unix.Mkdirat(pfd, base, meta.Mode&0o7777); err != nil {
			return &os.PathError{Op: "mkdir", Path: dir, Err: err}
		}
		if err := unix.Fchownat(pfd, base, int(meta.Uid), int(meta.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "chown", Path: dir, Err: err}
		}
		if err := chmodNoFollow(pfd, base, meta.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dir, Err: err}
		}
		a.recordDirTime(dir, [2]unix.Timespec{meta.Atim, meta.Mtim})
	}
	return nil
}

func (a *applier) copyFrom(src *os.File, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("hardlink target %q in a lower layer is not a regular file", name)
	}
	if st.Size > a.maxBytes-a.stats.Bytes {
		return fmt.Errorf("%w: MaxBytes: copying up %q takes the layer over %d bytes", ErrLimit, name, a.maxBytes)
	}
	parent, base := split(name)
	fd, _, err := a.newFile(parent, base, name, src, st.Size)
	if err == nil {
		err = unix.Fchown(fd, int(st.Uid), int(st.Gid))
	}
	if err == nil {
		err = copyXattrs(int(src.Fd()), fd)
	}
	if err == nil {
		// After chown, which clears setuid bits.
		err = unix.Fchmod(fd, st.Mode&0o7777)
	}
	if err == nil {
		ts := []unix.Timespec{st.Atim, st.Mtim}
		err = unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
	}
	if fd >= 0 {
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("copy up %s: %w", name, err)
	}
	return nil
}

func copyXattrs(from, to int) error {
	size, err := unix.Flistxattr(from, nil)
	if err != nil || size == 0 {
		return nil // none, or a file system without them
	}
	names := make([]byte, size)
	if size, err = unix.Flistxattr(from, names); err != nil {
		return err
	}
	for _, attr := range strings.Split(strings.TrimRight(string(names[:size]), "\x00"), "\x00") {
		if attr == "" || strings.HasPrefix(attr, "trusted.overlay.") {
			continue
		}
		vsize, err := unix.Fgetxattr(from, attr, nil)
		if err != nil {
			continue
		}
		v := make([]byte, vsize)
		if vsize, err = unix.Fgetxattr(from, attr, v); err != nil {
			continue
		}
		if err := unix.Fsetxattr(to, attr, v[:vsize], 0); err != nil {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	return nil
}
