package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/engine/logs"
	"github.com/berth-dev/berth/engine/network"
	"github.com/berth-dev/berth/engine/shim"
	"github.com/berth-dev/berth/image/metadata"
	"github.com/berth-dev/berth/image/runspec"
	"github.com/berth-dev/berth/image/snapshot"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Start runs a created or exited container. Starting a running one does
// nothing.
func (e *Engine) Start(ctx context.Context, ref string) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	err = e.start(ctx, c)
	c.op.Unlock()
	if rec := c.snapshot(); err != nil && rec.Spec.AutoRemove {
		// As Docker: a --rm container that could not start is removed
		// (a client waits for that, condition "removed").
		e.Remove(context.Background(), rec.ID, RemoveOptions{Force: true, Volumes: true})
	}
	return err
}

// runtimeOf names the runtime a container runs (or will run) with.
func (e *Engine) runtimeOf(rec Container) string {
	switch {
	case rec.State.Runtime != "":
		return rec.State.Runtime
	case rec.Spec.Runtime != "":
		return rec.Spec.Runtime
	}
	return e.cfg.DefaultRuntime
}

// deleteRuntimeState has the runtime forget a container whose monitor
// died without doing so: otherwise its next create would find the ID
// taken.
func (e *Engine) deleteRuntimeState(rec Container) {
	rt := e.runtimeCommand(e.runtimeOf(rec))
	cmd := exec.Command(rt[0], append(rt[1:], "delete", "--force", rec.ID)...)
	cmd.Run()
}

func (e *Engine) start(ctx context.Context, c *container) error {
	// The start is the engine's once begun: a client that goes away
	// must not cut it half-way (a monitor launched, its answer lost).
	ctx = context.WithoutCancel(ctx)
	c.mu.Lock()
	cleaned := c.cleaned
	c.mu.Unlock()
	if cleaned != nil {
		// The last run's exit is cleaned up after first: its monitor
		// directory, mount and network are the new run's too.
		<-cleaned
	}
	rec := c.snapshot()
	switch {
	case c.removed || rec.State.Status == Removing:
		return fmt.Errorf("%w: container %s is being removed", ErrConflict, rec.Name)
	case rec.State.Status == Running:
		return nil
	}
	runtimeName := rec.Spec.Runtime
	if runtimeName == "" {
		runtimeName = e.cfg.DefaultRuntime
	}
	var fail func(err error) error
	fail = func(err error) error {
		snapshot.Unmount(filepath.Join(e.containerDir(rec.ID), "bundle", "rootfs"))
		e.failAttaches(c, err)
		e.update(c, func(r *Container) { r.State.Error = err.Error() })
		e.Events.publish(Event{Type: "container", Action: "die", ID: rec.ID, Attributes: map[string]string{"name": rec.Name, "error": err.Error()}})
		return err
	}
	var att *network.Attachment
	var published []PortMapping
	if netName := e.networkOf(rec.Spec); netName != "none" && netName != "host" {
		ports, err := allocatePorts(rec.Spec.Ports)
		if err != nil {
			return fail(err)
		}
		a, err := e.cfg.Networks.Attach(ctx, rec.ID, netName, ports)
		if err != nil {
			return fail(err)
		}
		att = &a
		published = make([]PortMapping, len(ports))
		for i, p := range ports {
			published[i] = PortMapping(p)
		}
		failBefore := fail
		fail = func(err error) error {
			e.cfg.Networks.Detach(context.Background(), rec.ID, netName)
			e.update(c, func(r *Container) { r.State.Net = nil })
			return failBefore(err)
		}
	}
	if err := e.bundle(rec, att); err != nil {
		return fail(err)
	}
	dir := e.monitorDir(rec.ID)
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	rt := e.runtimeCommand(runtimeName)
	cfg := shim.Config{
		ID: rec.ID, Runtime: rt, Bundle: filepath.Join(e.containerDir(rec.ID), "bundle"),
		Terminal: rec.Spec.Tty, Stdin: rec.Spec.OpenStdin, StdinOnce: rec.Spec.StdinOnce,
		Log: &shim.LogConfig{Path: e.logPath(rec.ID), MaxSize: e.cfg.LogMaxSize, MaxFiles: e.cfg.LogMaxFiles},
	}
	pid, err := shim.Launch(ctx, e.cfg.Monitor[0], e.cfg.Monitor[1:], dir, cfg)
	if err != nil {
		os.RemoveAll(dir)
		return fail(err)
	}
	mon := shim.Client{Dir: dir}
	// Attaches made before the start get the process's first byte.
	c.mu.Lock()
	pending := c.attaches
	c.attaches = nil
	c.exited = make(chan struct{})
	c.cleaned = make(chan struct{})
	c.runs++
	c.mu.Unlock()
	for _, a := range pending {
		conn, r, err := mon.Attach(ctx, a.stdin, a.stdout, a.stderr)
		a.done <- attachResult{conn, r, err}
	}
	if err := mon.Start(ctx); err != nil {
		if mon.Kill(context.Background(), syscall.SIGKILL, true) == nil {
			mon.Wait(context.Background())
		} else {
			// A monitor that cannot be reached cannot kill: the
			// runtime removes the created process itself.
			e.deleteRuntimeState(rec)
		}
		os.RemoveAll(dir)
		return fail(err)
	}
	e.update(c, func(r *Container) {
		r.State = State{Status: Running, Pid: pid, StartedAt: time.Now().UTC(), RestartCount: r.State.RestartCount, Runtime: runtimeName, Net: netState(att, published)}
		if h := e.healthConfig(*r); h != nil {
			r.State.Health = &Health{Status: "starting"}
		}
	})
	e.Events.publish(Event{Type: "container", Action: "start", ID: rec.ID, Attributes: map[string]string{"name": rec.Name, "image": rec.Image}})
	e.watch(c, mon)
	e.monitorHealth(c)
	return nil
}

