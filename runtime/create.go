package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/runtime/caps"
	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/config"
	"github.com/berth-dev/berth/runtime/console"
	"github.com/berth-dev/berth/runtime/nsenter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CreateOpts are create's options beyond the bundle.
type CreateOpts struct {
	Bundle        string
	PidFile       string
	ConsoleSocket string
	// Console, if set, is a connected socket to send the terminal to (the
	// caller receives it itself); it takes ConsoleSocket's place.
	Console      *os.File
	NoPivot      bool
	NoNewKeyring bool
	// PreserveFDs passes descriptors 3 .. 3+N-1 on to the container.
	PreserveFDs int
	// Start runs the program as soon as the container is set up, as run
	// does: create and start in one, with no wait in between.
	Start  bool
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
}

var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// procNsName is a namespace's file name under /proc/PID/ns.
var procNsName = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.MountNamespace: "mnt",
	specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts", specs.UserNamespace: "user",
	specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time",
}

func bootstrapFor(spec *specs.Spec) nsenter.Bootstrap {
	var b nsenter.Bootstrap
	for _, ns := range spec.Linux.Namespaces {
		if ns.Path == "" {
			b.CloneFlags |= nsFlags[ns.Type]
		} else {
			b.Joins = append(b.Joins, nsenter.Join{Type: nsFlags[ns.Type], Path: ns.Path})
		}
	}
	for _, clock := range []string{"monotonic", "boottime"} {
		if off, ok := spec.Linux.TimeOffsets[clock]; ok {
			b.TimeOffsets += fmt.Sprintf("%s %d %d\n", clock, off.Secs, off.Nanosecs)
		}
	}
	return b
}

