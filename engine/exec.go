package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/berth-dev/berth/engine/shim"
	"github.com/berth-dev/berth/image/runspec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecConfig is a process to run in a running container (docker exec).
type ExecConfig struct {
	Cmd        []string `json:"cmd"`
	Env        []string `json:"env,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	Tty        bool     `json:"tty,omitempty"`
	// Stdin keeps the process's stdin open for the attach.
	Stdin      bool `json:"stdin,omitempty"`
	Privileged bool `json:"privileged,omitempty"`
}

// Exec is an exec's state, as docker exec inspect shows it.
type Exec struct {
	ID          string     `json:"id"`
	ContainerID string     `json:"containerId"`
	Config      ExecConfig `json:"config"`
	Running     bool       `json:"running"`
	Pid         int        `json:"pid,omitempty"`
	// ExitCode is nil until the process has exited.
	ExitCode *int `json:"exitCode"`
}

// ErrExecNotFound: no such exec.
var ErrExecNotFound = errors.New("no such exec instance")

// ErrNotRunning: the container is not running.
var ErrNotRunning = errors.New("container is not running")

type execProc struct {
	mu      sync.Mutex
	state   Exec
	started bool
	done    chan struct{}
}

// execs are kept in memory only, as Docker's are: an exec outlives
// neither its container nor the engine (its process may, and its
// monitor then cleans up after it).
type execs struct {
	mu sync.Mutex
	m  map[string]*execProc
}

func (e *Engine) execDir(id string) string {
	return filepath.Join(e.cfg.RunDir, "x", id[:min(len(id), 32)])
}

// ExecCreate records a process to run in a running container; ExecStart
// runs it.
func (e *Engine) ExecCreate(ref string, cfg ExecConfig) (string, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return "", err
	}
	rec := c.snapshot()
	if rec.State.Status != Running {
		return "", fmt.Errorf("%w: %s", ErrNotRunning, rec.ID[:12])
	}
	if len(cfg.Cmd) == 0 || cfg.Cmd[0] == "" {
		return "", invalid{errors.New("exec: no command given")}
	}
	if cfg.WorkingDir != "" && !filepath.IsAbs(cfg.WorkingDir) {
		return "", invalid{fmt.Errorf("exec: working directory %q is not absolute", cfg.WorkingDir)}
	}
	id := newID()
	e.execs.mu.Lock()
	if e.execs.m == nil {
		e.execs.m = map[string]*execProc{}
	}
	e.execs.m[id] = &execProc{state: Exec{ID: id, ContainerID: rec.ID, Config: cfg}, done: make(chan struct{})}
	e.execs.mu.Unlock()
	return id, nil
}

func (e *Engine) execLookup(id string) (*execProc, error) {
	e.execs.mu.Lock()
	defer e.execs.mu.Unlock()
	if x, ok := e.execs.m[id]; ok {
		return x, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrExecNotFound, id)
}

// ExecInspect returns an exec's state.
func (e *Engine) ExecInspect(id string) (Exec, error) {
	x, err := e.execLookup(id)
	if err != nil {
		return Exec{}, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.state, nil
}

// ExecStart runs an exec. With attach, it returns the connection that
// carries its streams (as Attach's, framed unless the exec has a
// terminal), which the process's first output waits for; without, the
// process runs detached.
func (e *Engine) ExecStart(ctx context.Context, id string, attach bool) (net.Conn, io.Reader, error) {
	x, err := e.execLookup(id)
	if err != nil {
		return nil, nil, err
	}
	x.mu.Lock()
	if x.started {
		x.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: exec %s has been started already", ErrConflict, id[:12])
	}
	x.started = true
	cfg := x.state.Config
	cid := x.state.ContainerID
	x.mu.Unlock()
	fail := func(err error) (net.Conn, io.Reader, error) {
		code := 126
		if msg := err.Error(); strings.Contains(msg, "no such file") || strings.Contains(msg, "not found") {
			code = 127
		}
		x.mu.Lock()
		x.state.ExitCode = &code
		x.mu.Unlock()
		close(x.done)
		return nil, nil, err
	}
	c, err := e.lookup(cid)
	if err != nil {
		return fail(err)
	}
	rec := c.snapshot()
	if rec.State.Status != Running {
		return fail(fmt.Errorf("%w: %s", ErrNotRunning, rec.ID[:12]))
	}
	proc, err := e.execProcess(rec, cfg)
	if err != nil {
		return fail(err)
	}
	dir := e.execDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	b, _ := json.Marshal(proc)
	if err := os.WriteFile(filepath.Join(dir, "process.json"), b, 0o600); err != nil {
		os.RemoveAll(dir)
		return fail(err)
	}
	runtimeName := rec.State.Runtime
	if runtimeName == "" {
		runtimeName = e.cfg.DefaultRuntime
	}
	scfg := shim.Config{
		ID: rec.ID, Runtime: e.runtimeCommand(runtimeName), Process: filepath.Join(dir, "process.json"),
		Terminal: cfg.Tty, Stdin: cfg.Stdin, StdinOnce: cfg.Stdin,
	}
	pid, err := shim.Launch(ctx, e.cfg.Monitor[0], e.cfg.Monitor[1:], dir, scfg)
	if err != nil {
		os.RemoveAll(dir)
		return fail(err)
	}
	x.mu.Lock()
	x.state.Running, x.state.Pid = true, pid
	x.mu.Unlock()
	e.Events.publish(Event{Type: "container", Action: "exec_start: " + strings.Join(cfg.Cmd, " "), ID: rec.ID, Attributes: map[string]string{"name": rec.Name, "execID": id}})
	mon := shim.Client{Dir: dir}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		exit, err := mon.Wait(e.ctx)
		if e.ctx.Err() != nil {
			return // the engine closes; the exec runs on, unrecorded
		}
		if err != nil {
			exit = shim.Exit{Code: 255}
		}
		os.RemoveAll(dir)
		x.mu.Lock()
		x.state.Running = false
		x.state.ExitCode = &exit.Code
		x.mu.Unlock()
		close(x.done)
		e.Events.publish(Event{Type: "container", Action: "exec_die", ID: rec.ID, Attributes: map[string]string{"name": rec.Name, "execID": id, "exitCode": fmt.Sprint(exit.Code)}})
	}()
	if !attach {
		return nil, nil, mon.Release(ctx)
	}
	conn, r, err := mon.Attach(ctx, cfg.Stdin, true, true)
	if err != nil {
		mon.Release(context.Background())
		return nil, nil, err
	}
	return conn, r, nil
}

// ExecWait waits for an exec's process to end and returns its exit code.
func (e *Engine) ExecWait(ctx context.Context, id string) (int, error) {
	x, err := e.execLookup(id)
	if err != nil {
		return 0, err
	}
	select {
	case <-x.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return *x.state.ExitCode, nil
}

// ExecResize sizes an exec's terminal.
func (e *Engine) ExecResize(ctx context.Context, id string, rows, cols uint16) error {
	if _, err := e.execLookup(id); err != nil {
		return err
	}
	return shim.Client{Dir: e.execDir(id)}.Resize(ctx, rows, cols)
}

// forgetExec drops one exec's record.
func (e *Engine) forgetExec(id string) {
	e.execs.mu.Lock()
	defer e.execs.mu.Unlock()
	delete(e.execs.m, id)
}

// forgetExecs drops the execs of a removed container.
func (e *Engine) forgetExecs(containerID string) {
	e.execs.mu.Lock()
	defer e.execs.mu.Unlock()
	for id, x := range e.execs.m {
		if x.state.ContainerID == containerID {
			delete(e.execs.m, id)
		}
	}
}

// ExecIDs lists a container's execs, for inspect.
func (e *Engine) ExecIDs(containerID string) []string {
	e.execs.mu.Lock()
	defer e.execs.mu.Unlock()
	var ids []string
	for id, x := range e.execs.m {
		if x.state.ContainerID == containerID {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// execProcess is the runtime's process.json for an exec: the container's
// environment, user and capabilities, with the exec's changes, resolved
// against the container's own /etc/passwd as its init process was.
func (e *Engine) execProcess(rec Container, cfg ExecConfig) (*specs.Process, error) {
	img, err := e.imageConfig(rec)
	if err != nil {
		return nil, err
	}
	user := cfg.User
	if user == "" {
		user = rec.Spec.User
	}
	workdir := cfg.WorkingDir
	if workdir == "" {
		workdir = rec.Spec.WorkingDir
	}
	spec, err := runspec.Generate(img, runspec.Options{
		Rootfs:     "rootfs",
		RootfsDir:  filepath.Join(e.containerDir(rec.ID), "bundle", "rootfs"),
		Entrypoint: []string{}, Cmd: cfg.Cmd,
		Env:  append(append([]string{}, rec.Spec.Env...), cfg.Env...),
		User: user, WorkingDir: workdir, Terminal: cfg.Tty,
		Privileged: rec.Spec.Privileged || cfg.Privileged, CapAdd: rec.Spec.CapAdd, CapDrop: rec.Spec.CapDrop,
	})
	if err != nil {
		return nil, err
	}
	p := spec.Process
	// The container's limits apply (its cgroup); its rlimits and
	// no_new_privileges as well, from the spec the container runs.
	if running, err := readSpec(filepath.Join(e.containerDir(rec.ID), "bundle", "config.json")); err == nil && running.Process != nil {
		p.Rlimits = running.Process.Rlimits
		p.NoNewPrivileges = running.Process.NoNewPrivileges
		p.ApparmorProfile = running.Process.ApparmorProfile
		p.OOMScoreAdj = running.Process.OOMScoreAdj
	}
	return p, nil
}

func readSpec(path string) (*specs.Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	return &s, json.Unmarshal(b, &s)
}
