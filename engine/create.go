package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/runspec"
)

// CreateOptions are a container's name, image and spec.
type CreateOptions struct {
	Name  string
	Image string
	Spec  Spec
}

// validName is Docker's container name grammar.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ErrInvalid: what was asked for is malformed or impossible.
var ErrInvalid = errors.New("invalid argument")

// invalid marks an error as ErrInvalid and keeps its own message.
type invalid struct{ error }

func (invalid) Is(target error) bool { return target == ErrInvalid }
func (i invalid) Unwrap() error      { return i.error }

// ErrImageNotFound: the image is not in the store.
var ErrImageNotFound = errors.New("no such image")

// Create makes a container: its record, its read-write layer on the
// image, nothing running. Whatever fails leaves nothing behind.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (Container, error) {
	if err := e.validate(&o.Spec); err != nil {
		return Container{}, invalid{err}
	}
	if o.Name != "" && !validName.MatchString(strings.TrimPrefix(o.Name, "/")) {
		return Container{}, invalid{fmt.Errorf("invalid container name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", o.Name)}
	}
	img, err := e.Images.Get(o.Image)
	if err != nil {
		if errors.Is(err, image.ErrNotFound) {
			return Container{}, fmt.Errorf("%w: %s", ErrImageNotFound, o.Image)
		}
		return Container{}, err
	}
	m, _, err := e.Images.Manifest(img.Target, "")
	if err != nil {
		return Container{}, err
	}
	icfg, err := e.Images.Config(m)
	if err != nil {
		return Container{}, err
	}
	opts := runspec.Options{Entrypoint: o.Spec.Entrypoint, Cmd: o.Spec.Cmd, Env: o.Spec.Env, Terminal: o.Spec.Tty}
	args, err := runspec.Command(icfg.Config, opts)
	if err != nil {
		return Container{}, invalid{err}
	}
	env, err := runspec.Environment(icfg.Config, opts)
	if err != nil {
		return Container{}, invalid{err}
	}
	res, err := e.Images.Unpack(img.Target, "")
	if err != nil {
		return Container{}, fmt.Errorf("unpack %s: %w", o.Image, err)
	}
	id := newID()
	o.Spec.Healthcheck = mergeHealthcheck(o.Spec.Healthcheck, e.imageHealthcheck(m))
	o.Spec.Mounts = withImageVolumes(o.Spec.Mounts, runspec.Volumes(icfg))
	made, err := e.volumes.prepare(o.Spec.Mounts, id)
	if err != nil {
		return Container{}, err
	}
	name := strings.TrimPrefix(o.Name, "/")
	if err := e.reserveName(&name, id); err != nil {
		e.volumes.removeAll(made)
		return Container{}, err
	}
	rec := Container{
		ID: id, Name: name, Created: time.Now().UTC(), Image: o.Image, ImageID: img.ID,
		Spec: o.Spec, Path: args[0], Args: args[1:], Env: env, State: State{Status: Created}, Snapshot: "container-" + id,
	}
	dir := e.containerDir(id)
	fail := func(err error) (Container, error) {
		e.volumes.removeAll(made)
		e.Images.Snapshots.Remove(rec.Snapshot)
		os.RemoveAll(dir)
		e.mu.Lock()
		delete(e.names, name)
		e.mu.Unlock()
		return Container{}, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "bundle", "rootfs"), 0o700); err != nil {
		return fail(err)
	}
	if _, err := e.Images.Snapshots.Prepare(rec.Snapshot, res.ChainID.String(), map[string]string{"berth.container": id}); err != nil {
		return fail(err)
	}
	if err := rec.save(dir); err != nil {
		return fail(err)
	}
	e.mu.Lock()
	e.containers[id] = newContainer(rec)
	e.mu.Unlock()
	e.Events.publish(Event{Type: "container", Action: "create", ID: id, Attributes: map[string]string{"name": name, "image": o.Image}})
	return rec, nil
}

// reserveName takes name for id, or makes one up when it is empty.
func (e *Engine) reserveName(name *string, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if *name == "" {
		for {
			*name = left[rand.IntN(len(left))] + "_" + right[rand.IntN(len(right))]
			if _, taken := e.names[*name]; !taken {
				break
			}
			*name += fmt.Sprint(rand.IntN(10))
			if _, taken := e.names[*name]; !taken {
				break
			}
		}
	}
	if other, taken := e.names[*name]; taken {
		return fmt.Errorf("%w: the container name %q is already in use by container %q: remove (or rename) that container to reuse the name", ErrConflict, "/"+*name, other)
	}
	e.names[*name] = id
	return nil
}