// networkOf is the network a spec asks for: its own, or the default one
// (none where the engine has no networks).
func (e *Engine) networkOf(s Spec) string {
	if s.Network != "" {
		return s.Network
	}
	if e.cfg.Networks == nil {
		return "none"
	}
	return network.DefaultName
}

// detach takes a container off its network, if it is on one.
func (e *Engine) detach(c *container, rec Container) {
	if rec.State.Net == nil || e.cfg.Networks == nil {
		return
	}
	if err := e.cfg.Networks.Detach(context.Background(), rec.ID, rec.State.Net.Network); err != nil {
		e.log.Warn("detach from network", "id", rec.ID, "network", rec.State.Net.Network, "err", err)
	}
	e.update(c, func(r *Container) { r.State.Net = nil })
}

func netState(a *network.Attachment, ports []PortMapping) *NetState {
	if a == nil {
		return nil
	}
	return &NetState{Network: a.Network, NetworkID: a.NetworkID, Netns: a.Netns, Interface: a.Interface, IP: a.IP.String(), PrefixLen: a.PrefixLen, Gateway: a.Gateway.String(), MAC: a.MAC, Ports: ports}
}

func portMappings(ps []PortMapping) []network.PortMapping {
	out := make([]network.PortMapping, len(ps))
	for i, p := range ps {
		out[i] = network.PortMapping(p)
	}
	return out
}

// allocatePorts gives a host port to each mapping that asks for any (-p
// 80): one the kernel has free now, as Docker's ephemeral range does.
func allocatePorts(spec []PortMapping) ([]network.PortMapping, error) {
	out := make([]network.PortMapping, len(spec))
	for i, p := range spec {
		out[i] = network.PortMapping(p)
		if p.HostPort != 0 {
			continue
		}
		host := p.HostIP
		if host == "" {
			host = "0.0.0.0"
		}
		addr := net.JoinHostPort(host, "0")
		switch p.Protocol {
		case "udp":
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				return nil, fmt.Errorf("allocate a host port for %d/udp: %w", p.ContainerPort, err)
			}
			out[i].HostPort = uint16(c.LocalAddr().(*net.UDPAddr).Port)
			c.Close()
		default:
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("allocate a host port for %d/tcp: %w", p.ContainerPort, err)
			}
			out[i].HostPort = uint16(l.Addr().(*net.TCPAddr).Port)
			l.Close()
		}
	}
	return out, nil
}

