package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/runtime/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ErrNotRunning is returned when an operation needs a live container.
var ErrNotRunning = errors.New("container is not running")

// Start lets a created container's init exec its program, and returns once
// it has (or has failed to).
func (c *Container) Start() error {
	switch st := c.Status(); st {
	case StatusCreated:
	case StatusStopped:
		return fmt.Errorf("cannot start container %s: it has stopped", c.s.ID)
	default:
		return fmt.Errorf("cannot start container %s: it is %s, not created", c.s.ID, st)
	}
	// Open the status pipe first, so its news cannot be missed.
	status, err := os.OpenFile(filepath.Join(c.dir, statusFifo), os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open status pipe: %w", err)
	}
	defer status.Close()
	fifo, err := os.OpenFile(filepath.Join(c.dir, execFifo), os.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("cannot start container %s: its init has exited", c.s.ID)
		}
		return err
	}
	_, err = fifo.Write([]byte{0})
	fifo.Close()
	if err != nil {
		return fmt.Errorf("signal start: %w", err)
	}
	// The container counts as started from here, even if the exec fails.
	os.Remove(filepath.Join(c.dir, execFifo))
	out, err := readUntilHangup(status, c.s.Pid)
	os.Remove(filepath.Join(c.dir, statusFifo))
	if err != nil {
		return err
	}
	if len(out) == 0 {
		return fmt.Errorf("container %s: init exited before it could exec its program", c.s.ID)
	}
	if len(out) > 1 || out[0] != 0 {
		msg := strings.TrimPrefix(strings.TrimLeft(string(out), "\x00"), "error: ")
		return fmt.Errorf("container %s: %s", c.s.ID, msg)
	}
	c.poststart()
	return nil
}

// poststart runs the poststart hooks; the spec makes their failures
// warnings.
func (c *Container) poststart() {
	if len(c.s.Poststart) > 0 {
		if err := runHooks("poststart", c.s.Poststart, c.hookState(StatusRunning)); err != nil {
			c.rt.log().Warn(err.Error(), "id", c.s.ID)
		}
	}
}

// readUntilHangup collects what the init writes to the status pipe until its
// descriptor closes (at exec, or when it dies).
func readUntilHangup(f *os.File, pid int) ([]byte, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		pidfd = -1
	} else {
		defer unix.Close(pidfd)
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
		if pidfd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(pidfd), Events: unix.POLLIN})
		}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return out, err
		}
		drained := false
		for {
			n, err := unix.Read(int(f.Fd()), buf)
			if n > 0 {
				out = append(out, buf[:n]...)
				continue
			}
			if err == nil || errors.Is(err, unix.EAGAIN) {
				drained = err == nil // n == 0: no writers left
				break
			}
			return out, err
		}
		if drained || fds[0].Revents&unix.POLLHUP != 0 {
			return out, nil
		}
		if len(fds) > 1 && fds[1].Revents != 0 {
			// The process exited; whatever it wrote is in the pipe.
			for {
				n, _ := unix.Read(int(f.Fd()), buf)
				if n <= 0 {
					return out, nil
				}
				out = append(out, buf[:n]...)
			}
		}
	}
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup.
func (c *Container) Kill(sig unix.Signal, all bool) error {
	if all {
		cg, err := c.cgroup()
		if err != nil {
			return err
		}
		return signalAll(cg, sig)
	}
	// Never kill(2) with a PID that is not the init's: 0 (a container
	// still being created) would signal the caller's process group.
	if c.Status() == StatusStopped || !c.initAlive() {
		return fmt.Errorf("container %s: %w", c.s.ID, ErrNotRunning)
	}
	if err := unix.Kill(c.s.Pid, sig); err != nil {
		return fmt.Errorf("signal init of %s: %w", c.s.ID, err)
	}
	return nil
}

// signalAll signals every process in a cgroup. For SIGKILL the cgroup is
// frozen meanwhile, so that nothing forks past the signal.
func signalAll(cg cgroups.Manager, sig unix.Signal) error {
	if sig == unix.SIGKILL {
		if err := cg.Freeze(true); err == nil {
			defer cg.Freeze(false)
		}
	}
	pids, err := cg.Pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal %d: %w", pid, err)
		}
	}
	return nil
}

