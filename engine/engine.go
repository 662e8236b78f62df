// Package engine is the container engine, containerd's and Docker
// Engine's job: it keeps containers (their records, read-write layers,
// bundles and logs) across its own restarts, starts each under a monitor
// (engine/shim) with a runc-compatible runtime, applies restart policies
// and reports events. The daemon (cmd/berth) serves it over an API.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/engine/network"
	"github.com/berth-dev/berth/engine/shim"
	"github.com/berth-dev/berth/image"
)

// Config places and shapes an engine.
type Config struct {
	// Root holds the image store and containers/ (/var/lib/berth).
	Root string
	// RunDir holds what lives as long as the machine is up: monitors'
	// directories and the runtimes' state (/run/berth).
	RunDir string
	// Runtimes are runc-compatible commands by name, with their global
	// flags; "--root <RunDir>/runtime/<name>" is added.
	Runtimes map[string][]string
	// DefaultRuntime names the runtime of containers that ask for none.
	DefaultRuntime string
	// Monitor is the monitor's command, before its directory
	// (["/usr/bin/berth-shim"], or [berth, "shim"]).
	Monitor []string
	// CgroupParent is where containers' cgroups go ("/berth").
	CgroupParent string
	// LogMaxSize and LogMaxFiles rotate container logs (0: 10 MiB, 3).
	LogMaxSize  int64
	LogMaxFiles int
	Logger      *slog.Logger
	// Networks attaches containers to networks; without it containers
	// get --network none unless they ask for host.
	Networks *network.Manager
}

