package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/internal/inroot"
	"github.com/berth-dev/berth/runtime/config"
	"github.com/berth-dev/berth/runtime/nsenter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rootfs prepares the container's root filesystem from inside its new mount
// namespace. Every path taken from the config or the image is resolved
// inside the root (symlinks and ".." cannot leave it), and mounts go onto
// the resolved descriptor, never onto a path that could change in between.
type rootfs struct {
	path string
	root *os.File // O_PATH handle of path
	req  *setupRequest
	// hostNS is set when the config asks for no mount namespace: the
	// container then shares the runtime's, its mounts are visible on the
	// host (delete removes them), and its root is entered by chroot.
	hostNS bool
	// userns is set for a container with a user namespace: what the
	// setup creates belongs to the host IDs of its root
	// (actAsContainerRoot).
	userns bool
}

// fdPath names a descriptor for mount(2). It works until the pivot: the
// container's own /proc, mounted for its PID namespace, does not show this
// process; later steps use the descriptor-based mount API instead.
func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// prepare makes the root a private mount point. Mounts made below it then
// stay inside this namespace whatever the host's propagation.
func (r *rootfs) prepare() error {
	// In the host's namespace, / is the host's to set, not ours.
	if !r.hostNS {
		if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("make / a slave mount: %w", err)
		}
	}
	if err := unix.Mount(r.path, r.path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("root.path: bind %s onto itself: %w", r.path, err)
	}
	err := r.openBoundRoot()
	if err != nil && r.hostNS {
		// On the host the bind outlives this process: take it back.
		unix.Unmount(r.path, unix.MNT_DETACH)
	}
	return err
}

// openBoundRoot finishes the root's bind mount and opens it; for a container
// on the host's mount namespace it reports the mount before anything is
// mounted under it, so that it can always be found and taken away.
func (r *rootfs) openBoundRoot() error {
	if err := unix.Mount("", r.path, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the root private: %w", err)
	}
	f, err := os.OpenFile(r.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("root.path: %w", err)
	}
	if r.hostNS {
		m, err := mountOf(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("root.path: %w", err)
		}
		if r.req.onRootMount != nil {
			if err := r.req.onMain(func() error { return r.req.onRootMount(m) }); err != nil {
				f.Close()
				return fmt.Errorf("save state: %w", err)
			}
		}
	}
	r.root = f
	return nil
}

// mkdirIn creates dir (and parents) inside the root and returns an O_PATH
// handle on it.
func (r *rootfs) mkdirIn(dir string) (*os.File, error) {
	return inroot.MkdirAll(r.root, dir)
}

// mkfileIn creates an empty file at p inside the root if nothing is there,
// and returns an O_PATH handle on what is there.
func (r *rootfs) mkfileIn(p string) (*os.File, error) {
	if f, err := inroot.Open(r.root, p); err == nil {
		return f, nil
	}
	parent, err := r.mkdirIn(filepath.Dir(p))
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), filepath.Base(p), unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create %s: %w", p, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	return inroot.Open(r.root, p)
}

// procAllowed are the files under /proc that may be mounted over (what
// lxcfs provides); anything else there could hide the container's view of
// itself or reach the host's kernel settings.
var procAllowed = map[string]bool{
	"/proc/cpuinfo": true, "/proc/diskstats": true, "/proc/meminfo": true, "/proc/stat": true,
	"/proc/swaps": true, "/proc/uptime": true, "/proc/loadavg": true, "/proc/slabinfo": true,
	"/proc/net/dev": true, "/proc/sys/kernel/ns_last_pid": true,
}

func checkDestination(dest string) error {
	d := filepath.Clean(dest)
	if d == "/" {
		return errors.New("destination / would cover the root filesystem")
	}
	if strings.HasPrefix(d, "/proc/") && !procAllowed[d] {
		return fmt.Errorf("mounting over %s is not allowed", d)
	}
	return nil
}

