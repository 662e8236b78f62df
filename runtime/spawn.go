package runtime

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"

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

// spawnOpts describe a process to start in a container's namespaces.
type spawnOpts struct {
	// bootstrap, if set, is sent at once; otherwise the caller sends it
	// later (spawned.bootstrap), having let the process start meanwhile.
	bootstrap *nsenter.Bootstrap
	// cgroup is joined before anything runs in the namespaces: the
	// process is cloned into its v2 cgroup and moves itself into the v1
	// ones (cgroups.JoinSpec). A process started before its cgroup
	// exists (cgroup nil) can join v1 hierarchies only.
	cgroup cgroups.Manager
	// Standard descriptors; nil means /dev/null.
	stdin  *os.File
	stdout *os.File
	stderr *os.File
	// Inherited at 3, 4, ... in order: the preserved descriptors first,
	// then the runtime's socket to the process, then the fifos (their
	// numbers are in fdExecFifo and fdStatusFifo).
	preserved []*os.File
	execFifo  *os.File
	status    *os.File
}

// spawned is a started process, in its namespaces, waiting in the nsenter
// constructor for its last instructions.
type spawned struct {
	pid  int
	sync *os.File
	// child is the process this one started, while it is ours to reap:
	// the container process itself, or the one that forked it into a new
	// PID namespace. 0 once reaped or handed on.
	child int
	// Descriptor numbers of the fifos in the process, or -1.
	fdExecFifo, fdStatusFifo int
	// first is the process started; maps for a new user namespace are
	// written for it.
	first int
	// cgroup2 is the directory the process was cloned into, or "".
	cgroup2          string
	uidMaps, gidMaps []specs.LinuxIDMapping
}

