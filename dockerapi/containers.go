package dockerapi

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/engine/logs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

func (s *Server) containerCreate(w http.ResponseWriter, r *http.Request) {
	var req container.CreateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	if req.Config == nil || req.Config.Image == "" {
		writeError(w, http.StatusBadRequest, "no image given: Config.Image is empty")
		return
	}
	spec, err := specOf(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := s.Engine.Create(r.Context(), engine.CreateOptions{Name: r.URL.Query().Get("name"), Image: req.Config.Image, Spec: spec})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, container.CreateResponse{ID: c.ID, Warnings: []string{}})
}

// specOf turns an Engine API create request into the engine's spec,
// refusing what Berth does not do rather than ignoring it.
func specOf(req container.CreateRequest) (engine.Spec, error) {
	cfg := req.Config
	hc := req.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	sp := engine.Spec{
		Cmd: cfg.Cmd, Env: cfg.Env, WorkingDir: cfg.WorkingDir, User: cfg.User,
		Hostname: cfg.Hostname, Labels: cfg.Labels, Tty: cfg.Tty, OpenStdin: cfg.OpenStdin,
		StdinOnce: cfg.StdinOnce, StopSignal: cfg.StopSignal, StopTimeout: cfg.StopTimeout,
		ReadOnly: hc.ReadonlyRootfs, Privileged: hc.Privileged, CapAdd: hc.CapAdd, CapDrop: hc.CapDrop,
		AutoRemove: hc.AutoRemove, Runtime: hc.Runtime,
		Restart:   engine.RestartPolicy{Name: string(hc.RestartPolicy.Name), MaxRetries: hc.RestartPolicy.MaximumRetryCount},
		Resources: engine.Resources{Memory: hc.Memory, NanoCPUs: hc.NanoCPUs},
	}
	if cfg.Entrypoint != nil {
		sp.Entrypoint = cfg.Entrypoint
		if len(sp.Entrypoint) == 1 && sp.Entrypoint[0] == "" {
			sp.Entrypoint = []string{} // --entrypoint "": none
		}
	}
	if sp.Restart.Name == "no" {
		sp.Restart.Name = ""
	}
	if hc.PidsLimit != nil && *hc.PidsLimit > 0 {
		sp.Resources.PidsLimit = *hc.PidsLimit
	}
	if hc.CPUQuota > 0 {
		period := hc.CPUPeriod
		if period == 0 {
			period = 100000
		}
		sp.Resources.NanoCPUs = hc.CPUQuota * 1e9 / period
	}
	switch mode := string(hc.NetworkMode); mode {
	case "", "default", "bridge":
		sp.Network = ""
	default:
		if strings.HasPrefix(mode, "container:") {
			return sp, fmt.Errorf("network mode %q is not supported", mode)
		}
		sp.Network = mode
	}
	if h := cfg.Healthcheck; h != nil {
		sp.Healthcheck = &engine.Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	if err := unsupported(cfg, hc); err != nil {
		return sp, err
	}
	for dst := range cfg.Volumes {
		sp.Mounts = append(sp.Mounts, engine.Mount{Type: "volume", Destination: dst})
	}
	for _, b := range hc.Binds {
		m, err := parseBind(b)
		if err != nil {
			return sp, err
		}
		sp.Mounts = append(sp.Mounts, m)
	}
	for dst, opts := range hc.Tmpfs {
		m := engine.Mount{Type: "tmpfs", Destination: dst}
		if opts != "" {
			for _, o := range strings.Split(opts, ",") {
				if o == "ro" {
					m.ReadOnly = true
					continue
				}
				m.Options = append(m.Options, o)
			}
		}
		sp.Mounts = append(sp.Mounts, m)
	}
	for _, mt := range hc.Mounts {
		m := engine.Mount{Source: mt.Source, Destination: mt.Target, ReadOnly: mt.ReadOnly}
		switch mt.Type {
		case mount.TypeBind:
			m.Type = "bind"
		case mount.TypeVolume:
			m.Type = "volume"
		case mount.TypeTmpfs:
			m.Type = "tmpfs"
			if o := mt.TmpfsOptions; o != nil {
				if o.SizeBytes > 0 {
					m.Options = append(m.Options, fmt.Sprintf("size=%d", o.SizeBytes))
				}
				if o.Mode != 0 {
					m.Options = append(m.Options, fmt.Sprintf("mode=%o", o.Mode))
				}
			}
		default:
			return sp, fmt.Errorf("mount %s: type %q is not bind, volume or tmpfs", mt.Target, mt.Type)
		}
		sp.Mounts = append(sp.Mounts, m)
	}
	for port, bindings := range hc.PortBindings {
		for _, b := range bindings {
			hp := uint64(0)
			if b.HostPort != "" {
				var err error
				if hp, err = strconv.ParseUint(b.HostPort, 10, 16); err != nil {
					return sp, fmt.Errorf("invalid host port %q for %s", b.HostPort, port)
				}
			}
			pm := engine.PortMapping{HostPort: uint16(hp), ContainerPort: port.Num(), Protocol: string(port.Proto())}
			if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
				pm.HostIP = b.HostIP.String()
			}
			sp.Ports = append(sp.Ports, pm)
		}
	}
	return sp, nil
}

