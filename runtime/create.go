package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
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
	Stdin       *os.File
	Stdout      *os.File
	Stderr      *os.File
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

// bootstrapFor lists the namespaces the nsenter constructor sets up. The
// cgroup namespace is left to the Go init (see initConfig.CgroupNS): it
// must come after the cgroup join, which the parent does once it knows the
// final PID, while the process boots.
func bootstrapFor(spec *specs.Spec) nsenter.Bootstrap {
	var b nsenter.Bootstrap
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.CgroupNamespace {
			continue
		}
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
// cgroup, and processes; the mounts lived in the dead init's namespace.
func (r *Runtime) Create(id string, o *CreateOpts) (c *Container, err error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, err
	}
	spec, warnings, err := config.Load(bundle)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		r.log().Warn(w, "id", id)
	}
	if cgroups.IsSystemdPath(spec.Linux.CgroupsPath) {
		if r.SystemdCgroup {
			return nil, fmt.Errorf("linux.cgroupsPath %q: %w", spec.Linux.CgroupsPath, cgroups.ErrSystemd)
		}
		return nil, fmt.Errorf("linux.cgroupsPath %q has systemd's slice:prefix:name form, which needs --systemd-cgroup and a systemd cgroup driver; give a path such as /berth/%s", spec.Linux.CgroupsPath, id)
	}
	if err := caps.CheckAvailable(spec.Process.Capabilities); err != nil {
		return nil, err
	}
	if spec.Process.Terminal && o.ConsoleSocket == "" && o.Console == nil {
		return nil, errors.New("process.terminal is true, so a console socket (--console-socket) is needed to hand the terminal to")
	}
	if !spec.Process.Terminal && o.ConsoleSocket != "" {
		return nil, errors.New("--console-socket was given, but process.terminal is false")
	}
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		bind := m.Type == "bind" || parseMountOptions(m.Options).bind
		if bind && m.Source != "" && !filepath.IsAbs(m.Source) {
			m.Source = filepath.Join(bundle, m.Source)
		}
	}

	if err := os.MkdirAll(r.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create root %s: %w", r.Root, err)
	}
	dir := filepath.Join(r.Root, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if os.IsExist(err) {
			return nil, fmt.Errorf("container %s: %w", id, ErrExist)
		}
		return nil, err
	}
	var cg cgroups.Manager
	var sp *spawned
	defer func() {
		if err == nil {
			return
		}
		if sp != nil {
			sp.kill()
			_ = waitExit(sp.pid, 5*time.Second)
		}
		if !config.HasNamespace(spec, specs.MountNamespace) {
			if uerr := unmountUnder(spec.Root.Path); uerr != nil {
				r.log().Warn("unmount after failed create", "id", id, "err", uerr)
			}
		}
		if cg != nil {
			if derr := cg.Destroy(); derr != nil {
				r.log().Warn("remove cgroup after failed create", "id", id, "err", derr)
			}
		}
		os.RemoveAll(dir)
	}()

	cg, err = cgroups.New(cgroups.Options{Path: spec.Linux.CgroupsPath, Name: id})
	if err != nil {
		return nil, fmt.Errorf("linux.cgroupsPath: %w", err)
	}
	if err = cg.Create(); err != nil {
		return nil, fmt.Errorf("linux.cgroupsPath: %w", err)
	}
	if err = cg.Set(spec.Linux.Resources); err != nil {
		return nil, err
	}

	execF, err := mkfifo(filepath.Join(dir, execFifo))
	if err != nil {
		return nil, err
	}
	defer execF.Close()
	statusF, err := mkfifo(filepath.Join(dir, statusFifo))
	if err != nil {
		return nil, err
	}
	defer statusF.Close()
	consoleF := o.Console
	if o.ConsoleSocket != "" {
		consoleF, err = console.Dial(o.ConsoleSocket)
		if err != nil {
			return nil, err
		}
		defer consoleF.Close()
	}
	preserved, err := preservedFiles(o.PreserveFDs)
	if err != nil {
		return nil, err
	}
	cgNS, err := openCgroupNS(spec)
	if err != nil {
		return nil, err
	}
	if cgNS != nil {
		defer cgNS.Close()
	}

	c = &Container{rt: r, dir: dir, s: saved{
		ID:          id,
		Bundle:      bundle,
		Rootfs:      spec.Root.Path,
		Created:     time.Now().UTC(),
		Owner:       ownerName(),
		Spec:        spec,
		CgroupV:     cg.Version(),
		CgroupPaths: cg.Paths(),
	}}
	so := &spawnOpts{
		bootstrap: bootstrapFor(spec),
		cgroup:    cg,
		uidMaps:   spec.Linux.UIDMappings,
		gidMaps:   spec.Linux.GIDMappings,
		config: initConfig{
			Mode:          "create",
			ID:            id,
			Spec:          spec,
			Process:       spec.Process,
			Rootfs:        spec.Root.Path,
			Bundle:        bundle,
			NoPivot:       o.NoPivot,
			NoNewKeyring:  o.NoNewKeyring,
			CgroupVersion: cg.Version(),
			CgroupPaths:   cg.Paths(),
			NewCgroupNS:   config.NewNamespace(spec, specs.CgroupNamespace),
		},
		stdin:     o.Stdin,
		stdout:    o.Stdout,
		stderr:    o.Stderr,
		preserved: preserved,
		cgroupNS:  cgNS,
		execFifo:  execF,
		status:    statusF,
		console:   consoleF,
	}
	sp, err = r.spawn(so)
	if err != nil {
		return nil, err
	}
	defer sp.sync.Close()
	c.s.Pid = sp.pid
	if _, c.s.PidStartTime, err = procStat(sp.pid); err != nil {
		return nil, fmt.Errorf("container process: %w", err)
	}
	if err = c.driveCreate(sp); err != nil {
		return nil, err
	}
	if err = c.save(); err != nil {
		return nil, fmt.Errorf("save state: %w", err)
	}
	if o.PidFile != "" {
		if err = writePidFile(o.PidFile, sp.pid); err != nil {
			return nil, err
		}
	}
	// The init is no child of ours to reap once we exit; a caller that
	// stays (run) waits for it as a subreaper.
	sp.cmd = nil
	return c, nil
}

