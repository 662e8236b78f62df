package runtime

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/inroot"
	"github.com/berth-dev/berth/runtime/config"
	"github.com/berth-dev/berth/runtime/console"
	"github.com/berth-dev/berth/runtime/nsenter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The container's root filesystem is set up by the runtime itself, from a
// thread of its own that joins the container process's mount, network,
// IPC, UTS and cgroup namespaces (a thread may, once it has its own
// filesystem context). The container process meanwhile waits in the nsenter
// constructor, before any Go runtime exists in it: nothing of Go starts on
// the container's side at all, which saves a runtime start per container.
// What only that process can do (mount proc for its PID namespace as root of
// its user namespace, run createContainer hooks in all its namespaces) it
// does on request.

// setupRequest is what the rootfs thread needs.
type setupRequest struct {
	spec    *specs.Spec
	pid     int      // the container process
	sync    *os.File // its socket
	noPivot bool
	cgroupV int
	cgPaths map[string]string
	// createState is the state createContainer hooks read.
	createState []byte
	// onRootMount is told, for a container without a mount namespace,
	// of the bind mount of its root the setup made on the host, at once
	// (through onMain: the thread may act as another user), to record
	// it: the caller unmounts it if the create fails, delete otherwise.
	onRootMount func(mountRef) error
	// onMain runs fn on the caller's goroutine; setupRootfs sets it.
	onMain func(fn func() error) error
	// runtimeHooks runs prestart and createRuntime in the runtime's own
	// namespaces; the rootfs thread calls it through the caller's
	// goroutine (onMain), since anything it forked itself would be in
	// the container's.
	runtimeHooks func() error
}

// setupResult is what the process needs from its root filesystem.
type setupResult struct {
	path   string   // the program, resolved inside the root
	home   string   // HOME from the container's /etc/passwd
	master *os.File // terminal master, if the process has a terminal
	slave  *os.File
}

// setupRootfs runs the setup on a new OS thread, which ends with it: its
// namespaces and root are the container's once it is done.
func setupRootfs(req *setupRequest) (*setupResult, error) {
	type result struct {
		res *setupResult
		err error
	}
	done := make(chan result, 1)
	calls := make(chan mainCall)
	req.onMain = func(fn func() error) error {
		reply := make(chan error)
		calls <- mainCall{fn, reply}
		return <-reply
	}
	go func() {
		// Never unlocked: the thread exits with this goroutine.
		goruntime.LockOSThread()
		res, err := setupOnThread(req)
		done <- result{res, err}
	}()
	for {
		select {
		case c := <-calls:
			c.reply <- c.fn()
		case r := <-done:
			return r.res, r.err
		}
	}
}

// mainCall is work the setup thread hands back to the caller's goroutine:
// what must run in the runtime's own namespaces and credentials.
type mainCall struct {
	fn    func() error
	reply chan error
}

// joinableNS are the namespaces a thread of a multi-threaded process can
// enter: not user (the process must be single-threaded), not PID or time
// (they apply to children only).
var joinableNS = []specs.LinuxNamespaceType{
	specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.CgroupNamespace, specs.MountNamespace,
}