// unsupported refuses what Berth would otherwise drop on the floor: a
// container that silently lacked no-new-privileges, a device or a DNS
// server it was asked for would be worse than an error.
func unsupported(cfg *container.Config, hc *container.HostConfig) error {
	var what []string
	if len(hc.SecurityOpt) > 0 {
		what = append(what, "--security-opt")
	}
	if len(hc.Devices) > 0 || len(hc.DeviceRequests) > 0 || len(hc.DeviceCgroupRules) > 0 {
		what = append(what, "--device")
	}
	if len(hc.Ulimits) > 0 {
		what = append(what, "--ulimit")
	}
	if hc.PublishAllPorts {
		what = append(what, "--publish-all")
	}
	if len(hc.DNS) > 0 || len(hc.DNSOptions) > 0 || len(hc.DNSSearch) > 0 {
		what = append(what, "--dns")
	}
	if len(hc.ExtraHosts) > 0 {
		what = append(what, "--add-host")
	}
	if len(hc.VolumesFrom) > 0 {
		what = append(what, "--volumes-from")
	}
	if hc.PidMode != "" || hc.IpcMode != "" && hc.IpcMode != "private" && hc.IpcMode != "shareable" || hc.UTSMode != "" || hc.UsernsMode != "" {
		what = append(what, "--pid/--ipc/--uts/--userns")
	}
	if len(hc.Sysctls) > 0 {
		what = append(what, "--sysctl")
	}
	if len(what) > 0 {
		return fmt.Errorf("not supported by Berth yet: %s", strings.Join(what, ", "))
	}
	return nil
}

// parseBind reads -v's SRC:DST[:OPTS]: an absolute SRC is a host path,
// anything else a named volume; a lone DST is an anonymous volume.
func parseBind(b string) (engine.Mount, error) {
	parts := strings.Split(b, ":")
	var m engine.Mount
	switch len(parts) {
	case 1:
		m = engine.Mount{Type: "volume", Destination: parts[0]}
	case 2, 3:
		m = engine.Mount{Type: "bind", Source: parts[0], Destination: parts[1]}
		if !filepath.IsAbs(parts[0]) {
			m.Type = "volume"
		}
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro":
					m.ReadOnly = true
				case "rw", "z", "Z", "rprivate", "private", "":
				default:
					return m, fmt.Errorf("invalid volume specification %q: unknown option %q", b, o)
				}
			}
		}
	default:
		return m, fmt.Errorf("invalid volume specification %q: SOURCE:DESTINATION[:ro]", b)
	}
	if m.Source == "" && len(parts) > 1 {
		return m, fmt.Errorf("invalid volume specification %q: empty source", b)
	}
	return m, nil
}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) {
	all := boolParam(r, "all")
	filters, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if v, ok := filters["status"]; ok && len(v) > 0 {
		all = true
	}
	out := []container.Summary{}
	for _, c := range s.Engine.List() {
		if !all && c.State.Status != engine.Running && c.State.Status != engine.Restarting {
			continue
		}
		if !matchFilters(c, filters) {
			continue
		}
		out = append(out, s.summary(c))
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n < len(out) {
		out = out[:n]
	}
	writeJSON(w, http.StatusOK, out)
}

func parseFilters(raw string) (map[string][]string, error) {
	out := map[string][]string{}
	if raw == "" {
		return out, nil
	}
	// Docker's filters: {"name":{"x":true}} (and an older {"name":["x"]}).
	var m map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &m); err == nil {
		for k, vs := range m {
			for v := range vs {
				out[k] = append(out[k], v)
			}
		}
		return out, nil
	}
	var l map[string][]string
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return nil, fmt.Errorf("invalid filters %q: %v", raw, err)
	}
	return l, nil
}