// driveCreate answers the init's requests until it reports it is ready.
func (c *Container) driveCreate(sp *spawned) error {
	spec := c.s.Spec
	for {
		m, err := recvMsg(sp.sync)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return errors.New("container init exited during setup")
			}
			return fmt.Errorf("container init: %w", err)
		}
		switch m.Type {
		case msgError:
			return errors.New(m.Error)
		case msgHooks:
			if spec.Hooks != nil {
				state := c.hookState(StatusCreating)
				//nolint:staticcheck // prestart is deprecated but still run
				if err := runHooks("prestart", spec.Hooks.Prestart, state); err != nil {
					return err
				}
				if err := runHooks("createRuntime", spec.Hooks.CreateRuntime, state); err != nil {
					return err
				}
			}
			if err := sendMsg(sp.sync, message{Type: msgHooksDone}); err != nil {
				return err
			}
		case msgReady:
			return nil
		default:
			return fmt.Errorf("container init sent unexpected %q", m.Type)
		}
	}
}

// openCgroupNS opens the cgroup namespace the config names by path, if any.
func openCgroupNS(spec *specs.Spec) (*os.File, error) {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.CgroupNamespace && ns.Path != "" {
			f, err := os.Open(ns.Path)
			if err != nil {
				return nil, fmt.Errorf("linux.namespaces: cgroup namespace: %w", err)
			}
			return f, nil
		}
	}
	return nil, nil
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
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("--preserve-fds %d: descriptor %d is not open", n, fd)
		}
		out = append(out, os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd)))
	}
	return out, nil
}

func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// ownerName is the caller's user name, from the host's /etc/passwd (not
// NSS, whose modules would cost every create a few milliseconds).
func ownerName() string {
	name, _ := passwdEntry("/etc/passwd", uint32(os.Geteuid()))
	return name
}