// kill stops a spawn that failed half-way and reaps what can be reaped.
func (s *spawned) kill() {
	if s.pid > 0 {
		_ = unix.Kill(s.pid, unix.SIGKILL)
	}
	if s.child > 0 {
		_ = unix.Kill(s.child, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(s.child, &ws, 0, nil)
		s.child = 0
	}
	if s.sync != nil {
		s.sync.Close()
	}
}

// spawn starts the runtime's own binary so that its nsenter constructor puts
// it into its cgroups and the namespaces of o.bootstrap (see namespaces). The binary is
// started from a read-only, detached mount of itself, so that nothing in
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

	// The standard descriptors, then the preserved ones, then ours, at the
	// numbers the process will know them by.
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		parent.Close()
		return nil, err
	}
	defer devNull.Close()
	std := func(f *os.File) uintptr {
		if f == nil {
			return devNull.Fd()
		}
		return f.Fd()
	}
	files := []uintptr{std(o.stdin), std(o.stdout), std(o.stderr)}
	for _, f := range o.preserved {
		files = append(files, f.Fd())
	}
	add := func(f *os.File) int {
		if f == nil {
			return -1
		}
		files = append(files, f.Fd())
		return len(files) - 1
	}
	s := &spawned{sync: parent}
	syncFD := add(child)
	s.fdExecFifo = add(o.execFifo)
	s.fdStatusFifo = add(o.status)
	env := []string{
		nsenter.EnvFD + "=" + strconv.Itoa(syncFD),
		nsenter.EnvFDs + "=" + strconv.Itoa(len(files)),
	}
	// The child execs the binary by descriptor after the inherited files
	// are moved into place: keep it above all of them.
	exeFD, err := unix.FcntlInt(exe.Fd(), unix.F_DUPFD_CLOEXEC, len(files)+16)
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("dup runtime binary: %w", err)
	}
	defer unix.Close(exeFD)
	path := "/proc/self/fd/" + strconv.Itoa(exeFD)

	var cgroup2 string
	if o.cgroup != nil {
		cgroup2 = o.cgroup.Join().Cgroup2
	}
	child1, err := startInCgroup(path, env, files, cgroup2)
	if err != nil {
		parent.Close()
		return nil, err
	}
	s.child = child1
	s.cgroup2 = cgroup2
	child.Close()
	s.first = child1
	if o.bootstrap != nil {
		if err := s.bootstrap(o.bootstrap, o.cgroup); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// bootstrap sends the process its namespaces and the v1 cgroups to move
// into (the v2 one it was cloned into, if any).
func (s *spawned) bootstrap(b *nsenter.Bootstrap, cg cgroups.Manager) error {
	if cg != nil {
		j := cg.Join()
		b.CgroupTasks = j.Tasks
		if j.Cgroup2 != "" && j.Cgroup2 != s.cgroup2 {
			// Started before its cgroup existed, on a host with a
			// cgroup2 mount in an unusual place.
			if err := cgroups.Enter(j.Cgroup2, s.first); err != nil {
				s.kill()
				return err
			}
		}
	}
	if err := nsenter.Send(s.sync, b); err != nil {
		s.kill()
		return err
	}
	return nil
}

// namespaces waits until the process is in its namespaces and knows its
// final PID (a new PID namespace takes a fork); the caller may work in
// between, as the process sets up.
func (s *spawned) namespaces() error {
	writeMaps := func() error {
		return writeIDMaps(s.first, s.uidMaps, s.gidMaps)
	}
	pid, err := nsenter.Await(s.sync, writeMaps)
	if err != nil {
		s.kill()
		if errors.Is(err, nsenter.ErrEarlyExit) {
			return fmt.Errorf("container process: %w", err)
		}
		return fmt.Errorf("namespaces: %w", err)
	}
	s.pid = pid
	if pid != s.first {
		// The first process only forked the one inside the new PID
		// namespace and exits; reap it.
		var ws unix.WaitStatus
		if _, err := unix.Wait4(s.first, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
			s.kill()
			return fmt.Errorf("namespace setup: process exited with %v %v", ws, err)
		}
		s.child = 0
	}
	return nil
}

// finalize sends the process its last instructions (with its terminal, if
// it has one) and waits until it has applied what it does before waiting
// for start (create) or exec'ing (exec).
func (s *spawned) finalize(a *nsenter.Attrs, tty *os.File, agent *seccompAgent) error {
	fd := -1
	if tty != nil {
		fd = int(tty.Fd())
	}
	if err := nsenter.SendMsgFD(s.sync, nsenter.MsgFinalize, a.Bytes(), fd); err != nil {
		return fmt.Errorf("send to container process: %w", err)
	}
	for {
		typ, data, f, err := nsenter.RecvMsgFD(s.sync)
		if err != nil {
			if errors.Is(err, nsenter.ErrEarlyExit) {
				return errors.New("container process exited during setup")
			}
			return err
		}
		switch {
		case typ == nsenter.MsgReady:
			return nil
		case typ == nsenter.MsgError:
			return nsenter.MsgErr(data)
		case typ == nsenter.MsgListener && agent != nil && f != nil:
			err := agent.send(f)
			f.Close()
			if err != nil {
				_ = nsenter.WriteMsg(s.sync, nsenter.MsgError, nil)
				return err
			}
			if err := nsenter.WriteMsg(s.sync, nsenter.MsgOK, nil); err != nil {
				return err
			}
		default:
			if f != nil {
				f.Close()
			}
			return fmt.Errorf("unexpected message type %d from the container process", typ)
		}
	}
}

// waitExec waits until the process has exec'd its program (its end of the
// socket closes on exec) or reports why it could not.
func (s *spawned) waitExec() error {
	typ, data, err := nsenter.ReadMsg(s.sync)
	switch {
	case err == nil && typ == nsenter.MsgError:
		return nsenter.MsgErr(data)
	case err == nil:
		return fmt.Errorf("unexpected message type %d", typ)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil
	}
	return err
}

// startInCgroup starts the binary at path directly inside the cgroup2
// directory dir, if one is given: clone3 with CLONE_INTO_CGROUP, so the
// process never has to be moved. Kernels without it (before 5.7) get a move
// right after the start, which the process cannot outrun: it waits for its
// bootstrap first. syscall.ForkExec, not os/exec: a container start needs
// none of what os/exec adds, including a test fork to check pidfd support.
func startInCgroup(path string, env []string, files []uintptr, dir string) (int, error) {
	attr := &syscall.ProcAttr{Env: env, Files: files, Sys: &syscall.SysProcAttr{}}
	argv := []string{"berth", "init"}
	if dir == "" {
		pid, err := syscall.ForkExec(path, argv, attr)
		if err != nil {
			return 0, fmt.Errorf("start container process: %w", err)
		}
		return pid, nil
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(fd)
	attr.Sys = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	pid, err := syscall.ForkExec(path, argv, attr)
	if err == nil {
		return pid, nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EOPNOTSUPP) {
		return 0, fmt.Errorf("start container process in cgroup %s: %w", dir, err)
	}
	attr.Sys = &syscall.SysProcAttr{}
	if pid, err = syscall.ForkExec(path, argv, attr); err != nil {
		return 0, fmt.Errorf("start container process: %w", err)
	}
	if err := cgroups.Enter(dir, pid); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
		return 0, fmt.Errorf("join cgroup: %w", err)
	}
	return pid, nil
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
