package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/nsenter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Runtime holds the settings every command shares.
type Runtime struct {
	// Root is where container state directories live.
	Root string
	// SystemdCgroup is runc's --systemd-cgroup: Berth accepts it, and
	// refuses only configs whose cgroupsPath needs systemd.
	SystemdCgroup bool
	Log           *slog.Logger
}

func (r *Runtime) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// initConfig is what the parent sends the process it starts, once that
// process is in its namespaces.
type initConfig struct {
	Mode    string         `json:"mode"` // "create" or "exec"
	ID      string         `json:"id"`
	Spec    *specs.Spec    `json:"spec"`
	Process *specs.Process `json:"process"`
	Rootfs  string         `json:"rootfs,omitempty"`
	Bundle  string         `json:"bundle,omitempty"`
	NoPivot bool           `json:"noPivot,omitempty"`
	// NoNewKeyring keeps the caller's session keyring instead of giving the
	// container one of its own.
	NoNewKeyring bool `json:"noNewKeyring,omitempty"`
	// Descriptors the process inherits, or -1.
	ExecFifo    int `json:"execFifo"`
	StatusFifo  int `json:"statusFifo"`
	Console     int `json:"console"`
	PreserveFDs int `json:"preserveFds"`
	// HostPid is the process's PID as the host sees it, for the state
	// hooks read (inside a PID namespace getpid says 1).
	HostPid int `json:"hostPid"`
	// CgroupPaths lets the init bind-mount the container's own cgroups.
	CgroupVersion int               `json:"cgroupVersion"`
	CgroupPaths   map[string]string `json:"cgroupPaths,omitempty"`
	// NewCgroupNS asks for a new cgroup namespace; CgroupNSFD is one to
	// join (opened by the parent: a path to it may not resolve once the
	// process is in the container's mount namespace), or -1.
	NewCgroupNS bool `json:"newCgroupNS,omitempty"`
	CgroupNSFD  int  `json:"cgroupNSFd"`
}

// message is one step of the Go-level conversation between parent and init.
type message struct {
	Type  string `json:"type"`
	Error string `json:"error,omitempty"`
}

const (
	msgHooks     = "hooks"      // init: run prestart and createRuntime now
	msgHooksDone = "hooks-done" // parent: they ran
	msgReady     = "ready"      // init (create): set up, waiting for start
	msgExec      = "exec"       // init (exec): about to exec
	msgError     = "error"      // init: failed, with the reason
)

func sendMsg(w io.Writer, m message) error {
	b, _ := json.Marshal(m)
	return nsenter.WriteMsg(w, nsenter.MsgJSON, b)
}

func recvMsg(r io.Reader) (message, error) {
	var m message
	typ, data, err := nsenter.ReadMsg(r)
	if err != nil {
		return m, err
	}
	if typ == nsenter.MsgError {
		return message{Type: msgError, Error: string(data)}, nil
	}
	if typ != nsenter.MsgJSON {
		return m, fmt.Errorf("unexpected message type %d", typ)
	}
	return m, json.Unmarshal(data, &m)
}

// spawnOpts describe a process to start in a container's namespaces.
type spawnOpts struct {
	bootstrap nsenter.Bootstrap
	// cgroup is joined by the final process once the constructor reports
	// it, before the config that lets it go on is sent.
	cgroup  cgroups.Manager
	uidMaps []specs.LinuxIDMapping
	gidMaps []specs.LinuxIDMapping
	config  initConfig
	// Standard descriptors; nil means /dev/null.
	stdin  *os.File
	stdout *os.File
	stderr *os.File
	// extra are inherited at 3, 4, ... in order: the preserved descriptors
	// first, then the runtime's own (their numbers go into config).
	preserved []*os.File
	cgroupNS  *os.File
	execFifo  *os.File
	status    *os.File
	console   *os.File
}

// spawned is a started process, in its namespaces, with its config sent.
type spawned struct {
	pid  int
	sync *os.File
	cmd  *exec.Cmd
}

// kill stops a spawn that failed half-way and reaps what can be reaped.
func (s *spawned) kill() {
	if s.pid > 0 {
		_ = unix.Kill(s.pid, unix.SIGKILL)
	}
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	if s.sync != nil {
		s.sync.Close()
	}
}

