package enginecmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// runFlags are docker run's (and create's) flags.
type runFlags struct {
	detach, rm, interactive, tty, readOnly, privileged, noHealthcheck  bool
	name, workdir, user, entrypoint, memory, network, restart, runtime string
	hostname, stopSignal, pull                                         string
	healthCmd                                                          string
	healthInterval, healthTimeout, healthStart                         time.Duration
	healthRetries, stopTimeout                                         int
	cpus                                                               float64
	pidsLimit                                                          int64
	env, envFile, publish, volume, tmpfs, capAdd, capDrop, labels      []string
	entrypointSet, stopTimeoutSet                                      bool
}

func (f *runFlags) register(cmd *cobra.Command, run bool) {
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	if run {
		fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container's ID")
	}
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open and attach it")
	fl.BoolVarP(&f.tty, "tty", "t", false, "give the container a terminal")
	fl.StringVar(&f.name, "name", "", "name the container")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to pass this one's)")
	fl.StringArrayVar(&f.envFile, "env-file", nil, "read environment variables from a file, one KEY=VALUE per line")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port: [IP:][HOST:]CONTAINER[/tcp|udp]")
	fl.StringArrayVarP(&f.volume, "volume", "v", nil, "mount a host path or volume: SRC:DST[:ro], or DST for an anonymous volume")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs: DST[:OPTIONS]")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory in the container")
	fl.StringVarP(&f.user, "user", "u", "", "user to run as: name|uid[:group|gid]")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "replace the image's entrypoint")
	fl.StringVarP(&f.memory, "memory", "m", "", "memory limit (e.g. 64m, 1g)")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPUs the container may use (e.g. 0.5)")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "most processes the container may have (0: no limit)")
	fl.StringVar(&f.network, "network", "", "network to join: a network's name, none or host (default bridge)")
	fl.StringVar(&f.restart, "restart", "no", "restart policy: no, on-failure[:N], always, unless-stopped")
	fl.StringVar(&f.healthCmd, "health-cmd", "", "command to check health (run with /bin/sh -c)")
	fl.DurationVar(&f.healthInterval, "health-interval", 0, "time between health checks (default 30s)")
	fl.DurationVar(&f.healthTimeout, "health-timeout", 0, "time a health check may take (default 30s)")
	fl.DurationVar(&f.healthStart, "health-start-period", 0, "time after start in which failed checks do not count")
	fl.IntVar(&f.healthRetries, "health-retries", 0, "failures in a row that make the container unhealthy (default 3)")
	fl.BoolVar(&f.noHealthcheck, "no-healthcheck", false, "turn off the image's HEALTHCHECK")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "add a capability (e.g. NET_ADMIN, or ALL)")
	fl.StringArrayVar(&f.capDrop, "cap-drop", nil, "drop a capability (e.g. CHOWN, or ALL)")
	fl.BoolVar(&f.privileged, "privileged", false, "give every capability and the host's devices")
	fl.StringVar(&f.runtime, "runtime", "", "low-level runtime: berth, runc, crun, or one the daemon's config names")
	fl.StringVarP(&f.hostname, "hostname", "h", "", "the container's host name")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set a label KEY=VALUE")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "signal that stops the container (default SIGTERM)")
	fl.IntVar(&f.stopTimeout, "stop-timeout", 0, "seconds stop waits before killing (default 10)")
	fl.StringVar(&f.pull, "pull", "missing", "pull the image: missing, always or never")
	// -h is --hostname here, as in docker run; help stays --help.
	cmd.Flags().BoolP("help", "", false, "help for "+cmd.Name())
}

