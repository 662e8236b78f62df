package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// MountAll mounts ms, in order, at target.
func MountAll(ms []Mount, target string) error {
	for i, m := range ms {
		if err := mountOne(m, target); err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = unix.Unmount(target, unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

func mountOne(m Mount, target string) error {
	switch m.Type {
	case "bind", "rbind":
		flags := uintptr(unix.MS_BIND | unix.MS_REC)
		if err := unix.Mount(m.Source, target, "", flags, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", m.Source, target, err)
		}
		for _, o := range m.Options {
			if o == "ro" {
				if err := unix.Mount("", target, "", flags|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
					_ = unix.Unmount(target, unix.MNT_DETACH)
					return fmt.Errorf("make %s read-only: %w", target, err)
				}
			}
		}
		return nil
	case "overlay":
		data := strings.Join(m.Options, ",")
		if len(data) < pageSize() {
			if err := unix.Mount(m.Source, target, "overlay", 0, data); err != nil {
				return fmt.Errorf("mount overlay on %s (%d layers): %w", target, countLowers(m.Options), err)
			}
			return nil
		}
		return mountRelative(m, target)
	}
	return fmt.Errorf("mount type %q is not supported", m.Type)
}

func pageSize() int { return os.Getpagesize() }

func countLowers(opts []string) int {
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
			return len(strings.Split(v, ":"))
		}
	}
	return 0
}

// mountRelative mounts an overlay whose options do not fit the page the
// kernel copies them into (hundreds of layers with long paths): the layer
// paths are made relative to their common directory, and the mount is made
// from a thread whose working directory is that directory. The thread has
// its own file system context (unshare CLONE_FS), so the process's working
// directory never changes, and it is thrown away after.
func mountRelative(m Mount, target string) error {
	dirs := layerDirs(m.Options)
	common := commonDir(dirs)
	if common == "" || common == "/" {
		return fmt.Errorf("overlay options for %s are too long and its layers share no directory", target)
	}
	opts := make([]string, len(m.Options))
	for i, o := range m.Options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir", "upperdir", "workdir":
			parts := strings.Split(v, ":")
			for j, p := range parts {
				parts[j] = strings.TrimPrefix(strings.TrimPrefix(p, common), "/")
			}
			opts[i] = k + "=" + strings.Join(parts, ":")
		default:
			opts[i] = o
		}
	}
	data := strings.Join(opts, ",")
	if len(data) >= pageSize() {
		return fmt.Errorf("overlay on %s: %d layers are too many for one mount", target, countLowers(m.Options))
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, with its changed working
		// directory, ends with the goroutine.
		goruntime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- err
			return
		}
		if err := unix.Chdir(common); err != nil {
			done <- err
			return
		}
		done <- unix.Mount(m.Source, abs, "overlay", 0, data)
	}()
	if err := <-done; err != nil {
		return fmt.Errorf("mount overlay on %s (%d layers): %w", target, countLowers(m.Options), err)
	}
	return nil
}

func layerDirs(opts []string) []string {
	var out []string
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if k == "lowerdir" || k == "upperdir" || k == "workdir" {
			out = append(out, strings.Split(v, ":")...)
		}
	}
	return out
}

func commonDir(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	common := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}

// Unmount undoes MountAll at target: every mount stacked there. A mount
// in use (a process's working directory or open file in it) is an error,
// not detached: a detached overlay lives on, and the snapshot under it
// must not be removed while it does.
func Unmount(target string) error {
	for {
		mounted, err := mountinfo.Mounted(target)
		if err != nil || !mounted {
			return err
		}
		err = unix.Unmount(target, 0)
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("unmount %s: it is in use (a process running in it, or with a file open there): %w", target, err)
		}
		if errors.Is(err, unix.EINVAL) {
			return nil // not a mount point after all
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