// Create sets up a container from a bundle and leaves its init waiting for
// Start. On any failure it removes everything it made: state directory,
// cgroup directories, processes, and the mounts of a container without a
// mount namespace (the others go with the init's namespace).
func (r *Runtime) Create(id string, o *CreateOpts) (c *Container, err error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, err
	}
	raw, err := config.Read(bundle)
	if err != nil {
		return nil, err
	}
	// The cgroup is found (from the config and the host's mounts) while
	// the ID is claimed, and made once it is ours; the config is decoded
	// meanwhile.
	type made struct {
		cg    cgroups.Manager
		owned bool // made, or found empty: its processes are ours
		owner string
		err   error
	}
	claimed := make(chan string, 1) // the state directory, or ""
	cgDone := make(chan made, 1)
	created := time.Now().UTC()
	go func() {
		m, err := r.findCgroup(raw, id)
		dir := <-claimed
		if dir == "" || err != nil {
			cgDone <- made{err: err}
			return
		}
		if err = m.Create(); err != nil {
			cgDone <- made{cg: m, err: fmt.Errorf("linux.cgroupsPath: %w", err)}
			return
		}
		owner := ownerName()
		// From here on the container is visible (as creating) and,
		// should this process die, removable: delete finds its cgroup
		// in the state. The rest of the state follows later.
		first := &Container{dir: dir, s: saved{
			ID: id, Bundle: bundle, Created: created, Owner: owner,
			CgroupV: m.Version(), CgroupPaths: m.Paths(), Creating: true,
		}}
		if err = first.save(); err != nil {
			err = fmt.Errorf("save state: %w", err)
		}
		cgDone <- made{m, true, owner, err}
	}()
	if err := os.MkdirAll(r.Root, 0o700); err != nil {
		claimed <- ""
		return nil, fmt.Errorf("create root %s: %w", r.Root, err)
	}
	// The state directory is the claim on the ID: nothing, not even the
	// cgroup, is made for a container before it is ours.
	dir := filepath.Join(r.Root, id)
	lock, err := claimDir(r.Root, dir)
	if err != nil {
		claimed <- ""
	} else {
		claimed <- dir
	}
	if err != nil {
		if errors.Is(err, ErrExist) {
			return nil, fmt.Errorf("container %s: %w", id, ErrExist)
		}
		return nil, err
	}
	defer lock.Close()
	var cg cgroups.Manager
	cgOwned := false // made, or found empty: its processes are ours
	var spec *specs.Spec
	var sp *spawned
	var setupReq *setupRequest
	var pidFile string // written, and removed again on failure
	// Work started in the background that a failure must wait for, to
	// undo it: the cgroup being made, the process being started.
	type started struct {
		sp  *spawned
		err error
	}
	cgPending := true
	var early chan started
	var limits *background
	defer func() {
		if err == nil {
			return
		}
		if limits != nil {
			// Nothing is undone while it may still write.
			_ = limits.wait()
		}
		if cgPending {
			res := <-cgDone
			cg, cgOwned = res.cg, res.owned
		}
		if early != nil {
			sp = (<-early).sp
		}
		if cg != nil && cgOwned {
			// A memory limit too small for the setup itself shows
			// only as the process vanishing: say why.
			if st, serr := cg.Stats(); serr == nil && st.Memory.OOMKills > 0 {
				err = fmt.Errorf("%w (the OOM killer killed %d process(es) in the container's cgroup: linux.resources.memory.limit may be too low to start it)", err, st.Memory.OOMKills)
			}
		}
		if sp != nil {
			sp.kill()
			_ = waitExit(sp.pid, 5*time.Second)
		}
		if c != nil && c.s.RootMount != nil {
			if uerr := unmountRoot(c.s.Rootfs, *c.s.RootMount); uerr != nil {
				r.log().Warn("unmount after failed create", "id", id, "err", uerr)
			}
		}
		if cg != nil {
			// The process may have forked into its PID namespace
			// before we learnt the PID: whatever is in the cgroup
			// goes (Create made sure nothing else was in it).
			if cgOwned {
				_ = killCgroup(cg)
			}
			if derr := cg.Undo(); derr != nil {
				r.log().Warn("remove cgroup after failed create", "id", id, "err", derr)
			}
		}
		if pidFile != "" {
			os.Remove(pidFile)
		}
		os.RemoveAll(dir)
	}()

	// A container that waits for start gets the fifos start talks to it
	// through.
	var execF, statusF *os.File
	if !o.Start {
		if execF, err = mkfifo(filepath.Join(dir, execFifo)); err != nil {
			return nil, err
		}
		defer execF.Close()
		if statusF, err = mkfifo(filepath.Join(dir, statusFifo)); err != nil {
			return nil, err
		}
		defer statusF.Close()
	}
	preserved, err := preservedFiles(o.PreserveFDs)
	if err != nil {
		return nil, err
	}
	startOpts := func(cg cgroups.Manager) *spawnOpts {
		return &spawnOpts{
			cgroup:    cg,
			stdin:     o.Stdin,
			stdout:    o.Stdout,
			stderr:    o.Stderr,
			preserved: preserved,
			execFifo:  execF,
			status:    statusF,
		}
	}
	defer func() {
		if sp != nil {
			sp.sync.Close()
		}
	}()
	// Where the process can join its cgroups after it has started (cgroup
	// v1 only: tasks files), it starts now and gets its bootstrap once the
	// config is decoded and the cgroup made, so that the exec of the
	// runtime's binary overlaps both. A process that is to be cloned into
	// a cgroup2 directory waits for it.
	if !cgroups.UnifiedMounted() {
		early = make(chan started, 1)
		go func() {
			sp, err := r.spawn(startOpts(nil))
			early <- started{sp, err}
		}()
	}
	spec, warnings, err := config.Decode(raw, bundle)
	cgResult := <-cgDone
	cgPending = false
	cg = cgResult.cg
	cgOwned = cgResult.owned
	var spawnErr error
	if early != nil {
		st := <-early
		early = nil
		sp, spawnErr = st.sp, st.err
	}
	// The config's own errors first: they are what the user can fix.
	for _, e := range []error{err, cgResult.err, spawnErr} {
		if e != nil {
			err = e
			return nil, err
		}
	}
	c = &Container{rt: r, dir: dir, spec: spec, s: saved{
		ID:          id,
		Bundle:      bundle,
		Rootfs:      spec.Root.Path,
		Created:     created,
		Owner:       cgResult.owner,
		Annotations: spec.Annotations,
		CgroupV:     cg.Version(),
		CgroupPaths: cg.Paths(),
		Creating:    true,
	}}
	if h := spec.Hooks; h != nil {
		c.s.Poststart, c.s.Poststop = h.Poststart, h.Poststop
	}
	for _, w := range warnings {
		r.log().Warn(w, "id", id)
	}
	if err = caps.CheckAvailable(spec.Process.Capabilities); err != nil {
		return nil, err
	}
	if spec.Process.Terminal && o.ConsoleSocket == "" && o.Console == nil {
		err = errors.New("process.terminal is true, so a console socket (--console-socket) is needed to hand the terminal to")
		return nil, err
	}
	if !spec.Process.Terminal && o.ConsoleSocket != "" {
		err = errors.New("--console-socket was given, but process.terminal is false")
		return nil, err
	}

	if sp == nil {
		if sp, err = r.spawn(startOpts(cg)); err != nil {
			return nil, err
		}
	}
	sp.uidMaps, sp.gidMaps = spec.Linux.UIDMappings, spec.Linux.GIDMappings
	b := bootstrapFor(spec)
	if err = sp.bootstrap(&b, cg); err != nil {
		return nil, err
	}
	// While the process enters its namespaces and its root is set up:
	// the limits and the config's copy. As in runc, the limits are in
	// force before the first hook runs (setup waits for them there), so
	// long before anything of the container's own.
	// The closure gets its own copies: a failing return sets the named
	// result c to nil while this may still run.
	own, cgm := c, cg
	limits = inBackground(func() error {
		c, cg := own, cgm
		if err := cg.Set(spec.Linux.Resources); err != nil {
			return err
		}
		if err := r.defaultDeviceRules(cg, spec.Linux.Resources); err != nil {
			return err
		}
		if err := c.saveConfig(raw); err != nil {
			return fmt.Errorf("save state: %w", err)
		}
		return nil
	})
	if err = sp.namespaces(); err != nil {
		return nil, err
	}
	c.s.Pid = sp.pid
	if _, c.s.PidStartTime, err = procStat(sp.pid); err != nil {
		return nil, fmt.Errorf("container process: %w", err)
	}
	// A pid file that cannot be written fails the create before the
	// program runs (run) or anything waits on it.
	if o.PidFile != "" {
		if err = writePidFile(o.PidFile, sp.pid); err != nil {
			return nil, err
		}
		pidFile = o.PidFile
	}
	setupReq = &setupRequest{
		// The host now holds a mount of the container's: the state
		// says so before anything else can fail, or kill us.
		onRootMount: func(m mountRef) error {
			c.s.RootMount = &m
			return c.save()
		},
		createState: c.hookState(StatusCreating),
		spec:        spec,
		pid:         sp.pid,
		sync:        sp.sync,
		noPivot:     o.NoPivot,
		cgroupV:     cg.Version(),
		cgPaths:     cg.Paths(),
		runtimeHooks: func() error {
			if err := limits.wait(); err != nil {
				return err
			}
			h := spec.Hooks
			if h == nil {
				return nil
			}
			state := c.hookState(StatusCreating)
			//nolint:staticcheck // prestart is deprecated but still run
			if err := runHooks("prestart", h.Prestart, state); err != nil {
				return err
			}
			return runHooks("createRuntime", h.CreateRuntime, state)
		},
	}
	setup, err := setupRootfs(setupReq)
	if err != nil {
		return nil, err
	}
	defer setup.close()
	if setup.master != nil {
		if err = handOverTerminal(setup.master, o.ConsoleSocket, o.Console); err != nil {
			return nil, err
		}
	}
	var startHooks []specs.Hook
	if spec.Hooks != nil {
		startHooks = spec.Hooks.StartContainer
	}
	attrs, agent, err := finalizeAttrs(spec, spec.Process, &finalizeOpts{
		container:  c.ociState(StatusCreating),
		pid:        sp.pid,
		path:       setup.path,
		home:       setup.home,
		keyring:    !o.NoNewKeyring,
		tty:        setup.slave != nil,
		preserve:   len(preserved),
		execFifo:   sp.fdExecFifo,
		statusFifo: sp.fdStatusFifo,
		startHooks: startHooks,
		startState: c.hookState(StatusCreated),
	})
	if err != nil {
		return nil, err
	}
	// Setup waited for the limits already, at the hooks.
	if err = limits.wait(); err != nil {
		return nil, err
	}
	if err = sp.finalize(attrs, setup.slave, agent); err != nil {
		return nil, err
	}
	if o.Start {
		if err = sp.waitExec(); err != nil {
			return nil, err
		}
	}
	c.s.Creating = false
	if err = c.save(); err != nil {
		return nil, fmt.Errorf("save state: %w", err)
	}
	if o.Start {
		c.poststart()
	}
	// The init is no child of ours to reap once we exit; a caller that
	// stays (run) waits for it as a subreaper.
	sp.child = 0
	return c, nil
}