// onProcfs reports whether the handle lies on a proc filesystem, which a
// symlink in the image could have steered a destination onto.
func onProcfs(f *os.File) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(int(f.Fd()), &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

// mountAll performs the config's mounts in order.
func (r *rootfs) mountAll(mounts []specs.Mount) error {
	for i, m := range mounts {
		if err := r.mountOne(m); err != nil {
			return fmt.Errorf("mounts[%d] (%s on %s): %w", i, mountType(m), m.Destination, err)
		}
	}
	return nil
}

func mountType(m specs.Mount) string {
	if m.Type == "" {
		return "bind"
	}
	return m.Type
}

func (r *rootfs) mountOne(m specs.Mount) error {
	if err := checkDestination(m.Destination); err != nil {
		return err
	}
	o := parseMountOptions(m.Options)
	if m.Type == "bind" {
		o.bind = true
	}
	if o.bind {
		return r.bindMount(m, &o)
	}
	if m.Type == "cgroup" {
		return r.mountCgroup(m, &o)
	}
	if r.userns {
		// uid= and gid= options name the container's IDs.
		o.data = r.translateIDOptions(o.data)
	}
	dest, err := r.mkdirIn(m.Destination)
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	defer dest.Close()
	if onProcfs(dest) && m.Destination != "/proc" {
		return errors.New("destination resolves into /proc")
	}
	var covered *os.File
	if o.tmpcopyup && m.Type == "tmpfs" {
		// Keep a handle on what the tmpfs will cover, to copy it up.
		covered, err = os.OpenFile(fdPath(dest), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer covered.Close()
	}
	if m.Type == "proc" {
		err = r.mountProc(dest, m.Source, o.flags, o.dataString())
	} else {
		err = unix.Mount(m.Source, fdPath(dest), m.Type, o.flags, o.dataString())
	}
	if err != nil {
		if m.Type == "sysfs" && errors.Is(err, unix.EPERM) {
			// Without a network namespace of its own a user namespace
			// may not mount sysfs; bind the host's read-only instead.
			return r.bindMount(specs.Mount{Destination: m.Destination, Source: "/sys"},
				&mountOpts{bind: true, recursive: true, flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV})
		}
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("filesystem type %q is not supported by this kernel", m.Type)
		}
		return err
	}
	if len(o.propagate) > 0 || covered != nil {
		top, err := inroot.Open(r.root, m.Destination)
		if err != nil {
			return err
		}
		defer top.Close()
		for _, p := range o.propagate {
			if err := unix.Mount("", fdPath(top), "", p, ""); err != nil {
				return fmt.Errorf("set propagation: %w", err)
			}
		}
		if covered != nil {
			if err := copyUp(covered, top); err != nil {
				return fmt.Errorf("tmpcopyup: %w", err)
			}
		}
	}
	return nil
}

// mountProc mounts a proc filesystem for the container's PID namespace.
// Where the kernel takes proc's pidns= option (6.15 and later) this thread
// mounts it; otherwise, and always in a user namespace (whose root should
// own it), the container process does.
func (r *rootfs) mountProc(dest *os.File, source string, flags uintptr, data string) error {
	ownPIDNS := config.HasNamespace(r.req.spec, specs.PIDNamespace)
	if !ownPIDNS && !r.userns {
		return unix.Mount(source, fdPath(dest), "proc", flags, data)
	}
	if !r.userns && !noProcPidns {
		opts := pidNSOption(r.req.pid)
		if data != "" {
			opts = data + "," + opts
		}
		err := unix.Mount(source, fdPath(dest), "proc", flags, opts)
		if err == nil || !errors.Is(err, unix.EINVAL) {
			return err
		}
		noProcPidns = true
	}
	return r.askProcessToMount(dest, source, "proc", flags, data)
}

// noProcPidns records that this kernel refused pidns=.
var noProcPidns bool

// translateIDOptions maps uid= and gid= mount options from the container's
// IDs to the host's, for filesystems this (host) thread mounts.
func (r *rootfs) translateIDOptions(data []string) []string {
	l := r.req.spec.Linux
	out := make([]string, len(data))
	for i, o := range data {
		out[i] = o
		k, v, ok := strings.Cut(o, "=")
		if !ok || (k != "uid" && k != "gid") {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			continue
		}
		m := l.UIDMappings
		if k == "gid" {
			m = l.GIDMappings
		}
		if h, ok := hostID(m, uint32(n)); ok {
			out[i] = k + "=" + strconv.FormatUint(uint64(h), 10)
		}
	}
	return out
}

// bindMount clones the source (recursively for rbind) as a detached mount,
// sets its attributes there, and moves it onto the destination: the new
// mount is never visible with the wrong flags.
func (r *rootfs) bindMount(m specs.Mount, o *mountOpts) error {
	src := m.Source
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	var dest *os.File
	if st.IsDir() {
		dest, err = r.mkdirIn(m.Destination)
	} else {
		dest, err = r.mkfileIn(m.Destination)
	}
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	defer dest.Close()
	if onProcfs(dest) && !procAllowed[filepath.Clean(m.Destination)] {
		return errors.New("destination resolves into /proc")
	}
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if o.recursive {
		flags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, uint(flags))
	if err != nil {
		return fmt.Errorf("clone %s: %w", src, err)
	}
	defer unix.Close(tree)
	// Plain flags apply to the top mount only, as mount(2)'s remount
	// would; the r-prefixed ones to every mount in the tree.
	set, clr := mountAttrs(o.flags, o.clear)
	if set != 0 || clr != 0 {
		attr := unix.MountAttr{Attr_set: set, Attr_clr: clr}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return fmt.Errorf("set mount flags: %w", err)
		}
	}
	if o.rattrSet != 0 || o.rattrClr != 0 {
		attr := unix.MountAttr{Attr_set: o.rattrSet, Attr_clr: o.rattrClr}
		if o.rattrSet&(unix.MOUNT_ATTR_NOATIME|unix.MOUNT_ATTR_STRICTATIME|unix.MOUNT_ATTR_RELATIME) != 0 {
			attr.Attr_clr |= unix.MOUNT_ATTR__ATIME
		}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return fmt.Errorf("set recursive mount flags: %w", err)
		}
	}
	if o.idmap {
		if err := r.idmapTree(tree, m, o.ridmap); err != nil {
			return err
		}
	}
	if err := unix.MoveMount(tree, "", int(dest.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach mount: %w", err)
	}
	if len(o.propagate) > 0 {
		top, err := inroot.Open(r.root, m.Destination)
		if err != nil {
			return err
		}
		defer top.Close()
		for _, p := range o.propagate {
			if err := unix.Mount("", fdPath(top), "", p, ""); err != nil {
				return fmt.Errorf("set propagation: %w", err)
			}
		}
	}
	return nil
}

