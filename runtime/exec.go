package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/berth-dev/berth/runtime/caps"
	"github.com/berth-dev/berth/runtime/config"
	"github.com/berth-dev/berth/runtime/console"
	"github.com/berth-dev/berth/runtime/nsenter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecOpts are exec's options beyond the process.
type ExecOpts struct {
	ConsoleSocket string
	Console       *os.File
	PidFile       string
	PreserveFDs   int
	Stdin         *os.File
	Stdout        *os.File
	Stderr        *os.File
}

// Process is a process started in a container.
type Process struct {
	Pid int
	sp  *spawned
}

// Exec starts p inside a live container: it joins the container's cgroup
// before anything runs in its namespaces, then every namespace the
// container has, and gets the container's seccomp filter, with p's user,
// capabilities and limits. It returns once p's program is executing.
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
		return nil, errors.New("process.terminal is true, so a console socket (--console-socket) is needed to hand the terminal to")
	}
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	spec := c.s.Spec
	var b nsenter.Bootstrap
	var cgNS *os.File
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.CgroupNamespace {
			f, err := os.Open(fmt.Sprintf("/proc/%d/ns/cgroup", c.s.Pid))
			if err != nil {
				return nil, fmt.Errorf("container's cgroup namespace: %w", err)
			}
			defer f.Close()
			cgNS = f
			continue
		}
		b.Joins = append(b.Joins, nsenter.Join{
			Type: nsFlags[ns.Type],
			Path: fmt.Sprintf("/proc/%d/ns/%s", c.s.Pid, procNsName[ns.Type]),
		})
	}
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
	sp, err := c.rt.spawn(&spawnOpts{
		bootstrap: b,
		cgroup:    cg,
		config: initConfig{
			Mode:          "exec",
			ID:            c.s.ID,
			Spec:          spec,
			Process:       p,
			Rootfs:        c.s.Rootfs,
			Bundle:        c.s.Bundle,
			CgroupVersion: c.s.CgroupV,
		},
		cgroupNS:  cgNS,
		stdin:     o.Stdin,
		stdout:    o.Stdout,
		stderr:    o.Stderr,
		preserved: preserved,
		console:   consoleF,
	})
	if err != nil {
		return nil, err
	}
	defer sp.sync.Close()
	// The process reports that it is about to exec, then its end of the
	// socket closes on exec; an error before the close means it failed.
	execing := false
	for {
		m, err := recvMsg(sp.sync)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if execing {
					break
				}
				sp.kill()
				return nil, errors.New("exec'd process exited during setup")
			}
			sp.kill()
			return nil, err
		}
		switch m.Type {
		case msgExec:
			execing = true
			continue
		case msgError:
			sp.kill()
			return nil, errors.New(m.Error)
		default:
			sp.kill()
			return nil, fmt.Errorf("exec'd process sent unexpected %q", m.Type)
		}
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, sp.pid); err != nil {
			return nil, err
		}
	}
	return &Process{Pid: sp.pid, sp: sp}, nil
}
