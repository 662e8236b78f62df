// Package runtime is Berth's OCI runtime: it turns a bundle (a root
// filesystem and config.json) into an isolated process and manages it through
// the lifecycle the OCI Runtime Spec defines (create, start, state, kill,
// delete), plus runc's extensions (exec, pause, resume, update, ps, events).
//
// A container's state lives in a directory under the runtime's root; no
// process of Berth's stays behind once a command returns, so any number of
// berth processes (or a containerd shim calling berth-runc) can manage the
// same containers.
package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Status values, as the spec names them.
const (
	StatusCreating = "creating"
	StatusCreated  = "created"
	StatusRunning  = "running"
	StatusPaused   = "paused"
	StatusStopped  = "stopped"
)

const (
	stateFile  = "state.json"
	configFile = "config.json" // the bundle's config as it was at create
	execFifo   = "exec.fifo"
	statusFifo = "status.fifo"
)

// ErrNotExist is returned for an ID with no container.
var ErrNotExist = errors.New("container does not exist")

// ErrExist is returned by create for an ID already in use.
var ErrExist = errors.New("container already exists")

// saved is what a container's directory records at create, beside a copy
// of the config (read only by the commands that need it: encoding a whole
// spec is a good part of a create's CPU time).
type saved struct {
	ID           string            `json:"id"`
	Bundle       string            `json:"bundle"`
	Rootfs       string            `json:"rootfs"`
	Pid          int               `json:"pid"`
	PidStartTime uint64            `json:"pidStartTime"`
	Created      time.Time         `json:"created"`
	Owner        string            `json:"owner"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	CgroupV      int               `json:"cgroupVersion"`
	CgroupPaths  map[string]string `json:"cgroupPaths"`
	// Poststart and Poststop are the config's hooks that run after
	// create has returned: start and delete need no config for them.
	Poststart []specs.Hook `json:"poststart,omitempty"`
	Poststop  []specs.Hook `json:"poststop,omitempty"`
	// RootMount is the bind mount of the root made on the host for a
	// container without a mount namespace, which delete unmounts.
	RootMount *mountRef `json:"rootMount,omitempty"`
	// Creating is set until create has finished. While it runs, create
	// holds a lock on the directory; a create that died (killed, or the
	// machine went down) leaves the flag without the lock, and the
	// container counts as stopped, for delete to clean up.
	Creating bool `json:"creating,omitempty"`
}

// State is the OCI state of a container, with runc's extra fields.
type State struct {
	specs.State
	Rootfs  string    `json:"rootfs"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner"`
}

// Container is a handle on one container's saved state.
type Container struct {
	rt   *Runtime
	dir  string
	s    saved
	spec *specs.Spec // loaded on first use
}

// notIDRune is true for what an ID may not hold: anything but letters,
// digits and _ + - .
func notIDRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_+.-", r))
}

// checkID refuses IDs that could name a path outside the root.
func checkID(id string) error {
	if id == "" {
		return errors.New("container ID is empty")
	}
	if len(id) > 1024 || strings.IndexFunc(id, notIDRune) >= 0 || id == "." || id == ".." {
		return fmt.Errorf("invalid container ID %q: use letters, digits and _ + - .", id)
	}
	return nil
}

// reload reads the container's state again.
func (c *Container) reload() error {
	b, err := os.ReadFile(filepath.Join(c.dir, stateFile))
	if err != nil {
		return err
	}
	var s saved
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("container %s: corrupt state: %w", c.s.ID, err)
	}
	c.s = s
	return nil
}

// Load opens an existing container.
func (r *Runtime) Load(id string) (*Container, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	c := &Container{rt: r, dir: filepath.Join(r.Root, id), s: saved{ID: id}}
	if err := c.reload(); err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
		}
		return nil, err
	}
	return c, nil
}

// List returns every container under the root.
func (r *Runtime) List() ([]*Container, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	r.removeAbandonedClaims(ents)
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c, err := r.Load(e.Name())
		if err != nil {
			// A directory of a container being created has no state yet.
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

func (c *Container) ID() string { return c.s.ID }

// Spec is the config the container was created with (and updated since).
func (c *Container) Spec() (*specs.Spec, error) {
	if c.spec != nil {
		return c.spec, nil
	}
	b, err := os.ReadFile(filepath.Join(c.dir, configFile))
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.s.ID, err)
	}
	spec, err := config.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("container %s: saved config: %w", c.s.ID, err)
	}
	config.Normalize(spec, c.s.Bundle)
	c.spec = spec
	return spec, nil
}

// Pid is the host PID of the container's init process.
func (c *Container) Pid() int { return c.s.Pid }

func (c *Container) save() error {
	b, err := json.Marshal(&c.s)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(c.dir, stateFile), b, 0o600)
}

// saveConfig records the container's config.
func (c *Container) saveConfig(raw []byte) error {
	return writeAtomic(filepath.Join(c.dir, configFile), raw, 0o600)
}