// parsePort reads -p's [IP:][HOST:]CONTAINER[/PROTO].
func parsePort(s string) (network.Port, network.PortBinding, error) {
	spec, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return network.Port{}, network.PortBinding{}, fmt.Errorf("invalid port %q: protocol %q is not tcp or udp", s, proto)
	}
	var ip, host, ctr string
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 1:
		ctr = parts[0]
	case 2:
		host, ctr = parts[0], parts[1]
	case 3:
		ip, host, ctr = parts[0], parts[1], parts[2]
	default:
		if i := strings.LastIndex(spec, "]:"); strings.HasPrefix(spec, "[") && i > 0 {
			ip = spec[1:i]
			rest := strings.Split(spec[i+2:], ":")
			if len(rest) == 2 {
				host, ctr = rest[0], rest[1]
				break
			}
		}
		return network.Port{}, network.PortBinding{}, fmt.Errorf("invalid port %q: [IP:][HOST:]CONTAINER[/tcp|udp]", s)
	}
	cp, err := strconv.ParseUint(ctr, 10, 16)
	if err != nil || cp == 0 {
		return network.Port{}, network.PortBinding{}, fmt.Errorf("invalid port %q: container port %q is not 1-65535", s, ctr)
	}
	if host != "" {
		if hp, err := strconv.ParseUint(host, 10, 16); err != nil || hp == 0 {
			return network.Port{}, network.PortBinding{}, fmt.Errorf("invalid port %q: host port %q is not 1-65535", s, host)
		}
	}
	b := network.PortBinding{HostPort: host}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return network.Port{}, network.PortBinding{}, fmt.Errorf("invalid port %q: %q is not an IP address", s, ip)
		}
		b.HostIP = a
	}
	port, err := network.ParsePort(fmt.Sprintf("%d/%s", cp, proto))
	return port, b, err
}

func readEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, has := strings.Cut(line, "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: invalid variable %q", path, n, line)
		}
		if !has {
			if v, ok := os.LookupEnv(k); ok {
				line = k + "=" + v
			} else {
				continue
			}
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// options turns the flags and arguments into a create request, naming
// whatever is malformed.
func (f *runFlags) options(cmd *cobra.Command, args []string) (client.ContainerCreateOptions, error) {
	o := client.ContainerCreateOptions{Name: f.name}
	cfg := &container.Config{
		Image: args[0], Tty: f.tty, OpenStdin: f.interactive, StdinOnce: f.interactive,
		AttachStdin: f.interactive, AttachStdout: true, AttachStderr: true,
		WorkingDir: f.workdir, User: f.user, Hostname: f.hostname, StopSignal: f.stopSignal,
		Labels: map[string]string{},
	}
	if len(args) > 1 {
		cfg.Cmd = args[1:]
	}
	if cmd.Flags().Changed("entrypoint") {
		cfg.Entrypoint = []string{f.entrypoint}
		if f.entrypoint == "" {
			cfg.Entrypoint = []string{""}
		}
	}
	if cmd.Flags().Changed("stop-timeout") {
		cfg.StopTimeout = &f.stopTimeout
	}
	for _, ef := range f.envFile {
		env, err := readEnvFile(ef)
		if err != nil {
			return o, fmt.Errorf("--env-file: %w", err)
		}
		cfg.Env = append(cfg.Env, env...)
	}
	for _, e := range f.env {
		if !strings.Contains(e, "=") {
			v, ok := os.LookupEnv(e)
			if !ok {
				continue
			}
			e += "=" + v
		}
		cfg.Env = append(cfg.Env, e)
	}
	for _, l := range f.labels {
		k, v, _ := strings.Cut(l, "=")
		cfg.Labels[k] = v
	}
	hc := &container.HostConfig{
		AutoRemove: f.rm, ReadonlyRootfs: f.readOnly, Privileged: f.privileged, CapAdd: f.capAdd, CapDrop: f.capDrop,
		Runtime: f.runtime, Binds: f.volume, NetworkMode: container.NetworkMode(f.network),
		PortBindings: network.PortMap{}, Tmpfs: map[string]string{},
	}
	if hc.NetworkMode == "" {
		hc.NetworkMode = "default"
	}
	if f.memory != "" {
		n, err := units.RAMInBytes(f.memory)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("invalid --memory %q: a size such as 64m or 1g", f.memory)
		}
		hc.Memory = n
	}
	if f.cpus < 0 {
		return o, fmt.Errorf("invalid --cpus %v: cannot be negative", f.cpus)
	}
	hc.NanoCPUs = int64(f.cpus * 1e9)
	if f.pidsLimit != 0 {
		hc.PidsLimit = &f.pidsLimit
	}
	name, retries, hasN := strings.Cut(f.restart, ":")
	hc.RestartPolicy.Name = container.RestartPolicyMode(name)
	if hasN {
		n, err := strconv.Atoi(retries)
		if err != nil || n < 0 {
			return o, fmt.Errorf("invalid --restart %q: the retry count must be a number", f.restart)
		}
		hc.RestartPolicy.MaximumRetryCount = n
	}
	switch name {
	case "no", "always", "unless-stopped", "on-failure":
	default:
		return o, fmt.Errorf("invalid --restart %q: no, on-failure[:N], always or unless-stopped", f.restart)
	}
	for _, p := range f.publish {
		port, b, err := parsePort(p)
		if err != nil {
			return o, err
		}
		hc.PortBindings[port] = append(hc.PortBindings[port], b)
	}
	for _, t := range f.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		hc.Tmpfs[dst] = opts
	}
	switch {
	case f.noHealthcheck:
		cfg.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
	case f.healthCmd != "" || f.healthInterval != 0 || f.healthTimeout != 0 || f.healthRetries != 0 || f.healthStart != 0:
		cfg.Healthcheck = &container.HealthConfig{Interval: f.healthInterval, Timeout: f.healthTimeout, StartPeriod: f.healthStart, Retries: f.healthRetries}
		if f.healthCmd != "" {
			cfg.Healthcheck.Test = []string{"CMD-SHELL", f.healthCmd}
		}
	}
	o.Config, o.HostConfig = cfg, hc
	return o, nil
}

