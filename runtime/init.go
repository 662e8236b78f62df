package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/berth-dev/berth/runtime/caps"
	"github.com/berth-dev/berth/runtime/config"
	"github.com/berth-dev/berth/runtime/console"
	"github.com/berth-dev/berth/runtime/nsenter"
	"github.com/berth-dev/berth/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// IsInit reports whether this process was started by spawn; main must then
// call Init before doing anything else.
func IsInit() bool { return os.Getenv(nsenter.EnvFD) != "" }

// Init runs inside a new container process, already in its namespaces
// (the nsenter constructor saw to that). It sets up what the config asks for
// and execs the container's program; it returns only by exiting.
func Init() {
	// Capabilities, no_new_privs and the seccomp filter belong to a
	// thread, and the exec must happen on the thread that has them.
	goruntime.LockOSThread()
	fd, err := strconv.Atoi(os.Getenv(nsenter.EnvFD))
	if err != nil {
		os.Exit(1)
	}
	os.Clearenv()
	sync := os.NewFile(uintptr(fd), "sync")
	typ, data, err := nsenter.ReadMsg(sync)
	if err != nil || typ != nsenter.MsgJSON {
		os.Exit(1)
	}
	var cfg initConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		fail(sync, nil, fmt.Errorf("decode init config: %w", err))
	}
	if err := enterCgroupNS(cfg.NewCgroupNS, cfg.CgroupNSFD); err != nil {
		fail(sync, nil, err)
	}
	var status *os.File
	if cfg.StatusFifo >= 0 {
		status = os.NewFile(uintptr(cfg.StatusFifo), "status")
	}
	switch cfg.Mode {
	case "create":
		err = initContainer(sync, status, &cfg)
	case "exec":
		err = initExec(sync, &cfg)
	default:
		err = fmt.Errorf("unknown init mode %q", cfg.Mode)
	}
	fail(sync, status, err)
}

// enterCgroupNS creates or joins the cgroup namespace, now that the parent
// has put this process in its cgroup. It applies to this (locked) thread,
// the one that mounts cgroupfs and execs the container's program.
func enterCgroupNS(create bool, fd int) error {
	if create {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("create cgroup namespace: %w", err)
		}
	}
	if fd >= 0 {
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("join cgroup namespace: %w", err)
		}
	}
	return nil
}

// fail reports err to whoever listens (the creating runtime while it waits,
// the starting one after) and exits.
func fail(sync, status *os.File, err error) {
	if status != nil {
		fmt.Fprintf(status, "error: %v", err)
	}
	_ = sendMsg(sync, message{Type: msgError, Error: err.Error()})
	os.Exit(1)
}