// writeAtomic replaces path with b: readers see the old file or the new,
// never part of one.
func writeAtomic(path string, b []byte, perm os.FileMode) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func (c *Container) cgroup() (cgroups.Manager, error) {
	return cgroups.Load(c.s.CgroupV, c.s.CgroupPaths)
}

// procStat returns a process's state letter and start time from
// /proc/PID/stat.
func procStat(pid int) (byte, uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name is in parentheses and may hold anything.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}

// initAlive reports whether the container's init is still the process
// recorded at create (a reused PID is not) and has not exited.
func (c *Container) initAlive() bool {
	if c.s.Pid <= 0 {
		return false
	}
	st, start, err := procStat(c.s.Pid)
	if err != nil || start != c.s.PidStartTime {
		return false
	}
	return st != 'Z' && st != 'X'
}

// Status derives the container's status from the system, not from a
// recorded value, so it is right even after a crash.
func (c *Container) Status() string {
	if c.s.Creating {
		if locked(c.dir) {
			return StatusCreating
		}
		// The create has ended since the state was read: see what it
		// left. Still creating means it died.
		if err := c.reload(); err != nil || c.s.Creating {
			return StatusStopped
		}
	}
	if !c.initAlive() {
		return StatusStopped
	}
	if _, err := os.Lstat(filepath.Join(c.dir, execFifo)); err == nil {
		return StatusCreated
	}
	if cg, err := c.cgroup(); err == nil {
		if frozen, _ := cg.Frozen(); frozen {
			return StatusPaused
		}
	}
	return StatusRunning
}

// State reports the container's OCI state.
func (c *Container) State() *State {
	st := &State{
		State: specs.State{
			Version:     specs.Version,
			ID:          c.s.ID,
			Status:      specs.ContainerState(c.Status()),
			Bundle:      c.s.Bundle,
			Annotations: c.s.Annotations,
		},
		Rootfs:  c.s.Rootfs,
		Created: c.s.Created,
		Owner:   c.s.Owner,
	}
	if st.Status != StatusStopped {
		st.Pid = c.s.Pid
	}
	return st
}

// ociState is the container's state as hooks and seccomp agents get it,
// with the status they are told.
func (c *Container) ociState(status string) specs.State {
	return specs.State{
		Version:     specs.Version,
		ID:          c.s.ID,
		Status:      specs.ContainerState(status),
		Pid:         c.s.Pid,
		Bundle:      c.s.Bundle,
		Annotations: c.s.Annotations,
	}
}

// hookState is the state hooks read on stdin.
func (c *Container) hookState(status string) []byte {
	b, _ := json.Marshal(c.ociState(status))
	return b
}

// lockDir takes the lock create holds on a container's directory while it
// works; it lasts as long as the returned file is open, and no longer than
// the process.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}

// lockDirWait takes the lock like lockDir, waiting out the moment another
// command holds it to look (locked); a create holds it much longer, and
// is reported as ErrCreating. A directory that has gone is ErrNotExist.
func lockDirWait(dir string) (*os.File, error) {
	for i := 0; ; i++ {
		f, err := lockDir(dir)
		if err == nil {
			return f, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", filepath.Base(dir), ErrNotExist)
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, err
		}
		if i == 10 {
			return nil, ErrCreating
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ErrCreating is returned for a container whose create is still at work.
var ErrCreating = errors.New("container is being created")

// creatingPrefix names state directories while a create claims them.
const creatingPrefix = ".creating-"

// removeAbandonedClaims removes the temporary directories of creates that
// died before they could name theirs: unlocked, with no state in them.
func (r *Runtime) removeAbandonedClaims(ents []os.DirEntry) {
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), creatingPrefix) {
			continue
		}
		dir := filepath.Join(r.Root, e.Name())
		// A young one may be a create's that is about to lock it.
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < time.Minute {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
			continue
		}
		if lock, err := lockDir(dir); err == nil {
			os.RemoveAll(dir)
			lock.Close()
		}
	}
}

// locked reports whether a create holds dir's lock.
func locked(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	return errors.Is(err, unix.EWOULDBLOCK)
}

// RemoveLeftover removes the directory a create left before it could
// record anything (it was killed in its first moments), and reports
// whether there was one. A directory a create is still working in stays.
func (r *Runtime) RemoveLeftover(id string) (bool, error) {
	if err := checkID(id); err != nil {
		return false, err
	}
	dir := filepath.Join(r.Root, id)
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !os.IsNotExist(err) {
		return false, nil
	}
	if _, err := os.Stat(dir); err != nil || locked(dir) {
		return false, nil
	}
	return true, os.RemoveAll(dir)
}

// waitExit waits until the process has exited (or become a zombie).
func waitExit(pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms < 0 {
			return fmt.Errorf("process %d did not exit within %s", pid, timeout)
		}
		n, err := unix.Poll(fds, ms)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}
