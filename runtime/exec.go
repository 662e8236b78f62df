package runtime

import (
	"fmt"
	"os"
	"strconv"

	"github.com/berth-dev/berth/runtime/caps"
	"github.com/berth-dev/berth/runtime/config"
	"github.com/berth-dev/berth/runtime/nsenter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ExecOpts are exec's options beyond the process.
type ExecOpts struct {
	ConsoleSocket string
	// Console, if set, is a connected socket to send the terminal to.
	Console     *os.File
	PidFile     string
	PreserveFDs int
	Stdin       *os.File
	Stdout      *os.File
	Stderr      *os.File
}

// Process is a process started in a container.
type Process struct {
	Pid int
}

// Exec starts p inside a live container: it is in the container's cgroup
// before it joins anything, then in every namespace the container has,
// with the container's seccomp filter and p's user, capabilities and
// limits. It returns once p's program is executing.
func (c *Container) Exec(p *specs.Process, o *ExecOpts) (*Process, error) {
	if st := c.Status(); st != StatusRunning && st != StatusCreated {
		return nil, fmt.Errorf("cannot exec in container %s: it is %s", c.s.ID, st)
	}
	if err := config.ValidateExecProcess(p); err != nil {
		return nil, err
	}
	if err := caps.CheckAvailable(p.Capabilities); err != nil {
		return nil, err
	}
	if p.Terminal && o.ConsoleSocket == "" && o.Console == nil {
		return nil, fmt.Errorf("process.terminal is true, so a console socket (--console-socket) is needed to hand the terminal to")
	}
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	spec, err := c.Spec()
	if err != nil {
		return nil, err
	}
	var b nsenter.Bootstrap
	for _, ns := range spec.Linux.Namespaces {
		b.Joins = append(b.Joins, nsenter.Join{
			Type: nsFlags[ns.Type],
			Path: fmt.Sprintf("/proc/%d/ns/%s", c.s.Pid, procNsName[ns.Type]),
		})
	}
	// The container's root as its init sees it: what the program's path
	// and terminal are looked up in.
	rootPath, chroot := "/proc/"+strconv.Itoa(c.s.Pid)+"/root", ""
	if !config.HasNamespace(spec, specs.MountNamespace) {
		rootPath, chroot = c.s.Rootfs, c.s.Rootfs
	}
	root, err := os.OpenFile(rootPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("container's root: %w", err)
	}
	defer root.Close()
	path, err := lookPath(root, p)
	if err != nil {
		return nil, err
	}
	_, home := passwdEntry(root, p.User.UID)
	var master, slave *os.File
	if p.Terminal {
		if master, slave, err = openPty(root, p.ConsoleSize); err != nil {
			return nil, err
		}
		defer master.Close()
		defer slave.Close()
	}
	preserved, err := preservedFiles(o.PreserveFDs)
	if err != nil {
		return nil, err
	}
	// The terminal goes out last among what can fail here: its receiver
	// must not get one for a process that never starts.
	if master != nil {
		if err := handOverTerminal(master, o.ConsoleSocket, o.Console); err != nil {
			return nil, err
		}
	}
	sp, err := c.rt.spawn(&spawnOpts{
		bootstrap: &b,
		cgroup:    cg,
		stdin:     o.Stdin,
		stdout:    o.Stdout,
		stderr:    o.Stderr,
		preserved: preserved,
	})
	if err != nil {
		return nil, err
	}
	defer sp.sync.Close()
	if err := sp.namespaces(); err != nil {
		return nil, err
	}
	// The namespaces and root were found through the init's PID. If the
	// init is still the same process now, it was all along, and they are
	// the container's; if not, its PID may have gone to another process.
	if !c.initAlive() {
		sp.kill()
		return nil, fmt.Errorf("cannot exec in container %s: its init exited", c.s.ID)
	}
	attrs, agent, err := finalizeAttrs(spec, p, &finalizeOpts{
		container:  c.ociState(StatusRunning),
		pid:        sp.pid,
		path:       path,
		home:       home,
		tty:        slave != nil,
		preserve:   len(preserved),
		execFifo:   -1,
		statusFifo: -1,
		chroot:     chroot,
	})
	if err != nil {
		sp.kill()
		return nil, err
	}
	if err := sp.finalize(attrs, slave, agent); err != nil {
		sp.kill()
		return nil, err
	}
	if err := sp.waitExec(); err != nil {
		sp.kill()
		return nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, sp.pid); err != nil {
			sp.kill()
			return nil, err
		}
	}
	return &Process{Pid: sp.pid}, nil
}