func initContainer(sync, status *os.File, cfg *initConfig) error {
	spec := cfg.Spec
	p := cfg.Process
	r := &rootfs{path: cfg.Rootfs, cfg: cfg, hostNS: !config.HasNamespace(spec, specs.MountNamespace)}
	if err := r.prepare(); err != nil {
		return err
	}
	if err := r.mountAll(spec.Mounts); err != nil {
		return err
	}
	if !hostDev(spec.Mounts) {
		if err := r.createDevices(spec, config.HasNamespace(spec, specs.UserNamespace)); err != nil {
			return err
		}
	}
	// prestart and createRuntime hooks run in the runtime's namespaces,
	// by the parent, now that the container's exist.
	if err := sendMsg(sync, message{Type: msgHooks}); err != nil {
		return err
	}
	if m, err := recvMsg(sync); err != nil || m.Type != msgHooksDone {
		if err == nil {
			err = errors.New(m.Error)
		}
		return err
	}
	if spec.Hooks != nil && len(spec.Hooks.CreateContainer) > 0 {
		if err := runHooks("createContainer", spec.Hooks.CreateContainer, hookState(cfg, StatusCreated)); err != nil {
			return err
		}
	}
	r.root.Close()
	if err := r.pivot(cfg.NoPivot); err != nil {
		return err
	}
	if p.Terminal {
		if err := setupConsole(cfg, true); err != nil {
			return err
		}
	}
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
	newRoot, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer newRoot.Close()
	if err := maskPaths(newRoot, spec.Linux.MaskedPaths); err != nil {
		return err
	}
	if err := readonlyPaths(newRoot, spec.Linux.ReadonlyPaths); err != nil {
		return err
	}
	// The working directory may have to be made, before / turns read-only.
	if err := os.MkdirAll(p.Cwd, 0o755); err != nil {
		return fmt.Errorf("process.cwd: %w", err)
	}
	if spec.Root.Readonly {
		if err := readonlyRoot(); err != nil {
			return err
		}
	}
	if pers := spec.Linux.Personality; pers != nil {
		v := uintptr(0) // PER_LINUX
		if pers.Domain == specs.PerLinux32 {
			v = 0x0008 // PER_LINUX32
		}
		if _, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, v, 0, 0); errno != 0 {
			return fmt.Errorf("linux.personality: %w", errno)
		}
	}
	if !cfg.NoNewKeyring {
		// A keyring of its own, so that keys a container adds do not
		// land in the caller's session. Kernels that refuse (seccomp on
		// the host, old kernels) just keep the old one.
		_, _ = unix.KeyctlJoinSessionKeyring("_ses." + cfg.ID)
	}
	if err := processSetup(p); err != nil {
		return err
	}
	path, err := lookPath(p)
	if err != nil {
		return err
	}
	// Set up; now wait for start.
	if err := sendMsg(sync, message{Type: msgReady}); err != nil {
		return err
	}
	fifo := os.NewFile(uintptr(cfg.ExecFifo), "exec.fifo")
	var b [1]byte
	if _, err := fifo.Read(b[:]); err != nil {
		return fmt.Errorf("wait for start: %w", err)
	}
	fifo.Close()
	if spec.Hooks != nil && len(spec.Hooks.StartContainer) > 0 {
		if err := runHooks("startContainer", spec.Hooks.StartContainer, hookState(cfg, StatusCreated)); err != nil {
			return err
		}
	}
	return finalizeAndExec(spec, p, cfg, path, status)
}

func initExec(sync *os.File, cfg *initConfig) error {
	p := cfg.Process
	if !config.HasNamespace(cfg.Spec, specs.MountNamespace) {
		// The container shares the host's mount namespace; its root is
		// only a chroot, which joining namespaces does not give.
		if err := unix.Chroot(cfg.Rootfs); err != nil {
			return fmt.Errorf("chroot into the container's root: %w", err)
		}
		if err := unix.Chdir("/"); err != nil {
			return err
		}
	}
	if p.Terminal {
		if err := setupConsole(cfg, false); err != nil {
			return err
		}
	}
	if err := processSetup(p); err != nil {
		return err
	}
	path, err := lookPath(p)
	if err != nil {
		return err
	}
	if err := sendMsg(sync, message{Type: msgExec}); err != nil {
		return err
	}
	return finalizeAndExec(cfg.Spec, p, cfg, path, nil)
}

func hookState(cfg *initConfig, status string) []byte {
	b, _ := json.Marshal(specs.State{
		Version:     specs.Version,
		ID:          cfg.ID,
		Status:      specs.ContainerState(status),
		Pid:         cfg.HostPid,
		Bundle:      cfg.Bundle,
		Annotations: cfg.Spec.Annotations,
	})
	return b
}

