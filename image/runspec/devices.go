package runspec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hostDevices lists the device nodes under dir (the host's /dev) as a
// privileged container gets them in Docker: every character and block
// device with its owner and mode, at the same path.
//
// Left out are the directories that are filesystems of their own, which
// the container mounts afresh (pts, shm, mqueue), hidden directories
// (container managers' and udev's private state), /dev/console, which the
// runtime makes the container's terminal, and /dev/ptmx, which must be
// the container's own devpts instance's.
func hostDevices(dir string) ([]specs.LinuxDevice, error) {
	var devs []specs.LinuxDevice
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A device that went away between readdir and stat
			// (hotplug) is simply not there any more.
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			switch name := d.Name(); {
			case p == dir:
				return nil
			case name == "pts" || name == "shm" || name == "mqueue" || name[0] == '.':
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeDevice == 0 || rel == "console" || rel == "ptmx" {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		typ := "c"
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
		case unix.S_IFBLK:
			typ = "b"
		default:
			return nil // replaced by something else since readdir
		}
		mode := fs.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		devs = append(devs, specs.LinuxDevice{
			Path:     "/dev/" + filepath.ToSlash(rel),
			Type:     typ,
			Major:    int64(unix.Major(st.Rdev)),
			Minor:    int64(unix.Minor(st.Rdev)),
			FileMode: &mode,
			UID:      &uid,
			GID:      &gid,
		})
		return nil
	})
	return devs, err
}