// create makes the container, pulling its image first if it is missing
// (as docker run does on the daemon's 404).
func create(ctx context.Context, c *client.Client, f *runFlags, o client.ContainerCreateOptions, stderr io.Writer) (string, error) {
	if f.pull == "always" {
		if err := pull(ctx, c, o.Config.Image, stderr, false); err != nil {
			return "", err
		}
	}
	res, err := c.ContainerCreate(ctx, o)
	if err != nil && cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "No such image") && f.pull == "missing" {
		fmt.Fprintf(stderr, "Unable to find image '%s' locally\n", o.Config.Image)
		if err := pull(ctx, c, o.Config.Image, stderr, false); err != nil {
			return "", err
		}
		res, err = c.ContainerCreate(ctx, o)
	}
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// pull pulls through the daemon and shows its progress.
func pull(ctx context.Context, c *client.Client, ref string, w io.Writer, quiet bool) error {
	resp, err := c.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	p := newProgress(w, quiet)
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			p.done()
			return err
		}
		if m.Error != nil {
			p.done()
			return errors.New(m.Error.Message)
		}
		p.show(m)
	}
	p.done()
	return nil
}

// progress draws a pull's messages: on a terminal one line per layer,
// redrawn in place with a bar; elsewhere a line per change of status.
type progress struct {
	w     io.Writer
	tty   bool
	quiet bool
	ids   []string
	lines map[string]string
	last  map[string]string
}

func newProgress(w io.Writer, quiet bool) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, tty: ok && term.IsTerminal(int(f.Fd())), quiet: quiet, lines: map[string]string{}, last: map[string]string{}}
}

func bar(p *jsonstream.Progress) string {
	if p == nil || p.Total <= 0 {
		return ""
	}
	const width = 40
	n := int(float64(width) * float64(p.Current) / float64(p.Total))
	n = min(max(n, 0), width)
	return fmt.Sprintf("[%s>%s] %s/%s", strings.Repeat("=", n), strings.Repeat(" ", width-n), humanSize(float64(p.Current)), humanSize(float64(p.Total)))
}

func (p *progress) show(m jsonstream.Message) {
	if p.quiet {
		return
	}
	if m.ID == "" || strings.HasPrefix(m.Status, "Pulling from") {
		line := m.Status
		if m.ID != "" {
			line = m.ID + ": " + m.Status
		}
		fmt.Fprintln(p.w, line)
		return
	}
	line := m.ID + ": " + m.Status
	if m.Status == "Downloading" {
		line += " " + bar(m.Progress)
	}
	if !p.tty {
		if p.last[m.ID] != m.Status {
			fmt.Fprintln(p.w, m.ID+": "+m.Status)
			p.last[m.ID] = m.Status
		}
		return
	}
	if _, ok := p.lines[m.ID]; !ok {
		p.ids = append(p.ids, m.ID)
		fmt.Fprintln(p.w)
	}
	p.lines[m.ID] = line
	// Up to the first layer's line, redraw them all.
	fmt.Fprintf(p.w, "\x1b[%dA", len(p.ids))
	for _, id := range p.ids {
		fmt.Fprintf(p.w, "\x1b[2K%s\n", p.lines[id])
	}
}

