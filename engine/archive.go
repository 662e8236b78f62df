package engine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/image/layer"
	"github.com/berth-dev/berth/image/snapshot"
	"github.com/berth-dev/berth/internal/inroot"
	"golang.org/x/sys/unix"
)

// PathStat describes a path in a container (docker cp's stat).
type PathStat struct {
	Name       string      `json:"name"`
	Size       int64       `json:"size"`
	Mode       fs.FileMode `json:"mode"`
	Mtime      time.Time   `json:"mtime"`
	LinkTarget string      `json:"linkTarget"`
}

// ErrPathNotFound: no such path in the container.
var ErrPathNotFound = errors.New("no such path in the container")

// withRootfs runs fn with the container's root directory. A running
// container's is its process's root (/proc/<pid>/root), which shows its
// volumes and binds too, and nothing is held meanwhile: a slow copy does
// not hold up a stop. A stopped one's root filesystem is mounted for fn
// (without its volumes), and starts wait for fn.
func (e *Engine) withRootfs(ref string, fn func(root *os.File) error) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	if rec := c.snapshot(); rec.State.Status == Running && rec.State.Pid > 0 {
		root, err := os.OpenFile(fmt.Sprintf("/proc/%d/root", rec.State.Pid), unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			defer root.Close()
			// The PID was the container's when the root was opened, not
			// a later process's that got the number.
			if now := c.snapshot(); now.State.Status == Running && now.State.Pid == rec.State.Pid && now.State.StartedAt.Equal(rec.State.StartedAt) {
				return fn(root)
			}
		}
	}
	c.op.Lock()
	defer c.op.Unlock()
	rec := c.snapshot()
	rootfs := filepath.Join(e.containerDir(rec.ID), "bundle", "rootfs")
	mounted, err := isMountPoint(rootfs)
	if err != nil {
		return err
	}
	if !mounted {
		ms, err := e.Images.Snapshots.Mounts(rec.Snapshot)
		if err != nil {
			return err
		}
		if err := snapshot.MountAll(ms, rootfs); err != nil {
			return err
		}
		defer snapshot.Unmount(rootfs)
	}
	root, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	return fn(root)
}

// lstatIn resolves p's parent inside root and stats p itself, not
// following a final symlink, as docker cp does.
func lstatIn(root *os.File, p string) (parent *os.File, base string, st unix.Stat_t, err error) {
	clean := path.Clean("/" + p)
	base = path.Base(clean)
	parent, err = inroot.Open(root, path.Dir(clean))
	if err != nil {
		return nil, "", st, fmt.Errorf("%w: %s", ErrPathNotFound, p)
	}
	if clean == "/" {
		base = "."
	}
	if err := unix.Fstatat(int(parent.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH); err != nil {
		parent.Close()
		return nil, "", st, fmt.Errorf("%w: %s", ErrPathNotFound, p)
	}
	return parent, base, st, nil
}

func statOf(name string, st unix.Stat_t, link string) PathStat {
	return PathStat{Name: name, Size: st.Size, Mode: fileMode(st.Mode), Mtime: time.Unix(st.Mtim.Unix()), LinkTarget: link}
}

func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// StatPath stats a path in a container.
func (e *Engine) StatPath(ref, p string) (PathStat, error) {
	var out PathStat
	err := e.withRootfs(ref, func(root *os.File) error {
		parent, base, st, err := lstatIn(root, p)
		if err != nil {
			return err
		}
		defer parent.Close()
		link := ""
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			link, _ = readlinkat(parent, base)
		}
		out = statOf(path.Base(path.Clean("/"+p)), st, link)
		return nil
	})
	return out, err
}

func readlinkat(dir *os.File, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(int(dir.Fd()), name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// ArchivePath writes a tar of a path in a container to w, named by its
// base name, and returns its stat. Nothing is followed out of the
// container's root: directories are walked by descriptor, symlinks are
// archived as links.
func (e *Engine) ArchivePath(ref, p string, w io.Writer, before func(PathStat)) error {
	return e.withRootfs(ref, func(root *os.File) error {
		parent, base, st, err := lstatIn(root, p)
		if err != nil {
			return err
		}
		defer parent.Close()
		name := path.Base(path.Clean("/" + p))
		link := ""
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			link, _ = readlinkat(parent, base)
		}
		before(statOf(name, st, link))
		tw := tar.NewWriter(w)
		if err := archiveAt(tw, parent, base, name); err != nil {
			return err
		}
		return tw.Close()
	})
}

// archiveAt adds dir/base to tw as name, and what is below it.
func archiveAt(tw *tar.Writer, dir *os.File, base, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid), ModTime: time.Unix(st.Mtim.Unix()), Format: tar.FormatPAX}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		// Opened only if it is still a regular file (the container may
		// have put a FIFO or a device in its place since the stat), and
		// sized by what was opened.
		f, err := inroot.OpenRegular(int(dir.Fd()), base, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return err
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = io.CopyN(tw, f, st.Size)
		return err
	case unix.S_IFLNK:
		link, err := readlinkat(dir, base)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, link
		return tw.WriteHeader(hdr)
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		d, err := inroot.Openat2(int(dir.Fd()), base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
		if err != nil {
			return err
		}
		defer d.Close()
		ents, err := d.ReadDir(-1)
		if err != nil {
			return err
		}
		for _, ent := range ents {
			if err := archiveAt(tw, d, ent.Name(), name+"/"+ent.Name()); err != nil {
				return err
			}
		}
		return nil
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
		return tw.WriteHeader(hdr)
	}
	return nil // sockets and devices are left out
}

// ExtractArchive unpacks a tar into a directory of a container, with the
// rules that keep an image layer inside its root.
func (e *Engine) ExtractArchive(ctx context.Context, ref, p string, r io.Reader) error {
	return e.withRootfs(ref, func(root *os.File) error {
		dir, err := inroot.Open(root, p)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrPathNotFound, p)
		}
		defer dir.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(dir.Fd()), &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return invalid{fmt.Errorf("extraction point %s is not a directory", p)}
		}
		// A name such as .wh.x is a file's here, no whiteout.
		_, err = layer.Apply(fmt.Sprintf("/proc/self/fd/%d", dir.Fd()), r, layer.Options{Literal: true})
		return err
	})
}