// idmapTree makes a detached mount show IDs through the mount's own
// mappings, or the container's when the mount gives none.
func (r *rootfs) idmapTree(tree int, m specs.Mount, recursive bool) error {
	uids, gids := m.UIDMappings, m.GIDMappings
	if len(uids) == 0 {
		uids, gids = r.req.spec.Linux.UIDMappings, r.req.spec.Linux.GIDMappings
	}
	if len(uids) == 0 {
		return errors.New("idmap: no ID mappings for the mount or the container")
	}
	userns, err := newUserns(uids, gids)
	if err != nil {
		return fmt.Errorf("idmap: %w", err)
	}
	defer unix.Close(userns)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
	flags := unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(tree, "", uint(flags), &attr); err != nil {
		return fmt.Errorf("idmap: %w", err)
	}
	return nil
}

// newUserns returns a descriptor of a user namespace with the given maps. A
// child of this binary holds the namespace while it is opened; the nsenter
// constructor parks it before any Go code runs.
func newUserns(uids, gids []specs.LinuxIDMapping) (int, error) {
	conv := func(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		out := make([]syscall.SysProcIDMap, len(m))
		for i, e := range m {
			out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
		}
		return out
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{nsenter.EnvPause + "=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: conv(uids),
		GidMappings: conv(gids),
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start user namespace holder: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	return unix.Open("/proc/"+strconv.Itoa(cmd.Process.Pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// mountCgroup gives the container its cgroups at the destination: a cgroup
// filesystem per hierarchy when it has a cgroup namespace (the kernel then
// shows its own cgroup as the root), bind mounts of its own cgroup
// directories otherwise.
func (r *rootfs) mountCgroup(m specs.Mount, o *mountOpts) error {
	dest, err := r.mkdirIn(m.Destination)
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	defer dest.Close()
	ns := config.NewNamespace(r.req.spec, specs.CgroupNamespace)
	if r.req.cgroupV == 2 {
		if ns {
			return unix.Mount("cgroup2", fdPath(dest), "cgroup2", o.flags, "")
		}
		return r.bindMount(specs.Mount{Destination: m.Destination, Source: r.req.cgPaths[""]}, &mountOpts{bind: true, flags: o.flags})
	}
	if err := unix.Mount("tmpfs", fdPath(dest), "tmpfs", o.flags&^unix.MS_RDONLY, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	keys := make([]string, 0, len(r.req.cgPaths))
	for k := range r.req.cgPaths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		name := strings.TrimPrefix(key, "name=")
		if key == "" {
			name = "unified"
		}
		sub := filepath.Join(m.Destination, name)
		if ns {
			d, err := r.mkdirIn(sub)
			if err != nil {
				return err
			}
			fstype, data := "cgroup", key
			if key == "" {
				fstype, data = "cgroup2", ""
			} else if strings.HasPrefix(key, "name=") {
				data = "none," + key
			}
			err = unix.Mount("cgroup", fdPath(d), fstype, o.flags, data)
			d.Close()
			if err != nil {
				return fmt.Errorf("mount %s hierarchy: %w", name, err)
			}
		} else {
			if err := r.bindMount(specs.Mount{Destination: sub, Source: r.req.cgPaths[key]}, &mountOpts{bind: true, flags: o.flags}); err != nil {
				return err
			}
		}
		// Co-mounted controllers ("cpu,cpuacct") are reachable by each name.
		if strings.Contains(name, ",") {
			for _, c := range strings.Split(name, ",") {
				parent, err := r.mkdirIn(m.Destination)
				if err != nil {
					return err
				}
				_ = unix.Symlinkat(name, int(parent.Fd()), c)
				parent.Close()
			}
		}
	}
	if o.flags&unix.MS_RDONLY != 0 {
		top, err := inroot.Open(r.root, m.Destination)
		if err != nil {
			return err
		}
		defer top.Close()
		return unix.Mount("", fdPath(top), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|(o.flags&(unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)), "")
	}
	return nil
}

// copyUp copies the tree under src into dst (tmpcopyup).
func copyUp(src, dst *os.File) error {
	// The trailing slash makes the walk enter the magic link's directory.
	srcPath, dstPath := fdPath(src)+"/", fdPath(dst)+"/"
	return filepath.WalkDir(srcPath, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(srcPath, p)
		if rel == "." {
			return nil
		}
		target := filepath.Join(dstPath, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil && !os.IsExist(err) {
				return err
			}
		case info.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, b, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return err
			}
		}
		return unix.Lchown(target, int(st.Uid), int(st.Gid))
	})
}

type device struct {
	path     string
	typ      uint32
	major    int64
	minor    int64
	mode     uint32
	uid, gid uint32
	// index is the device's place in linux.devices, or -1 for a default.
	index int
}

var defaultDevices = []device{
	{path: "/dev/null", typ: unix.S_IFCHR, major: 1, minor: 3, mode: 0o666},
	{path: "/dev/zero", typ: unix.S_IFCHR, major: 1, minor: 5, mode: 0o666},
	{path: "/dev/full", typ: unix.S_IFCHR, major: 1, minor: 7, mode: 0o666},
	{path: "/dev/random", typ: unix.S_IFCHR, major: 1, minor: 8, mode: 0o666},
	{path: "/dev/urandom", typ: unix.S_IFCHR, major: 1, minor: 9, mode: 0o666},
	{path: "/dev/tty", typ: unix.S_IFCHR, major: 5, minor: 0, mode: 0o666},
}

// hostDev reports whether the config binds the host's /dev, in which case
// the runtime leaves /dev alone.
func hostDev(mounts []specs.Mount) bool {
	for _, m := range mounts {
		if filepath.Clean(m.Destination) == "/dev" {
			o := parseMountOptions(m.Options)
			return o.bind || m.Type == "bind"
		}
	}
	return false
}

// createDevices makes the default device nodes, the config's, and the
// links the spec lists (/dev/fd, /dev/stdin, ..., /dev/ptmx).
func (r *rootfs) createDevices() error {
	devs := append([]device(nil), defaultDevices...)
	for i := range devs {
		devs[i].index = -1
	}
	for i, d := range r.req.spec.Linux.Devices {
		dev := device{path: d.Path, major: d.Major, minor: d.Minor, mode: 0o666, index: i}
		switch d.Type {
		case "c", "u":
			dev.typ = unix.S_IFCHR
		case "b":
			dev.typ = unix.S_IFBLK
		case "p":
			dev.typ = unix.S_IFIFO
		}
		if d.FileMode != nil {
			dev.mode = uint32(*d.FileMode) & 0o7777
		}
		if d.UID != nil {
			dev.uid = *d.UID
		}
		if d.GID != nil {
			dev.gid = *d.GID
		}
		// A config device replaces a default one at the same path.
		replaced := false
		for j := range devs {
			if devs[j].path == dev.path {
				devs[j], replaced = dev, true
			}
		}
		if !replaced {
			devs = append(devs, dev)
		}
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range devs {
		if err := r.makeDevice(d); err != nil {
			if d.index < 0 {
				return fmt.Errorf("default device %s: %w", d.path, err)
			}
			return fmt.Errorf("linux.devices[%d] (%s): %w", d.index, d.path, err)
		}
	}
	dev, err := r.mkdirIn("/dev")
	if err != nil {
		return err
	}
	defer dev.Close()
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], int(dev.Fd()), l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("link /dev/%s: %w", l[1], err)
		}
	}
	// /dev/ptmx must be the container's own devpts instance's.
	_ = unix.Unlinkat(int(dev.Fd()), "ptmx", 0)
	if err := unix.Symlinkat("pts/ptmx", int(dev.Fd()), "ptmx"); err != nil {
		return fmt.Errorf("link /dev/ptmx: %w", err)
	}
	return nil
}

func (r *rootfs) makeDevice(d device) error {
	parent, err := r.mkdirIn(filepath.Dir(d.path))
	if err != nil {
		return err
	}
	defer parent.Close()
	name := filepath.Base(d.path)
	if r.userns && d.typ != unix.S_IFIFO {
		// mknod is not allowed in a user namespace: bind the host's node.
		f, err := r.mkfileIn(d.path)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Mount(d.path, fdPath(f), "", unix.MS_BIND, "")
	}
	_ = unix.Unlinkat(int(parent.Fd()), name, 0)
	dev := int(unix.Mkdev(uint32(d.major), uint32(d.minor)))
	if err := unix.Mknodat(int(parent.Fd()), name, d.typ|d.mode, dev); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	if err := unix.Fchownat(int(parent.Fd()), name, int(d.uid), int(d.gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

// pivot makes the prepared root the thread's root, and the root of
// every process in the mount namespace. With --no-pivot it moves the root
// over / and chroots instead, for roots pivot_root cannot handle (a
// ramdisk's); in the host's mount namespace it only chroots (pivot_root
// would move the host's root). A chroot changes this thread's root only:
// the caller hands the process its root then (MsgRoot).
func (r *rootfs) pivot() error {
	if r.hostNS || r.req.noPivot {
		if err := unix.Chdir(r.path); err != nil {
			return err
		}
		if !r.hostNS {
			if err := unix.Mount(r.path, "/", "", unix.MS_MOVE, ""); err != nil {
				return fmt.Errorf("move root: %w", err)
			}
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		return unix.Chdir("/")
	}
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(r.path, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one, so
	// no directory for it is needed inside the container.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	// Keep the unmount below from propagating to the host's mounts.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// maskPaths hides paths: directories under an empty read-only tmpfs, files
// under /dev/null. Paths that do not exist are skipped. After the pivot
// there is no /proc/self to name descriptors by, so the mounts are made and
// attached through descriptors.
func maskPaths(root *os.File, paths []string) error {
	var empty, null int = -1, -1
	defer func() {
		if empty >= 0 {
			unix.Close(empty)
		}
		if null >= 0 {
			unix.Close(null)
		}
	}()
	for i, p := range paths {
		f, err := inroot.Open(root, p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("linux.maskedPaths[%d] (%s): %w", i, p, err)
		}
		var st unix.Stat_t
		err = unix.Fstat(int(f.Fd()), &st)
		if err == nil {
			var src int
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				if empty < 0 {
					empty, err = emptyTmpfs()
				}
				src = empty
			} else {
				if null < 0 {
					null, err = openDevNull(root)
				}
				src = null
			}
			if err == nil {
				err = attachClone(src, f)
			}
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("linux.maskedPaths[%d] (%s): %w", i, p, err)
		}
	}
	return nil
}

// emptyTmpfs makes a detached, empty, read-only tmpfs.
func emptyTmpfs() (int, error) {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "size", "0"); err != nil {
		return -1, err
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, err
	}
	return unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY)
}

// openDevNull makes a detached bind mount of the container's /dev/null.
func openDevNull(root *os.File) (int, error) {
	null, err := inroot.Open(root, "dev/null")
	if err != nil {
		return -1, err
	}
	defer null.Close()
	return unix.OpenTree(int(null.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
}

// attachClone attaches a copy of the detached mount src onto target.
func attachClone(src int, target *os.File) error {
	clone, err := unix.OpenTree(src, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(clone)
	return unix.MoveMount(clone, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// readonlyPaths makes paths read-only, including every mount below them.
func readonlyPaths(root *os.File, paths []string) error {
	for i, p := range paths {
		f, err := inroot.Open(root, p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("linux.readonlyPaths[%d] (%s): %w", i, p, err)
		}
		err = remountReadonly(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("linux.readonlyPaths[%d] (%s): %w", i, p, err)
		}
	}
	return nil
}

// remountReadonly binds f, and the whole tree below it, onto itself
// read-only. A detached clone takes the flag before it is attached.
func remountReadonly(f *os.File) error {
	tree, err := unix.OpenTree(int(f.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return err
	}
	return unix.MoveMount(tree, "", int(f.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// readonlyRoot makes the root mount itself read-only; mounts on top keep
// their own flags, as runc and crun do.
func readonlyRoot() error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(unix.AT_FDCWD, "/", 0, &attr); err != nil {
		return fmt.Errorf("root.readonly: %w", err)
	}
	return nil
}

// setRootPropagation applies linux.rootfsPropagation to the new root.
func setRootPropagation(p string) error {
	if p == "" {
		return nil
	}
	if err := unix.Mount("", "/", "", propagationOpts[p], ""); err != nil {
		return fmt.Errorf("linux.rootfsPropagation %s: %w", p, err)
	}
	return nil
}

// mountRef names a mount by its ID: the unique one (Linux 6.8+), never
// reused, where the kernel has it; the plain one, reused once the mount is
// gone, otherwise.
type mountRef struct {
	ID     uint64 `json:"id"`
	Unique bool   `json:"unique,omitempty"`
}

// mountOf returns the mount f is on.
func mountOf(f *os.File) (mountRef, error) {
	// Kernels without unique IDs answer with the plain one, and say so
	// in the mask.
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID_UNIQUE, &st); err != nil {
		return mountRef{}, err
	}
	switch {
	case st.Mask&unix.STATX_MNT_ID_UNIQUE != 0:
		return mountRef{ID: st.Mnt_id, Unique: true}, nil
	case st.Mask&unix.STATX_MNT_ID != 0:
		return mountRef{ID: st.Mnt_id}, nil
	}
	return mountRef{}, errors.New("the kernel reports no mount IDs (statx STATX_MNT_ID, Linux 5.8)")
}

// unmountRoot detaches the bind mount of a root made for a container
// without a mount namespace, and everything mounted under it, if the mount
// at dir is still that one (m): whatever dir was before the container,
// a plain directory or an image's mount, stays.
func unmountRoot(dir string, m mountRef) error {
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	var st unix.Statx_t
	mask := unix.STATX_MNT_ID
	if m.Unique {
		mask = unix.STATX_MNT_ID_UNIQUE
	}
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, mask, &st); err != nil || st.Mnt_id != m.ID {
		return err
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}