// setupConsole gives the process a new terminal from the container's devpts,
// sends its master to the console socket, and makes the slave its stdio and
// controlling terminal (and /dev/console for a container's init).
func setupConsole(cfg *initConfig, bindConsole bool) error {
	if cfg.Console < 0 {
		return errors.New("process.terminal: no console socket to send the terminal to")
	}
	sock := os.NewFile(uintptr(cfg.Console), "console-socket")
	defer sock.Close()
	master, slavePath, err := console.NewPty("/dev/ptmx")
	if err != nil {
		return fmt.Errorf("process.terminal: %w", err)
	}
	defer master.Close()
	if cs := cfg.Process.ConsoleSize; cs != nil {
		if err := console.SetSize(master, uint16(cs.Height), uint16(cs.Width)); err != nil {
			return fmt.Errorf("process.consoleSize: %w", err)
		}
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("process.terminal: open %s: %w", slavePath, err)
	}
	defer slave.Close()
	if bindConsole {
		if err := bindDevConsole(slavePath); err != nil {
			return err
		}
	}
	if err := console.SendFd(sock, "/dev/ptmx", master); err != nil {
		return fmt.Errorf("process.terminal: send to console socket: %w", err)
	}
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	for _, fd := range []int{0, 1, 2} {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup terminal: %w", err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	return nil
}

func bindDevConsole(slave string) error {
	f, err := os.OpenFile("/dev/console", os.O_CREATE|os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create /dev/console: %w", err)
	}
	f.Close()
	if err := unix.Mount(slave, "/dev/console", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind /dev/console: %w", err)
	}
	return nil
}

// processSetup applies the process attributes that need privileges the
// process may not keep: rlimits, OOM score, I/O priority, scheduler.
func processSetup(p *specs.Process) error {
	for i, rl := range p.Rlimits {
		res := config.Rlimits[rl.Type]
		lim := unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}
		if err := unix.Prlimit(0, res, &lim, nil); err != nil {
			return fmt.Errorf("process.rlimits[%d] (%s soft %d hard %d): %w", i, rl.Type, rl.Soft, rl.Hard, err)
		}
	}
	if p.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("process.oomScoreAdj (%d): %w", *p.OOMScoreAdj, err)
		}
	}
	if io := p.IOPriority; io != nil {
		class := map[specs.IOPriorityClass]int{specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3}[io.Class]
		prio := class<<13 | int(io.Priority)
		const whoProcess = 1
		if _, _, errno := unix.RawSyscall(unix.SYS_IOPRIO_SET, whoProcess, 0, uintptr(prio)); errno != 0 {
			return fmt.Errorf("process.ioPriority: %w", errno)
		}
	}
	if s := p.Scheduler; s != nil {
		attr := unix.SchedAttr{
			Size:     unix.SizeofSchedAttr,
			Policy:   config.SchedPolicies[s.Policy],
			Nice:     s.Nice,
			Priority: uint32(s.Priority),
			Runtime:  s.Runtime,
			Deadline: s.Deadline,
			Period:   s.Period,
		}
		for _, f := range s.Flags {
			attr.Flags |= config.SchedFlags[f]
		}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			return fmt.Errorf("process.scheduler: %w", err)
		}
	}
	return nil
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func envValue(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// lookPath finds the program to run inside the container, with the
// process's own PATH, so that a missing program fails create, not start.
func lookPath(p *specs.Process) (string, error) {
	name := p.Args[0]
	check := func(path string) error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if st.IsDir() {
			return errors.New("is a directory")
		}
		if st.Mode()&0o111 == 0 {
			return errors.New("permission denied")
		}
		return nil
	}
	if strings.Contains(name, "/") {
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.Cwd, path)
		}
		if err := check(path); err != nil {
			return "", fmt.Errorf("process.args[0]: exec %q: %w", name, err)
		}
		return name, nil
	}
	pathEnv, ok := envValue(p.Env, "PATH")
	if !ok {
		pathEnv = defaultPath
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		path := filepath.Join(dir, name)
		if check(path) == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("process.args[0]: exec %q: executable file not found in $PATH", name)
}

// passwdEntry finds a user's name and home directory in a passwd file.
func passwdEntry(path string, uid uint32) (name, home string) {
	f, err := os.Open(path)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.Split(s.Text(), ":")
		if len(parts) >= 6 && parts[2] == strconv.FormatUint(uint64(uid), 10) {
			return parts[0], parts[5]
		}
	}
	return "", ""
}