// spawn starts the runtime's own binary so that its nsenter constructor puts
// it into the namespaces of o.bootstrap, then sends it o.config. The binary
// is started from a read-only, detached mount of itself, so that nothing in
// the container can write to it through /proc/PID/exe.
func (r *Runtime) spawn(o *spawnOpts) (*spawned, error) {
	exe, err := sealedSelf()
	if err != nil {
		return nil, err
	}
	defer exe.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "sync-parent")
	child := os.NewFile(uintptr(fds[1]), "sync-child")
	defer child.Close()

	cmd := &exec.Cmd{Args: []string{"berth", "init"}}
	// An untyped nil, not a nil *os.File, is what os/exec reads as none.
	if o.stdin != nil {
		cmd.Stdin = o.stdin
	}
	if o.stdout != nil {
		cmd.Stdout = o.stdout
	}
	if o.stderr != nil {
		cmd.Stderr = o.stderr
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, o.preserved...)
	next := 3 + len(cmd.ExtraFiles)
	add := func(f *os.File) int {
		if f == nil {
			return -1
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		next++
		return next - 1
	}
	syncFD := add(child)
	o.config.ExecFifo = add(o.execFifo)
	o.config.StatusFifo = add(o.status)
	o.config.Console = add(o.console)
	o.config.CgroupNSFD = add(o.cgroupNS)
	o.config.PreserveFDs = len(o.preserved)
	cmd.Env = []string{
		nsenter.EnvFD + "=" + strconv.Itoa(syncFD),
		nsenter.EnvFDs + "=" + strconv.Itoa(next),
		// One P: the init is sequential, and a second only costs thread
		// wake-ups. A fixed value also keeps the Go runtime from reading
		// the container's cgroup files to choose one.
		"GOMAXPROCS=1",
	}
	// The child execs the binary by descriptor after the inherited files
	// are moved into place: keep it above all of them.
	exeFD, err := unix.FcntlInt(exe.Fd(), unix.F_DUPFD_CLOEXEC, next+16)
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("dup runtime binary: %w", err)
	}
	defer unix.Close(exeFD)
	cmd.Path = "/proc/self/fd/" + strconv.Itoa(exeFD)

	s := &spawned{cmd: cmd, sync: parent}
	if err := cmd.Start(); err != nil {
		parent.Close()
		return nil, fmt.Errorf("start container process: %w", err)
	}
	child.Close()
	writeMaps := func() error {
		return writeIDMaps(cmd.Process.Pid, o.uidMaps, o.gidMaps)
	}
	pid, err := nsenter.Drive(parent, &o.bootstrap, writeMaps)
	if err != nil {
		s.kill()
		if errors.Is(err, nsenter.ErrEarlyExit) {
			return nil, fmt.Errorf("container process: %w", err)
		}
		return nil, fmt.Errorf("namespaces: %w", err)
	}
	s.pid = pid
	// The process boots its Go runtime now, while the join (which costs
	// the kernel an RCU grace period) happens here; it waits for the
	// config below before it does anything.
	if o.cgroup != nil {
		if err := o.cgroup.Apply(pid); err != nil {
			s.kill()
			return nil, fmt.Errorf("join cgroup: %w", err)
		}
	}
	if pid != cmd.Process.Pid {
		// The first process only forked the one inside the new PID
		// namespace and exits; reap it.
		if err := cmd.Wait(); err != nil {
			s.kill()
			return nil, fmt.Errorf("namespace setup: %w", err)
		}
		s.cmd = nil
	}
	o.config.HostPid = pid
	b, err := json.Marshal(&o.config)
	if err != nil {
		s.kill()
		return nil, err
	}
	if err := nsenter.WriteMsg(parent, nsenter.MsgJSON, b); err != nil {
		s.kill()
		return nil, fmt.Errorf("send config to container process: %w", err)
	}
	return s, nil
}

// wait reaps the first process if it is the container process itself, so
// that a process that exits becomes no zombie of ours. It is only called by
// commands that stay to wait.
func (s *spawned) wait() (*os.ProcessState, error) {
	if s.cmd == nil {
		return nil, errors.New("process is not a child of this one")
	}
	err := s.cmd.Wait()
	return s.cmd.ProcessState, err
}

func writeIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	format := func(m []specs.LinuxIDMapping) string {
		var b strings.Builder
		for _, e := range m {
			fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
		}
		return b.String()
	}
	base := "/proc/" + strconv.Itoa(pid) + "/"
	if err := os.WriteFile(base+"uid_map", []byte(format(uids)), 0); err != nil {
		return fmt.Errorf("linux.uidMappings: %w", err)
	}
	if err := os.WriteFile(base+"gid_map", []byte(format(gids)), 0); err != nil {
		return fmt.Errorf("linux.gidMappings: %w", err)
	}
	return nil
}

// sealedSelf opens this binary on a detached read-only mount of its own. A
// process started from it that /proc/PID/exe points at cannot be written,
// whatever a container does with that link, and nothing is copied: the
// cost is two system calls, where a copy costs the binary's size for every
// container.
func sealedSelf() (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
		if err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err == nil {
			return os.NewFile(uintptr(fd), "berth"), nil
		}
		unix.Close(fd)
	}
	// Kernels before 5.12, or no CAP_SYS_ADMIN: a sealed copy in memory.
	return sealedCopy()
}

func sealedCopy() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("copy the runtime binary: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy the runtime binary: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the runtime binary: %w", err)
	}
	return f, nil
}