func matchFilters(c engine.Container, f map[string][]string) bool {
	any := func(k string, ok func(string) bool) bool {
		vs, set := f[k]
		if !set {
			return true
		}
		for _, v := range vs {
			if ok(v) {
				return true
			}
		}
		return false
	}
	return any("name", func(v string) bool { return strings.Contains(c.Name, strings.TrimPrefix(v, "/")) }) &&
		any("id", func(v string) bool { return strings.HasPrefix(c.ID, v) }) &&
		any("status", func(v string) bool { return c.State.Status == v }) &&
		any("ancestor", func(v string) bool { return c.Image == v || strings.HasPrefix(c.ImageID.String(), v) }) &&
		any("label", func(v string) bool {
			k, val, hasVal := strings.Cut(v, "=")
			got, ok := c.Spec.Labels[k]
			return ok && (!hasVal || got == val)
		})
}

// status is ps's STATUS column as Docker words it.
func status(c engine.Container, health string) string {
	st := c.State
	now := time.Now()
	switch st.Status {
	case engine.Running:
		s := "Up " + units.HumanDuration(now.Sub(st.StartedAt))
		if health != "" {
			s += " (" + health + ")"
		}
		return s
	case engine.Restarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, units.HumanDuration(now.Sub(st.FinishedAt)))
	case engine.Exited:
		if st.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, units.HumanDuration(now.Sub(st.FinishedAt)))
	case engine.Created:
		return "Created"
	case engine.Removing:
		return "Removal In Progress"
	}
	return st.Status
}

func command(c engine.Container, args []string) string {
	return strings.Join(args, " ")
}

func (s *Server) summary(c engine.Container) container.Summary {
	path, args := c.Path, c.Args
	sum := container.Summary{
		ID: c.ID, Names: []string{"/" + c.Name}, Image: c.Image, ImageID: c.ImageID.String(),
		Command: command(c, append([]string{path}, args...)), Created: c.Created.Unix(),
		Ports: []container.PortSummary{}, Labels: c.Spec.Labels, State: container.ContainerState(c.State.Status),
		Mounts: mountPoints(c),
	}
	if sum.Labels == nil {
		sum.Labels = map[string]string{}
	}
	var health string
	if h := c.State.Health; h != nil {
		health = h.Status
		sum.Health = &container.HealthSummary{Status: container.HealthStatus(h.Status), FailingStreak: h.FailingStreak}
	}
	sum.Status = status(c, health)
	sum.HostConfig.NetworkMode = networkMode(c)
	sum.NetworkSettings = &container.NetworkSettingsSummary{Networks: endpoints(c)}
	for _, p := range publishedPorts(c) {
		ps := container.PortSummary{PrivatePort: p.ContainerPort, PublicPort: p.HostPort, Type: p.Protocol}
		ip := p.HostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		ps.IP, _ = netip.ParseAddr(ip)
		sum.Ports = append(sum.Ports, ps)
	}
	return sum
}

// publishedPorts are the ports as they are published now (with the host
// ports allocated for -p CONTAINER), or as asked while not running.
func publishedPorts(c engine.Container) []engine.PortMapping {
	if c.State.Status == engine.Running && c.State.Net != nil {
		return c.State.Net.Ports
	}
	return c.Spec.Ports
}

func networkMode(c engine.Container) string {
	if c.Spec.Network == "" {
		return "bridge"
	}
	return c.Spec.Network
}

func endpoints(c engine.Container) map[string]*network.EndpointSettings {
	eps := map[string]*network.EndpointSettings{}
	switch c.Spec.Network {
	case "none", "host":
		eps[c.Spec.Network] = &network.EndpointSettings{}
		return eps
	}
	ep := &network.EndpointSettings{}
	if n := c.State.Net; n != nil {
		ep.NetworkID = n.NetworkID
		ep.EndpointID = n.Interface
		ep.IPAddress, _ = netip.ParseAddr(n.IP)
		ep.Gateway, _ = netip.ParseAddr(n.Gateway)
		ep.IPPrefixLen = n.PrefixLen
		if mac, err := net.ParseMAC(n.MAC); err == nil {
			ep.MacAddress = network.HardwareAddr(mac)
		}
	}
	eps[networkMode(c)] = ep
	return eps
}