// finalizeAndExec drops to the configured user and capabilities, installs
// the seccomp filter, closes what must not leak, and execs. All of it on
// this locked thread, whose credentials are the ones the exec keeps.
func finalizeAndExec(spec *specs.Spec, p *specs.Process, cfg *initConfig, path string, status *os.File) error {
	env := p.Env
	if _, ok := envValue(env, "HOME"); !ok {
		_, home := passwdEntry("/etc/passwd", p.User.UID)
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}
	if err := unix.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("process.cwd (%s): %w", p.Cwd, err)
	}
	// Nothing of the runtime's may reach the program: everything above the
	// preserved descriptors closes on exec. Done before any seccomp filter,
	// which may not know close_range.
	if err := closeOnExecFrom(3 + cfg.PreserveFDs); err != nil {
		return err
	}
	var sc *specs.LinuxSeccomp
	if spec.Linux != nil {
		sc = spec.Linux.Seccomp
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("process.noNewPrivileges: %w", err)
		}
	}
	// Without no_new_privs the filter needs CAP_SYS_ADMIN, which goes
	// with the capabilities below: install it first.
	if sc != nil && !p.NoNewPrivileges {
		if err := loadSeccomp(sc, cfg); err != nil {
			return err
		}
	}
	var bounding []string
	if p.Capabilities != nil {
		bounding = p.Capabilities.Bounding
	}
	if err := caps.DropBounding(bounding); err != nil {
		return fmt.Errorf("process.capabilities.bounding: %w", err)
	}
	if err := setUser(p.User); err != nil {
		return err
	}
	if err := caps.Apply(p.Capabilities); err != nil {
		return fmt.Errorf("process.capabilities: %w", err)
	}
	if status != nil {
		// Tell start that the exec is next; after the filter below even
		// this write could be refused.
		if _, err := status.Write([]byte{0}); err != nil {
			return err
		}
	}
	if sc != nil && p.NoNewPrivileges {
		if err := loadSeccomp(sc, cfg); err != nil {
			return err
		}
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	} else {
		unix.Umask(0o022)
	}
	err := unix.Exec(path, p.Args, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

func loadSeccomp(sc *specs.LinuxSeccomp, cfg *initConfig) error {
	fd, err := seccomp.Load(sc)
	if err != nil {
		return err
	}
	if fd >= 0 {
		defer unix.Close(fd)
		if err := sendListener(sc, cfg, fd); err != nil {
			return fmt.Errorf("linux.seccomp.listenerPath: %w", err)
		}
	}
	return nil
}

// sendListener hands the seccomp notify descriptor to the agent at
// listenerPath, with the container's state as the spec describes.
func sendListener(sc *specs.LinuxSeccomp, cfg *initConfig, fd int) error {
	state := specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      cfg.HostPid,
		Metadata: sc.ListenerMetadata,
		State: specs.State{
			Version: specs.Version, ID: cfg.ID, Status: specs.StateCreating,
			Pid: cfg.HostPid, Bundle: cfg.Bundle, Annotations: cfg.Spec.Annotations,
		},
	}
	b, err := json.Marshal(state)
	if err != nil {
		return err
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	if err := unix.Connect(sock, &unix.SockaddrUnix{Name: sc.ListenerPath}); err != nil {
		return err
	}
	return unix.Sendmsg(sock, b, unix.UnixRights(fd), nil, 0)
}

// setUser switches the thread to the process's user and groups, keeping
// capabilities across the switch (caps.Apply then sets them). Raw
// per-thread calls: only this thread execs.
func setUser(u specs.User) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	groups := make([]uint32, len(u.AdditionalGids))
	copy(groups, u.AdditionalGids)
	var gp unsafe.Pointer
	if len(groups) > 0 {
		gp = unsafe.Pointer(&groups[0])
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(gp), 0); errno != 0 && errno != unix.EPERM {
		return fmt.Errorf("process.user.additionalGids: %w", errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); errno != 0 {
		return fmt.Errorf("process.user.gid (%d): %w", u.GID, errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); errno != 0 {
		return fmt.Errorf("process.user.uid (%d): %w", u.UID, errno)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("reset keep capabilities: %w", err)
	}
	return nil
}

// closeOnExecFrom marks every descriptor from min up close-on-exec.
func closeOnExecFrom(min int) error {
	err := unix.CloseRange(uint(min), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Kernels before 5.11: one by one, from /proc.
	ents, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close_range: %v; list descriptors: %w", err, rerr)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= min {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
