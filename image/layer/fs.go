package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxID is the largest uid or gid: (uid_t)-1 tells chown "leave as is".
const maxID = 1<<32 - 2

func owner(hdr *tar.Header) (uid, gid int, err error) {
	if hdr.Uid < 0 || hdr.Uid > maxID || hdr.Gid < 0 || hdr.Gid > maxID {
		return 0, 0, fmt.Errorf("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	return hdr.Uid, hdr.Gid, nil
}

// permOf is the header's permission bits with setuid, setgid and sticky;
// some writers also put the file type bits in Mode.
func permOf(hdr *tar.Header) uint32 {
	return uint32(hdr.Mode) & 0o7777
}

// times is the header's access and modification times. Without a recorded
// access time (only PAX and GNU headers have one), the modification time
// stands in, so that the result does not depend on when it was unpacked.
func times(hdr *tar.Header) [2]unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return [2]unix.Timespec{timespec(at), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	// Not t.UnixNano: it overflows outside 1678-2262.
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// futimens sets the times of the open file fd: utimensat(fd, NULL, ts, 0),
// which x/sys/unix does not wrap (its UtimesNanoAt passes a path). No
// lookup, unlike setting them by name.
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

const xattrRecordPrefix = "SCHILY.xattr."

// forEachXattr calls set for each xattr in the header's PAX records.
//
// Overlayfs's own xattrs (trusted.overlay.*, and user.overlay.* for mounts
// with userxattr) are dropped: in a layer directory they would make
// overlayfs hide lower layers (opaque), look elsewhere (redirect) or take
// data from another layer (metacopy), which only whiteouts may express.
// For symlinks and device nodes (notUser) user.* is dropped too: Linux
// allows user xattrs only on regular files and directories.
func forEachXattr(hdr *tar.Header, notUser bool, set func(attr string, value []byte) error) error {
	for key, value := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(key, xattrRecordPrefix)
		if !ok {
			continue
		}
		if strings.HasPrefix(attr, "trusted.overlay.") || strings.HasPrefix(attr, "user.overlay.") {
			continue
		}
		if notUser && strings.HasPrefix(attr, "user.") {
			continue
		}
		if err := set(attr, []byte(value)); err != nil {
			return fmt.Errorf("set xattr %q: %w", attr, err)
		}
	}
	return nil
}

// procPath names base in the directory pfd for the path-only calls that
// have no *at form taking a directory descriptor (lsetxattr, before Linux
// 6.13's setxattrat). The kernel resolves /proc/self/fd/N to the directory
// itself, and the l-calls do not follow a symlink in base.
func procPath(pfd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
}

// chmodNoFollow sets the mode of base in pfd, which must not be a symlink.
func chmodNoFollow(pfd int, base string, perm uint32) error {
	err := unix.Fchmodat(pfd, base, perm, unix.AT_SYMLINK_NOFOLLOW)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	// Before Linux 6.6 (fchmodat2) fchmodat cannot refuse to follow.
	return chmodViaProc(pfd, base, perm)
}

// chmodViaProc changes the mode through an O_PATH descriptor of base, which
// refers to base itself even if base is replaced in between.
func chmodViaProc(pfd int, base string, perm uint32) error {
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		// Symlinks have no mode of their own on Linux, and chmod on the
		// magic link would follow this one.
		return unix.EOPNOTSUPP
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), perm)
}

// removeAll removes name from the directory dirfd and, if it is a
// directory, everything below it, never following a symlink. buf is
// scratch space for reading directories.
func removeAll(dirfd int, name string, buf []byte) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	names, err := readDirNames(fd, buf)
	if err == nil {
		for _, n := range names {
			if err = removeAll(fd, n, buf); err != nil {
				err = fmt.Errorf("%s/%s: %w", name, n, err)
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// readDirNames reads all the names in the directory fd, which must be at
// its start. All of them are read before any is removed: removing entries
// while reading a directory may make the reading skip some.
func readDirNames(fd int, buf []byte) ([]string, error) {
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.SyscallError{Syscall: "getdents64", Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