// imageConfig is the configuration of the container's image.
func (e *Engine) imageConfig(rec Container) (ocispec.Image, error) {
	img, err := e.Images.Get(rec.ImageID.String())
	if err != nil {
		return ocispec.Image{}, fmt.Errorf("image %s: %w", rec.Image, err)
	}
	m, _, err := e.Images.Manifest(img.Target, "")
	if err != nil {
		return ocispec.Image{}, err
	}
	return e.Images.Config(m)
}

// runtimeCommand is a runtime's command line with its state directory.
func (e *Engine) runtimeCommand(name string) []string {
	return append(append([]string{}, e.cfg.Runtimes[name]...), "--root", filepath.Join(e.cfg.RunDir, "runtime", name))
}

func (e *Engine) logPath(id string) string { return filepath.Join(e.containerDir(id), "log.json") }

// bundle mounts the container's root filesystem (if it is not) and
// writes the runtime spec.
func (e *Engine) bundle(rec Container, att *network.Attachment) error {
	dir := filepath.Join(e.containerDir(rec.ID), "bundle")
	rootfs := filepath.Join(dir, "rootfs")
	cfg, err := e.imageConfig(rec)
	if err != nil {
		return err
	}
	mounted, err := isMountPoint(rootfs)
	if err != nil {
		return err
	}
	if !mounted {
		ms, err := e.Images.Snapshots.Mounts(rec.Snapshot)
		if err != nil {
			return err
		}
		if err := snapshot.MountAll(ms, rootfs); err != nil {
			return err
		}
	}
	hostname := rec.Spec.Hostname
	if hostname == "" {
		hostname = rec.ID[:12]
	}
	if rec.Spec.Network == "host" && rec.Spec.Hostname == "" {
		hostname, _ = os.Hostname()
	}
	s := rec.Spec
	spec, err := runspec.Generate(cfg, runspec.Options{
		Rootfs: "rootfs", RootfsDir: rootfs, Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: s.Env,
		User: s.User, WorkingDir: s.WorkingDir, Hostname: hostname, Terminal: s.Tty, ReadOnly: s.ReadOnly,
		Privileged: s.Privileged, CapAdd: s.CapAdd, CapDrop: s.CapDrop,
	})
	if err != nil {
		return err
	}
	if s.Network == "host" {
		ns := spec.Linux.Namespaces[:0]
		for _, n := range spec.Linux.Namespaces {
			if n.Type != specs.NetworkNamespace {
				ns = append(ns, n)
			}
		}
		spec.Linux.Namespaces = ns
		// The host's network is not the container's to tune.
		for k := range spec.Linux.Sysctl {
			if strings.HasPrefix(k, "net.") {
				delete(spec.Linux.Sysctl, k)
			}
		}
	}
	if att != nil {
		for i, n := range spec.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace {
				spec.Linux.Namespaces[i].Path = att.Netns
			}
		}
	}
	for _, mnt := range s.Mounts {
		switch mnt.Type {
		case "bind":
			opts := []string{"rbind", "rprivate"}
			if mnt.ReadOnly {
				opts = append(opts, "ro")
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: mnt.Destination, Type: "bind", Source: mnt.Source, Options: opts})
		case "volume":
			src, err := e.volumeSource(mnt.Source)
			if err != nil {
				return err
			}
			opts := []string{"rbind", "rprivate"}
			if mnt.ReadOnly {
				opts = append(opts, "ro")
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: mnt.Destination, Type: "bind", Source: src, Options: opts})
		case "tmpfs":
			opts := append([]string{"nosuid", "nodev", "noexec"}, mnt.Options...)
			if mnt.ReadOnly {
				opts = append(opts, "ro")
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: mnt.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
		}
	}
	r := &specs.LinuxResources{}
	if s.Resources.Memory > 0 {
		r.Memory = &specs.LinuxMemory{Limit: &s.Resources.Memory}
	}
	if s.Resources.NanoCPUs > 0 {
		period := uint64(100000)
		quota := s.Resources.NanoCPUs * int64(period) / 1e9
		r.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if s.Resources.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: &s.Resources.PidsLimit}
	}
	if spec.Linux.Resources != nil {
		r.Devices = spec.Linux.Resources.Devices
	}
	spec.Linux.Resources = r
	spec.Linux.CgroupsPath = path.Join(e.cfg.CgroupParent, rec.ID)
	if err := runspec.EtcFiles(spec, e.containerDir(rec.ID)); err != nil {
		return err
	}
	if att != nil {
		// The container's own address under its name, as Docker's
		// /etc/hosts has it.
		f, err := os.OpenFile(filepath.Join(e.containerDir(rec.ID), "hosts"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "%s\t%s\n", att.IP, hostname)
		f.Close()
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600)
}