func mountPoints(c engine.Container) []container.MountPoint {
	out := []container.MountPoint{}
	for _, m := range c.Spec.Mounts {
		mp := container.MountPoint{Type: mount.Type(m.Type), Source: m.Source, Destination: m.Destination, RW: !m.ReadOnly}
		if m.Type == "volume" {
			mp.Name, mp.Driver = m.Source, "local"
		}
		out = append(out, mp)
	}
	return out
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.Format(time.RFC3339Nano)
}

func (s *Server) containerInspect(w http.ResponseWriter, r *http.Request) {
	c, err := s.Engine.Get(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.inspect(c))
}

func (s *Server) inspect(c engine.Container) container.InspectResponse {
	st := c.State
	path, args := c.Path, c.Args
	dir := s.Engine.ContainerDir(c.ID)
	resp := container.InspectResponse{
		ID: c.ID, Created: timeString(c.Created), Path: path, Args: args, Image: c.ImageID.String(),
		Name: "/" + c.Name, RestartCount: st.RestartCount, Driver: "overlay", Platform: "linux",
		ResolvConfPath: filepath.Join(dir, "resolv.conf"), HostnamePath: filepath.Join(dir, "hostname"),
		HostsPath: filepath.Join(dir, "hosts"), LogPath: filepath.Join(dir, "log.json"),
		ExecIDs: s.Engine.ExecIDs(c.ID), Mounts: mountPoints(c),
		State: &container.State{
			Status: container.ContainerState(st.Status), Running: st.Status == engine.Running,
			Restarting: st.Status == engine.Restarting, Dead: st.Status == engine.Dead,
			Pid: st.Pid, ExitCode: st.ExitCode, Error: st.Error,
			StartedAt: timeString(st.StartedAt), FinishedAt: timeString(st.FinishedAt),
		},
	}
	if h := st.Health; h != nil {
		resp.State.Health = &container.Health{Status: container.HealthStatus(h.Status), FailingStreak: h.FailingStreak}
		for _, l := range h.Log {
			resp.State.Health.Log = append(resp.State.Health.Log, &container.HealthcheckResult{Start: l.Start, End: l.End, ExitCode: l.ExitCode, Output: l.Output})
		}
	}
	sp := c.Spec
	cfg := &container.Config{
		Hostname: sp.Hostname, User: sp.User, Tty: sp.Tty, OpenStdin: sp.OpenStdin, StdinOnce: sp.StdinOnce,
		Env: c.Env, Cmd: sp.Cmd, Image: c.Image, WorkingDir: sp.WorkingDir, Entrypoint: sp.Entrypoint,
		Labels: sp.Labels, StopSignal: sp.StopSignal, StopTimeout: sp.StopTimeout,
	}
	if cfg.Hostname == "" {
		cfg.Hostname = c.ID[:12]
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	if h := sp.Healthcheck; h != nil {
		cfg.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	resp.Config = cfg
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(networkMode(c)), AutoRemove: sp.AutoRemove, Privileged: sp.Privileged,
		ReadonlyRootfs: sp.ReadOnly, CapAdd: sp.CapAdd, CapDrop: sp.CapDrop, Runtime: sp.Runtime,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(sp.Restart.Name), MaximumRetryCount: sp.Restart.MaxRetries},
		LogConfig:     container.LogConfig{Type: "json-file"},
		PortBindings:  network.PortMap{},
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = "no"
	}
	hc.Memory, hc.NanoCPUs = sp.Resources.Memory, sp.Resources.NanoCPUs
	if sp.Resources.PidsLimit > 0 {
		l := sp.Resources.PidsLimit
		hc.PidsLimit = &l
	}
	ports := network.PortMap{}
	for _, p := range sp.Ports {
		port, err := network.ParsePort(fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol))
		if err != nil {
			continue
		}
		b := network.PortBinding{HostPort: strconv.Itoa(int(p.HostPort))}
		if p.HostIP != "" {
			b.HostIP, _ = netip.ParseAddr(p.HostIP)
		}
		hc.PortBindings[port] = append(hc.PortBindings[port], b)
	}
	if st.Status == engine.Running && st.Net != nil {
		for _, p := range st.Net.Ports {
			port, err := network.ParsePort(fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol))
			if err != nil {
				continue
			}
			b := network.PortBinding{HostPort: strconv.Itoa(int(p.HostPort)), HostIP: netip.IPv4Unspecified()}
			if p.HostIP != "" {
				b.HostIP, _ = netip.ParseAddr(p.HostIP)
			}
			ports[port] = append(ports[port], b)
		}
	}
	resp.HostConfig = hc
	resp.NetworkSettings = &container.NetworkSettings{Ports: ports, Networks: endpoints(c)}
	if n := st.Net; n != nil {
		resp.NetworkSettings.SandboxKey = n.Netns
	}
	return resp
}