func setupOnThread(req *setupRequest) (*setupResult, error) {
	if unix.Gettid() == unix.Getpid() {
		// The main thread cannot be thrown away afterwards, and /proc/self
		// would show the container's namespaces for the rest of the
		// process. main locks it to the main goroutine to prevent this.
		return nil, errors.New("internal error: root filesystem setup on the main thread")
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return nil, fmt.Errorf("unshare filesystem context: %w", err)
	}
	spec := req.spec
	// Open every namespace before entering any: once in the mount
	// namespace, /proc/PID may name another process or none.
	type nsFile struct {
		flag int
		fd   int
	}
	var files []nsFile
	defer func() {
		for _, f := range files {
			unix.Close(f.fd)
		}
	}()
	for _, t := range joinableNS {
		if !config.HasNamespace(spec, t) {
			continue
		}
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/%s", req.pid, procNsName[t]), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open the container's %s namespace: %w", t, err)
		}
		files = append(files, nsFile{int(nsFlags[t]), fd})
	}
	for _, f := range files {
		if err := unix.Setns(f.fd, f.flag); err != nil {
			return nil, fmt.Errorf("join the container's namespace (%#x): %w", f.flag, err)
		}
	}
	r := &rootfs{path: spec.Root.Path, req: req, hostNS: !config.HasNamespace(spec, specs.MountNamespace)}
	if config.HasNamespace(spec, specs.UserNamespace) {
		if err := r.actAsContainerRoot(); err != nil {
			return nil, err
		}
	}
	if err := r.prepare(); err != nil {
		return nil, err
	}

	if err := r.mountAll(spec.Mounts); err != nil {
		return nil, err
	}
	if !hostDev(spec.Mounts) {
		if err := r.createDevices(); err != nil {
			return nil, err
		}
	}
	// prestart and createRuntime run now that the namespaces exist,
	// before the root is pivoted.
	if err := req.onMain(req.runtimeHooks); err != nil {
		return nil, err
	}
	if spec.Hooks != nil && len(spec.Hooks.CreateContainer) > 0 {
		var a nsenter.Attrs
		a.String(nsenter.FHookKind, "createContainer")
		hookAttrs(&a, spec.Hooks.CreateContainer, req.createState)
		if err := nsenter.SendMsgFD(req.sync, nsenter.MsgHooks, a.Bytes(), -1); err != nil {
			return nil, err
		}
		if err := nsenter.Expect(req.sync, nsenter.MsgOK); err != nil {
			return nil, err
		}
	}
	res := &setupResult{}
	// HOME from the container's passwd, read before the pivot: the file
	// is reopened through /proc/self/fd (see inroot.OpenRegular), which
	// the container's own /proc, of another PID namespace, cannot do.
	_, res.home = passwdEntry(r.root, spec.Process.User.UID)
	r.root.Close()
	if err := r.pivot(); err != nil {
		return nil, err
	}
	newRoot, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer newRoot.Close()
	if req.noPivot || r.hostNS {
		// chroot changed this thread's root only; pivot_root would
		// have changed the process's too.
		if err := nsenter.SendMsgFD(req.sync, nsenter.MsgRoot, nil, int(newRoot.Fd())); err != nil {
			return nil, err
		}
		if err := nsenter.Expect(req.sync, nsenter.MsgOK); err != nil {
			return nil, err
		}
	}
	if spec.Process.Terminal {
		res.master, res.slave, err = openPty(newRoot, spec.Process.ConsoleSize)
		if err != nil {
			return nil, err
		}
		if err := bindDevConsole(newRoot, res.slave); err != nil {
			res.master.Close()
			res.slave.Close()
			return nil, err
		}
	}
	if err := r.finish(newRoot); err != nil {
		res.close()
		return nil, err
	}
	res.path, err = lookPath(newRoot, spec.Process)
	if err != nil {
		res.close()
		return nil, err
	}
	return res, nil
}

func (s *setupResult) close() {
	if s.master != nil {
		s.master.Close()
	}
	if s.slave != nil {
		s.slave.Close()
	}
}

// finish does what follows the pivot: propagation, kernel settings, masked
// and read-only paths, the working directory, a read-only root.
func (r *rootfs) finish(root *os.File) error {
	spec := r.req.spec
	if err := setRootPropagation(spec.Linux.RootfsPropagation); err != nil {
		return err
	}
	// Sysctls go in before /proc/sys turns read-only below.
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("domainname: %w", err)
		}
	}
	for k, v := range spec.Linux.Sysctl {
		path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(path, []byte(v), 0); err != nil {
			return fmt.Errorf("linux.sysctl[%s]: %w", k, err)
		}
	}
	if err := maskPaths(root, spec.Linux.MaskedPaths); err != nil {
		return err
	}
	if err := readonlyPaths(root, spec.Linux.ReadonlyPaths); err != nil {
		return err
	}
	// The working directory may have to be made, before / turns read-only.
	if err := os.MkdirAll(spec.Process.Cwd, 0o755); err != nil {
		return fmt.Errorf("process.cwd: %w", err)
	}
	if spec.Root.Readonly {
		if err := readonlyRoot(); err != nil {
			return err
		}
	}
	return nil
}