func (p *progress) done() {}

// RunCmd is `berth run`.
func RunCmd(g *Globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and start a container",
		Long: `Create a container from an image and start it, as docker run does: attached
to its output (and stdin with -i, a terminal with -t) until it exits, with its
exit code as berth's; or in the background with -d. The image is pulled if
the daemon does not have it.

Exit codes: the container's own; 125 when the daemon refuses (bad flags,
unknown image, name taken); 126 when the command cannot be run; 127 when it
is not found.`,
		Example: `  berth run --rm busybox echo hello
  berth run -d --name web -p 8080:80 --restart unless-stopped nginx
  berth run -it --rm -v $PWD:/src -w /src busybox sh`,
		Args: cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			o, err := f.options(cmd, args)
			if err != nil {
				return StatusError{Err: err, Code: 125}
			}
			return runContainer(cmd, c, f, o)
		}),
	}
	f.register(cmd, true)
	return cmd
}

func runContainer(cmd *cobra.Command, c *client.Client, f *runFlags, o client.ContainerCreateOptions) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	id, err := create(ctx, c, f, o, stderr)
	if err != nil {
		if client.IsErrConnectionFailed(err) {
			return err
		}
		return StatusError{Err: err, Code: 125}
	}
	if f.detach {
		if _, err := c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			return StatusError{Err: err, Code: startCode(err)}
		}
		fmt.Fprintln(stdout, id)
		return nil
	}
	// Attach and wait before the start, so that no output and no exit
	// is missed (the daemon holds output for an attach made before).
	att, err := c.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdin: f.interactive, Stdout: true, Stderr: true})
	if err != nil {
		return StatusError{Err: err, Code: 125}
	}
	defer att.Close()
	cond := container.WaitConditionNextExit
	if f.rm {
		cond = container.WaitConditionRemoved
	}
	wait := c.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})
	restore := func() {}
	if f.tty && f.interactive {
		if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
			if st, err := term.MakeRaw(fd); err == nil {
				restore = func() { term.Restore(fd, st) }
			}
		}
	}
	defer restore()
	if _, err := c.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		restore()
		if f.rm {
			c.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true})
		}
		return StatusError{Err: err, Code: startCode(err)}
	}
	if f.tty {
		resize := func() {
			if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
				c.ContainerResize(ctx, id, client.ContainerResizeOptions{Height: uint(h), Width: uint(w)})
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				resize()
			}
		}()
	}
	streamed := stream(att.HijackedResponse, f.interactive, f.tty, stdout, stderr)
	<-streamed
	select {
	case res := <-wait.Result:
		restore()
		if res.Error != nil {
			return StatusError{Err: errors.New(res.Error.Message), Code: 125}
		}
		if res.StatusCode != 0 {
			return StatusError{Code: int(res.StatusCode)}
		}
		return nil
	case err := <-wait.Error:
		restore()
		return StatusError{Err: err, Code: 125}
	}
}

// startCode is docker's exit code for a start the runtime refused.
func startCode(err error) int {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
		return 127
	case strings.Contains(msg, "permission denied"):
		return 126
	}
	return 125
}

// stream copies a hijacked connection's output to stdout and stderr (and
// stdin to it with -i) until the output ends.
func stream(h client.HijackedResponse, stdin, tty bool, stdout, stderr io.Writer) <-chan struct{} {
	done := make(chan struct{})
	if stdin {
		go func() {
			io.Copy(h.Conn, os.Stdin)
			if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}()
	}
	go func() {
		defer close(done)
		if tty {
			io.Copy(stdout, h.Reader)
			return
		}
		stdcopy.StdCopy(stdout, stderr, h.Reader)
	}()
	return done
}

// CreateCmd is `berth create`.
func CreateCmd(g *Globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a container without starting it",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			o, err := f.options(cmd, args)
			if err != nil {
				return StatusError{Err: err, Code: 125}
			}
			id, err := create(cmd.Context(), c, f, o, cmd.ErrOrStderr())
			if err != nil {
				return StatusError{Err: err, Code: 125}
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		}),
	}
	f.register(cmd, false)
	return cmd
}