func (s *Server) containerStart(w http.ResponseWriter, r *http.Request) {
	c, err := s.Engine.Get(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if c.State.Status == engine.Running {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if err := s.Engine.Start(r.Context(), c.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// stopTimeout reads ?t= (seconds; -1 waits for ever).
func stopTimeout(r *http.Request) (*time.Duration, error) {
	v := r.URL.Query().Get("t")
	if v == "" {
		v = r.URL.Query().Get("timeout")
	}
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("invalid stop timeout %q: seconds", v)
	}
	d := time.Duration(n) * time.Second
	if n < 0 {
		d = -1
	}
	return &d, nil
}

func (s *Server) containerStop(w http.ResponseWriter, r *http.Request) {
	t, err := stopTimeout(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := s.Engine.Get(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if c.State.Status != engine.Running && c.State.Status != engine.Restarting {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if sig := r.URL.Query().Get("signal"); sig != "" {
		// Docker's stop --signal: the signal first, then the timeout.
		if err := s.Engine.Kill(r.Context(), c.ID, sig); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if err := s.Engine.Stop(r.Context(), c.ID, t); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerRestart(w http.ResponseWriter, r *http.Request) {
	t, err := stopTimeout(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.PathValue("id")
	if err := s.Engine.Stop(r.Context(), id, t); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.Engine.Start(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerKill(w http.ResponseWriter, r *http.Request) {
	sig := r.URL.Query().Get("signal")
	if sig == "" {
		sig = "KILL"
	}
	if err := s.Engine.Kill(r.Context(), r.PathValue("id"), sig); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerWait(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.Engine.Get(id); err != nil {
		s.fail(w, r, err)
		return
	}
	cond := r.URL.Query().Get("condition")
	// The client starts the container only once these headers are in:
	// they go out now, the body at the exit.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).Flush()
	code, err := s.Engine.Wait(r.Context(), id, cond)
	resp := container.WaitResponse{StatusCode: int64(code)}
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		resp.Error = &container.WaitExitError{Message: err.Error()}
	}
	json.NewEncoder(w).Encode(resp)
}

func (s *Server) containerRemove(w http.ResponseWriter, r *http.Request) {
	err := s.Engine.Remove(r.Context(), r.PathValue("id"), engine.RemoveOptions{Force: boolParam(r, "force"), Volumes: boolParam(r, "v")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// frameWriter writes Docker's multiplexed stream: an 8-byte header
// (stream, 0, 0, 0, big-endian length) before each payload.
type frameWriter struct {
	w      io.Writer
	stream byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	var h [8]byte
	h[0] = f.stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(p)))
	if _, err := f.w.Write(h[:]); err != nil {
		return 0, err
	}
	return f.w.Write(p)
}

func parseTime(v string) (time.Time, error) {
	if v == "" || v == "0" {
		return time.Time{}, nil
	}
	// Unix seconds with an optional fraction, as the CLI sends them.
	sec, frac, _ := strings.Cut(v, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("invalid time %q", v)
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		ns, _ = strconv.ParseInt(frac, 10, 64)
	}
	return time.Unix(n, ns), nil
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := s.Engine.Get(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o := logs.ReadOptions{Tail: -1, Follow: boolParam(r, "follow")}
	if t := q.Get("tail"); t != "" && t != "all" {
		if o.Tail, err = strconv.Atoi(t); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid tail %q: a number or all", t))
			return
		}
	}
	if o.Since, err = parseTime(q.Get("since")); err == nil {
		o.Until, err = parseTime(q.Get("until"))
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	stdout, stderr := boolParam(r, "stdout"), boolParam(r, "stderr")
	if !stdout && !stderr {
		writeError(w, http.StatusBadRequest, "you must choose at least one stream")
		return
	}
	if !stdout {
		o.Streams = []string{"stderr"}
	} else if !stderr {
		o.Streams = []string{"stdout"}
	}
	timestamps := boolParam(r, "timestamps")
	if c.Spec.Tty {
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
	} else {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	out, errw := io.Writer(w), io.Writer(w)
	if !c.Spec.Tty {
		out, errw = frameWriter{w, 1}, frameWriter{w, 2}
	}
	s.Engine.Logs(r.Context(), c.ID, o, func(e logs.Entry) error {
		dst := out
		if e.Stream == "stderr" {
			dst = errw
		}
		line := e.Log
		if timestamps {
			line = e.Time.UTC().Format(time.RFC3339Nano) + " " + line
		}
		if _, err := io.WriteString(dst, line); err != nil {
			return err
		}
		if o.Follow {
			return rc.Flush()
		}
		return nil
	})
}

// hijack takes over the connection after a 101, as attach and exec
// start answer: from then on it carries the streams both ways.
func hijack(w http.ResponseWriter, tty bool) (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	ct := "application/vnd.docker.multiplexed-stream"
	if tty {
		ct = "application/vnd.docker.raw-stream"
	}
	fmt.Fprintf(brw, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", ct)
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, brw, nil
}

// splice carries a hijacked client's input to a monitor's attach and the
// monitor's output back, until the output ends: then the client's
// connection is closed, which is how the docker CLI learns the process
// is gone. The client's half-close (end of its stdin) is passed on.
//
// beforeClose, if set, runs between the end of the output and the close:
// an exec's exit code is recorded there, since the client asks for it as
// soon as its connection ends.
func splice(client net.Conn, cr io.Reader, mon net.Conn, mr io.Reader, stdin bool, beforeClose func()) {
	if stdin {
		go func() {
			io.Copy(mon, cr)
			if cw, ok := mon.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}()
	}
	io.Copy(client, mr)
	mon.Close()
	if beforeClose != nil {
		beforeClose()
	}
	client.Close()
}

func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request) {
	c, err := s.Engine.Get(r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !boolParam(r, "stream") {
		// Only logs were asked for (attach?logs=1): none are replayed.
		w.WriteHeader(http.StatusOK)
		return
	}
	stdin, stdout, stderr := boolParam(r, "stdin"), boolParam(r, "stdout"), boolParam(r, "stderr")
	client, brw, err := hijack(w, c.Spec.Tty)
	if err != nil {
		return
	}
	// The request's context ends with the hijack. An attach made before
	// the start waits for it; a client's end of stdin (the docker CLI
	// half-closes at once without -i) is no reason to give up. A start
	// that fails, or a removal, ends the wait.
	mon, mr, err := s.Engine.Attach(context.Background(), c.ID, stdin, stdout, stderr)
	if err != nil {
		frameWriter{client, 3}.Write([]byte(err.Error() + "\n"))
		client.Close()
		return
	}
	splice(client, brw, mon, mr, stdin, nil)
}

func (s *Server) containerResize(w http.ResponseWriter, r *http.Request) {
	h, errH := strconv.ParseUint(r.URL.Query().Get("h"), 10, 16)
	wd, errW := strconv.ParseUint(r.URL.Query().Get("w"), 10, 16)
	if errH != nil || errW != nil {
		writeError(w, http.StatusBadRequest, "resize needs h and w, the terminal's rows and columns")
		return
	}
	if err := s.Engine.Resize(r.Context(), r.PathValue("id"), uint16(h), uint16(wd)); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) containerTop(w http.ResponseWriter, r *http.Request) {
	titles, rows, err := s.Engine.Top(r.Context(), r.PathValue("id"), r.URL.Query().Get("ps_args"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rows == nil {
		rows = [][]string{}
	}
	writeJSON(w, http.StatusOK, container.TopResponse{Titles: titles, Processes: rows})
}