// findCgroup returns the manager for the config's cgroup; it makes nothing.
func (r *Runtime) findCgroup(raw []byte, id string) (cgroups.Manager, error) {
	p := config.CgroupsPath(raw)
	if cgroups.IsSystemdPath(p) {
		if r.SystemdCgroup {
			return nil, fmt.Errorf("linux.cgroupsPath %q: %w", p, cgroups.ErrSystemd)
		}
		return nil, fmt.Errorf("linux.cgroupsPath %q has systemd's slice:prefix:name form, which needs --systemd-cgroup and a systemd cgroup driver; give a path such as /berth/%s", p, id)
	}
	m, err := cgroups.New(cgroups.Options{Path: p, Name: id})
	if err != nil {
		return nil, fmt.Errorf("linux.cgroupsPath: %w", err)
	}
	return m, nil
}

// defaultDeviceRules gives a container whose config has no device rules
// the default ones, so that its new cgroup does not keep the access to
// every device it starts with. Where the runtime cannot control devices (a
// v1 host without the devices controller, or a runtime in a user namespace,
// which may not load a device program), the container has no more access
// than its runtime: it goes on without, as runc does.
func (r *Runtime) defaultDeviceRules(cg cgroups.Manager, res *specs.LinuxResources) error {
	if res != nil && res.Devices != nil {
		return nil // applied with the rest
	}
	err := cg.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{}})
	if err == nil {
		return nil
	}
	if errors.Is(err, cgroups.ErrNoDeviceControl) || (errors.Is(err, unix.EPERM) && inUserNamespace()) {
		r.log().Warn("default device rules not applied", "err", err)
		return nil
	}
	return err
}