// isMountPoint tells whether something is mounted on dir (a mount of its
// own has another device than its parent; an overlay always has).
func isMountPoint(dir string) (bool, error) {
	var st, pst unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(dir), &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev, nil
}

// watch waits for the container's exit in the background.
func (e *Engine) watch(c *container, mon shim.Client) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		exit, err := mon.Wait(e.ctx)
		if e.ctx.Err() != nil {
			return // the engine closes; the container runs on
		}
		if err != nil {
			e.log.Warn("monitor gone without an exit status", "id", c.snapshot().ID, "err", err)
			exit = shim.Exit{Code: 255, At: time.Now().UTC()}
			e.deleteRuntimeState(c.snapshot())
		}
		e.exited(c, exit)
	}()
}

// exited records an exit and does what the restart policy and --rm say.
//
// The run's leftovers go first (mount, monitor directory, network), and
// only then is the exit recorded and told: whoever sees the container
// exited may start it again at once.
func (e *Engine) exited(c *container, exit shim.Exit) {
	before := c.snapshot()
	snapshot.Unmount(filepath.Join(e.containerDir(before.ID), "bundle", "rootfs"))
	os.RemoveAll(e.monitorDir(before.ID))
	e.detach(c, before)
	var rec Container
	c.mu.Lock()
	c.exits++
	c.mu.Unlock()
	e.update(c, func(r *Container) {
		r.State.Status = Exited
		r.State.Pid = 0
		r.State.ExitCode = exit.Code
		r.State.FinishedAt = exit.At
		rec = *r
	})
	c.mu.Lock()
	for _, ch := range []chan struct{}{c.exited, c.cleaned} {
		if ch != nil {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	}
	c.mu.Unlock()
	e.Events.publish(Event{Type: "container", Action: "die", ID: rec.ID, Attributes: map[string]string{"name": rec.Name, "exitCode": strconv.Itoa(exit.Code)}})
	if rec.Spec.AutoRemove {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			if err := e.Remove(e.ctx, rec.ID, RemoveOptions{Force: true, Volumes: true}); err != nil && !errors.Is(err, ErrNotFound) {
				e.log.Warn("auto-remove", "id", rec.ID, "err", err)
			}
		}()
		return
	}
	if !e.shouldRestart(rec) {
		return
	}
	// Docker's back-off: 100 ms doubling, up to a minute; a run of ten
	// seconds or more starts it over.
	delay := 100 * time.Millisecond
	if rec.State.FinishedAt.Sub(rec.State.StartedAt) < 10*time.Second {
		for range min(rec.State.RestartCount, 10) {
			delay *= 2
		}
	}
	delay = min(delay, time.Minute)
	e.update(c, func(r *Container) { r.State.Status = Restarting; r.State.RestartCount++ })
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		select {
		case <-time.After(delay):
		case <-e.ctx.Done():
			return
		}
		c.op.Lock()
		defer c.op.Unlock()
		cur := c.snapshot()
		if c.removed || cur.State.Status != Restarting || cur.State.StoppedByUser {
			return
		}
		if err := e.start(e.ctx, c); err != nil {
			e.log.Warn("restart", "id", rec.ID, "err", err)
			e.update(c, func(r *Container) { r.State.Status = Exited })
		}
	}()
}

func (e *Engine) shouldRestart(rec Container) bool {
	if rec.State.StoppedByUser {
		return false
	}
	p := rec.Spec.Restart
	switch p.Name {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return rec.State.ExitCode != 0 && (p.MaxRetries == 0 || rec.State.RestartCount < p.MaxRetries)
	}
	return false
}

