// Package inroot resolves paths inside a directory tree that untrusted
// content controls (a container's root filesystem, an image layer being
// unpacked), so that no symlink or ".." in it reaches outside.
package inroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The kernel does the resolving: openat2 with RESOLVE_IN_ROOT treats the root as /
// for every symlink and "..", so nothing resolves outside it, in one system
// call. (openat2 is from Linux 5.6; Berth's runtime needs 5.12 anyway, for
// mount_setattr.)

// Openat2 is openat2(2) with O_CLOEXEC, retried on EINTR and EAGAIN.
func Openat2(dirfd int, path string, flags uint64, resolve uint64) (*os.File, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolve}
	for {
		fd, err := unix.Openat2(dirfd, path, &how)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// Open returns an O_PATH handle on p resolved inside root.
func Open(root *os.File, p string) (*os.File, error) {
	return Openat2(int(root.Fd()), p, unix.O_PATH, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
}

// MkdirAll makes the directories of p that are missing inside root
// and returns an O_PATH handle on p. A component that exists but is not a
// directory, or a symlink whose target is missing, is an error: nothing is
// created through it.
func MkdirAll(root *os.File, p string) (*os.File, error) {
	f, err := Open(root, p)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return nil, err
	}
	clean := strings.TrimPrefix(filepath.Clean("/"+p), "/")
	parts := strings.Split(clean, "/")
	// Find the deepest part that exists (usually the parent), then make
	// the rest one by one below it.
	var cur *os.File
	have := len(parts) - 1
	for ; have > 0; have-- {
		cur, err = Open(root, strings.Join(parts[:have], "/"))
		if err == nil {
			break
		}
		if !errors.Is(err, unix.ENOENT) {
			return nil, err
		}
	}
	if have == 0 {
		if cur, err = Open(root, "/"); err != nil {
			return nil, err
		}
	}
	for i := have; i < len(parts); i++ {
		part := parts[i]
		if err := unix.Mkdirat(int(cur.Fd()), part, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			cur.Close()
			return nil, &os.PathError{Op: "mkdir", Path: "/" + strings.Join(parts[:i+1], "/"), Err: err}
		}
		// Open what is there without following anything: a symlink
		// here (one whose target is missing, or one raced in) fails.
		next, err := Openat2(int(cur.Fd()), part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW,
			unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_XDEV)
		cur.Close()
		if err != nil {
			return nil, fmt.Errorf("/%s: not a directory inside the root (a symlink whose target is missing?): %w", strings.Join(parts[:i+1], "/"), err)
		}
		cur = next
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(cur.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		cur.Close()
		return nil, fmt.Errorf("%s: not a directory", p)
	}
	return cur, nil
}

// ErrNotRegular: OpenRegular found something other than a regular file.
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens p, resolved below dirfd with resolve, for reading, if
// and only if it is a regular file. Untrusted trees hold device nodes and
// FIFOs where files are expected (an image's /etc/passwd as a character
// device): opening one for reading would run the device's open on the host,
// so the name is looked up first with O_PATH, which opens nothing, and the
// file it found is reopened only once it is known to be a regular one.
func OpenRegular(dirfd int, p string, resolve uint64) (*os.File, error) {
	f, err := Openat2(dirfd, p, unix.O_PATH, resolve)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &os.PathError{Op: "open", Path: p, Err: ErrNotRegular}
	}
	// The O_PATH descriptor pins the inode: reopening it through
	// /proc/self/fd opens that file, whatever happened to the name since.
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "reopen", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}