// Delete removes a stopped or created container; force kills a running one
// first.
func (c *Container) Delete(force bool) error {
	st := ""
	if c.s.Creating {
		// Hold off a create that is at work (it holds the lock), and
		// see what one that has just finished left.
		lock, err := lockDirWait(c.dir)
		switch {
		case err == nil:
			defer lock.Close()
			if err := c.reload(); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("container %s: %w", c.s.ID, ErrNotExist)
				}
				return err
			}
			if c.s.Creating {
				st = StatusStopped // its create died
			}
		case !errors.Is(err, ErrCreating):
			return err
		case !force:
			return fmt.Errorf("cannot delete container %s: it is being created (--force kills it)", c.s.ID)
		default:
			st = StatusCreating
		}
	}
	if st == "" {
		st = c.Status()
	}
	switch st {
	case StatusStopped, StatusCreated:
	default:
		if !force {
			return fmt.Errorf("cannot delete container %s that is %s: stop it first or use --force", c.s.ID, st)
		}
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	if st != StatusStopped && c.s.Pid > 0 {
		_ = unix.Kill(c.s.Pid, unix.SIGKILL)
		if st == StatusPaused {
			// v1's freezer holds even a killed process until
			// it thaws.
			_ = cg.Freeze(false)
		}
	}
	if c.initAlive() {
		if err := waitExit(c.s.Pid, 10*time.Second); err != nil {
			return err
		}
	}
	// Without a PID namespace of their own, the init's children outlive
	// it; the cgroup cannot go before they do.
	if err := killCgroup(cg); err != nil {
		return err
	}
	if err := cg.Destroy(); err != nil {
		return err
	}
	if c.s.RootMount != nil {
		if err := unmountRoot(c.s.Rootfs, *c.s.RootMount); err != nil {
			return err
		}
	}
	if len(c.s.Poststop) > 0 {
		if err := runHooks("poststop", c.s.Poststop, c.hookState(StatusStopped)); err != nil {
			c.rt.log().Warn(err.Error(), "id", c.s.ID)
		}
	}
	return os.RemoveAll(c.dir)
}

func killCgroup(cg cgroups.Manager) error {
	// Where it can, the kernel kills everything at once, with no race
	// against fork; the loop below does the rest, and is the way on v1.
	_ = cg.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := cg.Pids()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v did not die", pids)
		}
		_ = signalAll(cg, unix.SIGKILL)
		time.Sleep(5 * time.Millisecond)
	}
}

// Pause freezes every process of a running container.
func (c *Container) Pause() error {
	if st := c.Status(); st != StatusRunning {
		return fmt.Errorf("cannot pause container %s: it is %s", c.s.ID, st)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Freeze(true)
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if st := c.Status(); st != StatusPaused {
		return fmt.Errorf("cannot resume container %s: it is %s, not paused", c.s.ID, st)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Freeze(false)
}

// Update changes the resource limits of a live container and records them.
func (c *Container) Update(r *specs.LinuxResources) error {
	if st := c.Status(); st == StatusStopped {
		return fmt.Errorf("cannot update container %s: it has stopped", c.s.ID)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	spec, err := c.Spec()
	if err != nil {
		return err
	}
	if err := cg.Set(r); err != nil {
		return err
	}
	mergeResources(spec, r)
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return c.saveConfig(b)
}

// mergeResources records the fields update set.
func mergeResources(spec *specs.Spec, r *specs.LinuxResources) {
	if spec.Linux.Resources == nil {
		spec.Linux.Resources = &specs.LinuxResources{}
	}
	cur := spec.Linux.Resources
	if r.Memory != nil {
		cur.Memory = r.Memory
	}
	if r.CPU != nil {
		cur.CPU = r.CPU
	}
	if r.Pids != nil {
		cur.Pids = r.Pids
	}
	if r.BlockIO != nil {
		cur.BlockIO = r.BlockIO
	}
	if len(r.Unified) > 0 {
		cur.Unified = r.Unified
	}
}

// Pids lists the host PIDs of the container's processes.
func (c *Container) Pids() ([]int, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}

// Stats reads the container's cgroup counters.
func (c *Container) Stats() (*cgroups.Stats, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Stats()
}