// actAsContainerRoot makes this thread create files as the container's root
// (the host IDs that map to 0), so that what it makes in the root
// filesystem belongs to the container; the filesystem capabilities the
// change drops are raised again.
func (r *rootfs) actAsContainerRoot() error {
	l := r.req.spec.Linux
	uid, ok := hostID(l.UIDMappings, 0)
	if !ok {
		uid = 0
	}
	gid, ok := hostID(l.GIDMappings, 0)
	if !ok {
		gid = 0
	}
	r.userns = true
	unix.Setfsgid(int(gid))
	unix.Setfsuid(int(uid))
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	data[0].Effective, data[1].Effective = data[0].Permitted, data[1].Permitted
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("restore capabilities: %w", err)
	}
	return nil
}

// hostID maps a container ID to the host's through a mapping.
func hostID(m []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, e := range m {
		if id >= e.ContainerID && id-e.ContainerID < e.Size {
			return e.HostID + id - e.ContainerID, true
		}
	}
	return 0, false
}

// openPty opens a new terminal in the container's devpts (through its
// /dev/ptmx) and its peer, without any path lookup for the latter.
func openPty(root *os.File, size *specs.Box) (*os.File, *os.File, error) {
	ptmx, err := inroot.Openat2(int(root.Fd()), "dev/ptmx", unix.O_RDWR|unix.O_NOCTTY, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
	if err != nil {
		return nil, nil, fmt.Errorf("process.terminal: open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		ptmx.Close()
		return nil, nil, fmt.Errorf("process.terminal: unlock: %w", err)
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, ptmx.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		ptmx.Close()
		return nil, nil, fmt.Errorf("process.terminal: open peer: %w", errno)
	}
	fd := int(r)
	slave := os.NewFile(uintptr(fd), "pty")
	if size != nil {
		if err := console.SetSize(ptmx, uint16(size.Height), uint16(size.Width)); err != nil {
			ptmx.Close()
			slave.Close()
			return nil, nil, fmt.Errorf("process.consoleSize: %w", err)
		}
	}
	return ptmx, slave, nil
}

// bindDevConsole binds the terminal onto /dev/console, by descriptor.
func bindDevConsole(root *os.File, slave *os.File) error {
	dev, err := inroot.Open(root, "dev")
	if err != nil {
		return fmt.Errorf("bind /dev/console: %w", err)
	}
	defer dev.Close()
	// A file to mount onto, made without opening anything: whatever
	// is there already (a fifo, a device) is not opened either.
	if err := unix.Mknodat(int(dev.Fd()), "console", unix.S_IFREG|0o600, 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create /dev/console: %w", err)
	}
	target, err := inroot.Open(root, "dev/console")
	if err != nil {
		return err
	}
	defer target.Close()
	tree, err := unix.OpenTree(int(slave.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("bind /dev/console: %w", err)
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind /dev/console: %w", err)
	}
	return nil
}

// askProcessToMount has the container process mount fstype onto target:
// proc must be mounted from inside its PID namespace (unless the kernel
// takes a pidns= option) and, in a user namespace, as its root.
func (r *rootfs) askProcessToMount(target *os.File, source, fstype string, flags uintptr, data string) error {
	var a nsenter.Attrs
	a.String(nsenter.FMountSource, source)
	a.String(nsenter.FMountType, fstype)
	a.U64(nsenter.FMountFlags, uint64(flags))
	a.String(nsenter.FMountData, data)
	if err := nsenter.SendMsgFD(r.req.sync, nsenter.MsgMount, a.Bytes(), int(target.Fd())); err != nil {
		return err
	}
	return nsenter.Expect(r.req.sync, nsenter.MsgOK)
}

func pidNSOption(pid int) string { return "pidns=/proc/" + strconv.Itoa(pid) + "/ns/pid" }