// Words of made-up names, as Docker's adjective_surname.
var (
	left  = []string{"brave", "calm", "eager", "fond", "keen", "lucid", "merry", "nimble", "quiet", "sharp", "steady", "swift", "tidy", "vivid", "wise", "zealous"}
	right = []string{"anchor", "beacon", "cargo", "dock", "ferry", "harbor", "hull", "jetty", "keel", "mast", "pier", "quay", "rudder", "sail", "tide", "wharf"}
)

// validate checks a spec before anything is made of it, naming what is
// wrong.
func (e *Engine) validate(s *Spec) error {
	if s.Runtime != "" {
		if _, ok := e.cfg.Runtimes[s.Runtime]; !ok {
			names := make([]string, 0, len(e.cfg.Runtimes))
			for n := range e.cfg.Runtimes {
				names = append(names, n)
			}
			return fmt.Errorf("unknown runtime %q (configured: %s)", s.Runtime, strings.Join(names, ", "))
		}
	}
	switch s.Restart.Name {
	case "", "no", "always", "unless-stopped":
		if s.Restart.MaxRetries != 0 {
			return fmt.Errorf("restart policy %q takes no maximum retry count", s.Restart.Name)
		}
	case "on-failure":
		if s.Restart.MaxRetries < 0 {
			return errors.New("restart policy on-failure: the maximum retry count cannot be negative")
		}
	default:
		return fmt.Errorf("invalid restart policy %q: no, on-failure[:N], always or unless-stopped", s.Restart.Name)
	}
	if s.AutoRemove && s.Restart.Name != "" && s.Restart.Name != "no" {
		return errors.New("--rm and a restart policy cannot go together")
	}
	switch s.Network {
	case "none", "host":
	default:
		if e.cfg.Networks == nil {
			if s.Network == "" {
				break
			}
			return fmt.Errorf("network %s not found: this engine has no networks configured", s.Network)
		}
		if _, err := e.cfg.Networks.Get(e.networkOf(*s)); err != nil {
			return fmt.Errorf("network %s not found", s.Network)
		}
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) || filepath.Clean(m.Destination) == "/" {
			return fmt.Errorf("mount destination %q must be an absolute path other than /", m.Destination)
		}
		switch m.Type {
		case "bind":
			if !filepath.IsAbs(m.Source) {
				return fmt.Errorf("bind source %q must be an absolute path", m.Source)
			}
			if _, err := os.Stat(m.Source); err != nil {
				return fmt.Errorf("bind source path does not exist: %s", m.Source)
			}
		case "tmpfs":
		case "volume":
			if m.Source != "" && !validName.MatchString(m.Source) {
				return fmt.Errorf("invalid volume name %q: [a-zA-Z0-9][a-zA-Z0-9_.-]*", m.Source)
			}
		default:
			return fmt.Errorf("mount %s: type %q is not bind, volume or tmpfs", m.Destination, m.Type)
		}
	}
	if s.Resources.Memory < 0 || (s.Resources.Memory > 0 && s.Resources.Memory < 6<<20) {
		return fmt.Errorf("memory limit %d is below the minimum of 6 MiB", s.Resources.Memory)
	}
	if s.Resources.NanoCPUs < 0 {
		return errors.New("cpus cannot be negative")
	}
	if s.StopSignal != "" {
		if _, err := parseSignal(s.StopSignal); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, p := range s.Ports {
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("port %d: protocol %q is not tcp or udp", p.ContainerPort, p.Protocol)
		}
		if p.ContainerPort == 0 {
			return errors.New("a published port needs a container port (1-65535)")
		}
		if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
			return fmt.Errorf("port %d: host address %q is not an IP address", p.ContainerPort, p.HostIP)
		}
		if s.Network == "none" || s.Network == "host" {
			return fmt.Errorf("ports cannot be published with --network %s", s.Network)
		}
		key := fmt.Sprintf("%s:%d/%s", p.HostIP, p.HostPort, p.Protocol)
		if p.HostPort != 0 && seen[key] {
			return fmt.Errorf("host port %s is published twice", key)
		}
		seen[key] = true
	}
	if h := s.Healthcheck; h != nil && len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE":
		case "CMD", "CMD-SHELL":
			if len(h.Test) < 2 {
				return fmt.Errorf("health check %s has no command", h.Test[0])
			}
		default:
			return fmt.Errorf("health check test %q: NONE, CMD or CMD-SHELL", h.Test[0])
		}
		if h.Interval < 0 || h.Timeout < 0 || h.StartPeriod < 0 || h.Retries < 0 {
			return errors.New("health check interval, timeout, start period and retries cannot be negative")
		}
	}
	return nil
}