// inUserNamespace reports whether the runtime itself runs in a user
// namespace other than the host's.
func inUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

// claimDir makes a container's state directory, locked (see lockDir)
// before it appears under its name: no other command ever sees it without
// the lock, and a directory already there is ErrExist.
func claimDir(root, dir string) (*os.File, error) {
	tmp, err := os.MkdirTemp(root, creatingPrefix)
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) {
		// A filesystem without RENAME_NOREPLACE: mkdir claims the
		// name, and the lock follows a moment later.
		lock.Close()
		os.Remove(tmp)
		if err := os.Mkdir(dir, 0o700); err != nil {
			if os.IsExist(err) {
				return nil, ErrExist
			}
			return nil, err
		}
		lock, err := lockDirWait(dir)
		if err != nil {
			os.Remove(dir)
		}
		return lock, err
	}
	if err != nil {
		lock.Close()
		os.Remove(tmp)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return nil, ErrExist
		}
		return nil, err
	}
	return lock, nil
}

// handOverTerminal sends a terminal's master to the console socket at path,
// or over conn, a socket already connected to its receiver.
func handOverTerminal(master *os.File, path string, conn *os.File) error {
	if path != "" {
		sock, err := console.Dial(path)
		if err != nil {
			return fmt.Errorf("console socket: %w", err)
		}
		defer sock.Close()
		conn = sock
	}
	if err := console.SendFd(conn, "/dev/ptmx", master); err != nil {
		return fmt.Errorf("process.terminal: send to console socket: %w", err)
	}
	return nil
}

func mkfifo(path string) (*os.File, error) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo %s: %w", path, err)
	}
	// Read-write, so that opening never blocks and the pipe stays alive
	// while only the init holds it.
	return os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
}

func preservedFiles(n int) ([]*os.File, error) {
	var out []*os.File
	for i := 0; i < n; i++ {
		fd := 3 + i
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			return nil, fmt.Errorf("--preserve-fds %d: descriptor %d is not open", n, fd)
		}
		// What the caller passed survived its exec; a descriptor that
		// closes on exec was opened by this process, and is not the
		// container's to have.
		if flags&unix.FD_CLOEXEC != 0 {
			return nil, fmt.Errorf("--preserve-fds %d: descriptor %d was not passed by the caller", n, fd)
		}
		out = append(out, os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd)))
	}
	return out, nil
}

func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err == nil {
		err = writeAtomic(abs, []byte(strconv.Itoa(pid)), 0o644)
	}
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// ownerName is the caller's user name, from the host's /etc/passwd (not
// NSS, whose modules would cost every create a few milliseconds).
func ownerName() string {
	root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer root.Close()
	name, _ := passwdEntry(root, uint32(os.Geteuid()))
	return name
}

// background is work started on its own goroutine that the caller joins
// later, possibly from more than one place.
type background struct {
	done chan struct{}
	err  error
}

func inBackground(fn func() error) *background {
	b := &background{done: make(chan struct{})}
	go func() {
		b.err = fn()
		close(b.done)
	}()
	return b
}

// wait returns fn's error once fn has returned.
func (b *background) wait() error {
	<-b.done
	return b.err
}