// Engine is the container engine.
type Engine struct {
	cfg    Config
	Images *image.Store
	log    *slog.Logger
	Events *Events

	mu         sync.Mutex
	containers map[string]*container
	names      map[string]string // name -> ID
	execs      execs
	volumes    *volumes

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// container is a record and what serializes what is done to it.
type container struct {
	op sync.Mutex // held through a start, stop or remove

	mu       sync.Mutex // guards rec and the fields below
	rec      Container
	exited   chan struct{} // closed when the current run ends
	attaches []*pendingAttach
	removed  bool
	gone     chan struct{} // closed at the removal
	// changed is closed (and replaced) at every change of the record,
	// for waiters.
	changed chan struct{}
	// runs counts the runs started, exits the exits recorded (a wait
	// for the next exit waits for a given run's).
	runs, exits int
	// cleaned is closed when the current run's exit has been cleaned up
	// after (its mount, monitor directory and network): the next run
	// starts only then.
	cleaned chan struct{}
}

func newContainer(rec Container) *container {
	return &container{rec: rec, gone: make(chan struct{}), changed: make(chan struct{})}
}

// notifyLocked wakes the waiters; c.mu is held.
func (c *container) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *container) snapshot() Container {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

// ErrNotFound: no such container.
var ErrNotFound = errors.New("no such container")

// ErrConflict: the name is taken, or the container is in a state that
// does not allow what was asked.
var ErrConflict = errors.New("conflict")

// Open opens (making) an engine's state and takes back the containers it
// had: running ones whose monitor lives are watched again, the exits that
// happened meanwhile are recorded (and restart policies applied).
func Open(cfg Config, images *image.Store) (*Engine, error) {
	if cfg.LogMaxSize == 0 {
		cfg.LogMaxSize = 10 << 20
	}
	if cfg.LogMaxFiles == 0 {
		cfg.LogMaxFiles = 3
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "/berth"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if _, ok := cfg.Runtimes[cfg.DefaultRuntime]; !ok {
		return nil, fmt.Errorf("default runtime %q is not among the runtimes configured", cfg.DefaultRuntime)
	}
	if len(cfg.Monitor) == 0 {
		return nil, errors.New("no monitor command")
	}
	for _, d := range []string{filepath.Join(cfg.Root, "containers"), filepath.Join(cfg.RunDir, "m")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{cfg: cfg, Images: images, log: cfg.Logger, Events: newEvents(), containers: map[string]*container{}, names: map[string]string{}, ctx: ctx, cancel: cancel}
	ents, err := os.ReadDir(filepath.Join(cfg.Root, "containers"))
	if err != nil {
		return nil, err
	}
	for _, ent := range ents {
		rec, err := loadContainer(e.containerDir(ent.Name()))
		if err != nil {
			// A create that died half-way: nothing names it.
			e.log.Warn("removing a container that was never recorded", "id", ent.Name(), "err", err)
			e.cleanupFiles(ent.Name(), "")
			continue
		}
		c := newContainer(rec)
		e.containers[rec.ID] = c
		e.names[rec.Name] = rec.ID
	}
	e.volumes = &volumes{dir: filepath.Join(cfg.Root, "volumes")}
	if err := os.MkdirAll(e.volumes.dir, 0o700); err != nil {
		return nil, err
	}
	var later []func()
	for _, c := range e.containers {
		if f := e.restore(c); f != nil {
			later = append(later, f)
		}
	}
	if cfg.Networks != nil {
		// Namespaces of containers that are not running any more (their
		// exit came while the engine was down, or the engine died
		// between an exit and its cleanup) are undone, before any
		// restart owed makes new ones; the published ports of those
		// that run are taken again.
		cfg.Networks.Reconcile(ctx, func(id string) (string, bool) {
			c, err := e.lookup(id)
			if err != nil || c.snapshot().ID != id {
				return "", false
			}
			rec := c.snapshot()
			return e.networkOf(rec.Spec), rec.State.Status == Running || rec.State.Status == Restarting
		})
		for _, c := range e.containers {
			if rec := c.snapshot(); rec.State.Status == Running && rec.State.Net != nil {
				cfg.Networks.Reserve(rec.ID, portMappings(rec.State.Net.Ports))
			}
		}
	}
	for _, f := range later {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			f()
		}()
	}
	return e, nil
}

// Close stops watching containers; they keep running.
func (e *Engine) Close() {
	e.cancel()
	e.wg.Wait()
}

func (e *Engine) containerDir(id string) string { return filepath.Join(e.cfg.Root, "containers", id) }

// Networks is the engine's network manager (nil: networking is off).
func (e *Engine) Networks() *network.Manager { return e.cfg.Networks }

// ContainerDir is where a container's record, bundle and log are.
func (e *Engine) ContainerDir(id string) string { return e.containerDir(id) }
func (e *Engine) monitorDir(id string) string {
	return filepath.Join(e.cfg.RunDir, "m", id[:min(len(id), 32)])
}

// restore takes back a container after the engine's start. What must
// wait until the namespaces left behind are reconciled (restarts) it
// returns, to be run then.
func (e *Engine) restore(c *container) func() {
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	mon := shim.Client{Dir: e.monitorDir(rec.ID)}
	switch rec.State.Status {
	case Restarting:
		// Between an exit and the policy's restart: the exit is
		// recorded, the restart is still owed.
		return func() {
			c.op.Lock()
			defer c.op.Unlock()
			if cur := c.snapshot(); cur.State.Status == Restarting && !cur.State.StoppedByUser {
				if err := e.start(e.ctx, c); err != nil {
					e.log.Warn("restart at engine start", "id", rec.ID, "err", err)
					e.update(c, func(r *Container) { r.State.Status = Exited })
				}
			}
		}
	case Running:
		c.mu.Lock()
		c.runs = 1
		c.exited = make(chan struct{})
		c.cleaned = make(chan struct{})
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		pid, running, exit, err := mon.State(ctx)
		cancel()
		if err == nil && running {
			e.log.Info("container still running", "id", rec.ID, "pid", pid)
			e.watch(c, mon)
			e.monitorHealth(c)
			return nil
		}
		if exit == nil {
			exit = &shim.Exit{Code: 255, At: time.Now().UTC()}
			e.deleteRuntimeState(rec)
		}
		e.log.Info("container exited while the engine was down", "id", rec.ID, "code", exit.Code)
		e.exited(c, *exit)
	case Created, Exited, Dead:
		// A start the engine died in the middle of: the monitor may be
		// there, and its container running, with the record not yet
		// saying so. It is taken back rather than left unknown.
		if _, err := os.Stat(mon.Dir); err == nil {
			ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			pid, running, _, err := mon.State(ctx)
			cancel()
			if err == nil && running {
				e.log.Info("taking back a container whose start the engine did not record", "id", rec.ID, "pid", pid)
				var net *NetState
				if e.cfg.Networks != nil {
					if _, err := os.Stat(e.cfg.Networks.NetnsPath(rec.ID)); err == nil {
						net = &NetState{Network: e.networkOf(rec.Spec), Netns: e.cfg.Networks.NetnsPath(rec.ID)}
					}
				}
				c.mu.Lock()
				c.runs = 1
				c.exited = make(chan struct{})
				c.cleaned = make(chan struct{})
				c.mu.Unlock()
				e.update(c, func(r *Container) {
					r.State = State{Status: Running, Pid: pid, StartedAt: time.Now().UTC(), RestartCount: r.State.RestartCount, Runtime: e.runtimeOf(*r), Net: net}
				})
				e.watch(c, mon)
				return nil
			}
			os.RemoveAll(mon.Dir)
			e.deleteRuntimeState(rec)
		}
		if rec.Spec.Restart.Name == "always" && rec.State.Status == Exited {
			// Docker starts always-containers when it starts, even
			// stopped ones.
			return func() {
				if err := e.Start(e.ctx, rec.ID); err != nil {
					e.log.Warn("restart at engine start", "id", rec.ID, "err", err)
				}
			}
		}
	case Removing:
		return func() { e.Remove(e.ctx, rec.ID, RemoveOptions{Force: true}) }
	}
	return nil
}

// Lookup finds a container by ID, unique ID prefix or name.
func (e *Engine) lookup(ref string) (*container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ref = strings.TrimPrefix(ref, "/")
	if id, ok := e.names[ref]; ok {
		return e.containers[id], nil
	}
	if c, ok := e.containers[ref]; ok {
		return c, nil
	}
	var found *container
	if len(ref) > 0 {
		for id, c := range e.containers {
			if strings.HasPrefix(id, ref) {
				if found != nil {
					return nil, fmt.Errorf("%w: %q names more than one container", ErrConflict, ref)
				}
				found = c
			}
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	return found, nil
}

// Get returns a container's record.
func (e *Engine) Get(ref string) (Container, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return Container{}, err
	}
	return c.snapshot(), nil
}

// List returns every container's record, the newest first.
func (e *Engine) List() []Container {
	e.mu.Lock()
	cs := make([]*container, 0, len(e.containers))
	for _, c := range e.containers {
		cs = append(cs, c)
	}
	e.mu.Unlock()
	out := make([]Container, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// update changes a container's record and saves it.
func (e *Engine) update(c *container, fn func(*Container)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(&c.rec)
	c.notifyLocked()
	if c.removed {
		return nil
	}
	return c.rec.save(e.containerDir(c.rec.ID))
}