// Stop stops a running container: its stop signal, then after timeout
// (nil: the container's, else 10 s) SIGKILL to all its processes.
func (e *Engine) Stop(ctx context.Context, ref string, timeout *time.Duration) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	rec := c.snapshot()
	e.update(c, func(r *Container) {
		r.State.StoppedByUser = true
		if r.State.Status == Restarting {
			r.State.Status = Exited
		}
	})
	if rec.State.Status != Running {
		return nil
	}
	wait := 10 * time.Second
	if rec.Spec.StopTimeout != nil {
		wait = time.Duration(*rec.Spec.StopTimeout) * time.Second
	}
	if timeout != nil {
		wait = *timeout
	}
	sig := syscall.SIGTERM
	if rec.Spec.StopSignal != "" {
		sig, _ = parseSignal(rec.Spec.StopSignal)
	}
	mon := shim.Client{Dir: e.monitorDir(rec.ID)}
	c.mu.Lock()
	exited := c.exited
	c.mu.Unlock()
	if wait != 0 {
		mon.Kill(ctx, sig, false)
		var deadline <-chan time.Time // a negative timeout waits for ever
		if wait > 0 {
			deadline = time.After(wait)
		}
		select {
		case <-exited:
			return nil
		case <-deadline:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	mon.Kill(ctx, syscall.SIGKILL, true)
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Kill sends a signal to a running container's process.
func (e *Engine) Kill(ctx context.Context, ref string, signal string) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	sig := syscall.SIGKILL
	if signal != "" {
		if sig, err = parseSignal(signal); err != nil {
			return err
		}
	}
	rec := c.snapshot()
	if rec.State.Status != Running {
		return fmt.Errorf("%w: container %s is not running", ErrConflict, rec.Name)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		e.update(c, func(r *Container) { r.State.StoppedByUser = true })
	}
	return shim.Client{Dir: e.monitorDir(rec.ID)}.Kill(ctx, sig, sig == syscall.SIGKILL)
}

// Wait waits for a container to stop running (condition "not-running",
// the default), to exit next ("next-exit") or to be removed ("removed"),
// and returns its exit code.
func (e *Engine) Wait(ctx context.Context, ref, condition string) (int, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return 0, err
	}
	switch condition {
	case "", "not-running", "next-exit", "removed":
	default:
		return 0, invalid{fmt.Errorf("wait condition %q: not-running, next-exit or removed", condition)}
	}
	// The next exit is the running run's, or else the next run's.
	c.mu.Lock()
	target := c.runs
	if c.rec.State.Status != Running {
		target++
	}
	c.mu.Unlock()
	for {
		c.mu.Lock()
		rec, removed, exits, changed := c.rec, c.removed, c.exits, c.changed
		c.mu.Unlock()
		switch condition {
		case "", "not-running":
			if rec.State.Status != Running && rec.State.Status != Restarting {
				return rec.State.ExitCode, nil
			}
		case "next-exit":
			if exits >= target {
				return rec.State.ExitCode, nil
			}
		case "removed":
			if removed {
				return rec.State.ExitCode, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// failAttaches ends the attaches waiting for a start that will not come.
func (e *Engine) failAttaches(c *container, err error) {
	c.mu.Lock()
	pending := c.attaches
	c.attaches = nil
	c.mu.Unlock()
	for _, a := range pending {
		a.done <- attachResult{err: err}
	}
}

// RemoveOptions shape a remove.
type RemoveOptions struct {
	// Force kills a running container first.
	Force bool
	// Volumes removes the container's anonymous volumes too.
	Volumes bool
}

// Remove removes a container: its layer, files and name.
func (e *Engine) Remove(ctx context.Context, ref string, o RemoveOptions) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if c.removed {
		return fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	rec := c.snapshot()
	if rec.State.Status == Running {
		if !o.Force {
			return fmt.Errorf("%w: you cannot remove a running container %s: stop it first, or force the removal", ErrConflict, rec.ID[:12])
		}
		mon := shim.Client{Dir: e.monitorDir(rec.ID)}
		e.update(c, func(r *Container) { r.State.StoppedByUser = true })
		c.mu.Lock()
		exited := c.exited
		c.mu.Unlock()
		mon.Kill(ctx, syscall.SIGKILL, true)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("container %s did not die after SIGKILL", rec.ID[:12])
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.update(c, func(r *Container) { r.State.Status = Removing })
	e.detach(c, rec)
	rootfs := filepath.Join(e.containerDir(rec.ID), "bundle", "rootfs")
	if err := snapshot.Unmount(rootfs); err != nil {
		return err
	}
	if err := e.cleanupFiles(rec.ID, rec.Snapshot); err != nil {
		return err
	}
	c.mu.Lock()
	c.removed = true
	close(c.gone)
	c.notifyLocked()
	c.mu.Unlock()
	e.failAttaches(c, fmt.Errorf("%w: %s was removed", ErrNotFound, rec.ID[:12]))
	e.mu.Lock()
	delete(e.containers, rec.ID)
	if e.names[rec.Name] == rec.ID {
		delete(e.names, rec.Name)
	}
	e.mu.Unlock()
	e.forgetExecs(rec.ID)
	for _, m := range rec.Spec.Mounts {
		if vol, err := e.volumes.get(m.Source); m.Type == "volume" && err == nil && vol.Anonymous && vol.Owner == rec.ID && o.Volumes {
			e.RemoveVolume(vol.Name, true)
		}
	}
	e.Events.publish(Event{Type: "container", Action: "destroy", ID: rec.ID, Attributes: map[string]string{"name": rec.Name, "image": rec.Image}})
	return nil
}

// cleanupFiles removes a container's layer and directories.
func (e *Engine) cleanupFiles(id, snap string) error {
	if snap == "" {
		snap = "container-" + id
	}
	snapshot.Unmount(filepath.Join(e.containerDir(id), "bundle", "rootfs"))
	if err := e.Images.Snapshots.Remove(snap); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("remove layer: %w", err)
	}
	os.RemoveAll(e.monitorDir(id))
	return os.RemoveAll(e.containerDir(id))
}

// Logs calls fn with a container's log entries; with o.Follow, until the
// container stops (or ctx ends).
func (e *Engine) Logs(ctx context.Context, ref string, o logs.ReadOptions, fn func(logs.Entry) error) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	rec, stop := c.rec, c.exited
	c.mu.Unlock()
	if rec.State.Status != Running && rec.State.Status != Restarting || stop == nil {
		closed := make(chan struct{})
		close(closed)
		stop = closed
	}
	err = logs.Read(ctx, e.logPath(rec.ID), o, stop, fn)
	if errors.Is(err, os.ErrNotExist) {
		return nil // never started: no log yet
	}
	return err
}

type pendingAttach struct {
	stdin, stdout, stderr bool
	done                  chan attachResult
}

type attachResult struct {
	conn net.Conn
	r    io.Reader
	err  error
}

// Attach connects to a container's streams (see shim.Client.Attach). A
// container that was created and not started yet is attached to when it
// starts: the call waits for that.
func (e *Engine) Attach(ctx context.Context, ref string, stdin, stdout, stderr bool) (net.Conn, io.Reader, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	rec := c.rec
	if rec.State.Status != Running {
		a := &pendingAttach{stdin: stdin, stdout: stdout, stderr: stderr, done: make(chan attachResult, 1)}
		c.attaches = append(c.attaches, a)
		c.mu.Unlock()
		select {
		case res := <-a.done:
			return res.conn, res.r, res.err
		case <-ctx.Done():
			c.mu.Lock()
			for i, p := range c.attaches {
				if p == a {
					c.attaches = append(c.attaches[:i], c.attaches[i+1:]...)
					break
				}
			}
			c.mu.Unlock()
			select {
			case res := <-a.done: // the start came meanwhile
				if res.conn != nil {
					res.conn.Close()
				}
			default:
			}
			return nil, nil, ctx.Err()
		}
	}
	c.mu.Unlock()
	return shim.Client{Dir: e.monitorDir(rec.ID)}.Attach(ctx, stdin, stdout, stderr)
}

// Resize sizes a running container's terminal.
func (e *Engine) Resize(ctx context.Context, ref string, rows, cols uint16) error {
	c, err := e.lookup(ref)
	if err != nil {
		return err
	}
	return shim.Client{Dir: e.monitorDir(c.snapshot().ID)}.Resize(ctx, rows, cols)
}

// parseSignal reads "SIGTERM", "TERM", "term" or "15".
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}
