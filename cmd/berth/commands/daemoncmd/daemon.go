// Package daemoncmd is `berth daemon`: the engine, its networks and the
// Engine API on a root-only unix socket.
package daemoncmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/dockerapi"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/engine/network"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/snapshot"
	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/registry/client"
	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/moby/moby/api/types/system"
	"github.com/pelletier/go-toml/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"
)

// Config is the daemon's configuration file (YAML, or TOML by the .toml
// extension). Flags given on the command line win over it.
type Config struct {
	Root   string `json:"root,omitempty" toml:"root"`
	RunDir string `json:"runDir,omitempty" toml:"run_dir"`
	// Socket is the API's unix socket (<run dir>/berth.sock).
	Socket string `json:"socket,omitempty" toml:"socket"`
	// Runtimes are runc-compatible commands by name, beside the built-in
	// "berth" and runc and crun when installed.
	Runtimes       map[string][]string `json:"runtimes,omitempty" toml:"runtimes"`
	DefaultRuntime string              `json:"defaultRuntime,omitempty" toml:"default_runtime"`
	CgroupParent   string              `json:"cgroupParent,omitempty" toml:"cgroup_parent"`
	LogMaxSize     int64               `json:"logMaxSize,omitempty" toml:"log_max_size"`
	LogMaxFiles    int                 `json:"logMaxFiles,omitempty" toml:"log_max_files"`
	// Registries are per-registry settings, as /etc/berth/registries.yaml.
	Registries map[string]client.Host `json:"registries,omitempty" toml:"registries"`
	Network    NetworkConfig          `json:"network,omitempty" toml:"network"`
	// MetricsAddr, if set, serves Prometheus metrics over TCP.
	MetricsAddr string `json:"metricsAddr,omitempty" toml:"metrics_addr"`
	LogLevel    string `json:"logLevel,omitempty" toml:"log_level"`
}

// NetworkConfig shapes the default network.
type NetworkConfig struct {
	Disabled   bool     `json:"disabled,omitempty" toml:"disabled"`
	Bridge     string   `json:"bridge,omitempty" toml:"bridge"`
	Subnet     string   `json:"subnet,omitempty" toml:"subnet"`
	PluginDirs []string `json:"pluginDirs,omitempty" toml:"plugin_dirs"`
}

// DefaultSocket is where the CLI looks for the daemon.
const DefaultSocket = "/run/berth/berth.sock"

func loadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if strings.HasSuffix(path, ".toml") {
		d := toml.NewDecoder(strings.NewReader(string(b)))
		d.DisallowUnknownFields()
		err = d.Decode(&c)
	} else {
		err = yaml.UnmarshalStrict(b, &c)
	}
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// New is `berth daemon`. root is the global --root flag's value.
func New(root *string, logger func() *slog.Logger) *cobra.Command {
	var cfgPath string
	var flags Config
	var noNetwork bool
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the container engine and serve its API on a unix socket",
		Long: `Run the container engine: containers, their monitors, logs, networks (CNI)
and volumes, served over the Docker Engine API on a root-only unix socket.
The berth CLI talks to it (-H, BERTH_HOST), and so can the docker CLI
(DOCKER_HOST=unix://<socket>).

Containers outlive the daemon: each runs under a small monitor process that
holds its stdio and log and records its exit, so the daemon may stop, crash
or upgrade and find them again when it starts.

State goes under --root (/var/lib/berth) and --run-dir (/run/berth; with
another --root, <root>/run), the socket at <run dir>/berth.sock. A config
file (--config, YAML or TOML by extension) may set:

  root: /var/lib/berth
  runDir: /run/berth
  socket: /run/berth/berth.sock
  defaultRuntime: berth            # or runc, crun, or one named here:
  runtimes: {myrunc: [/usr/local/bin/runc, --systemd-cgroup=false]}
  cgroupParent: /berth
  logMaxSize: 10485760             # bytes per log file before rotation
  logMaxFiles: 3
  network: {bridge: berth0, subnet: 10.87.0.0/16, pluginDirs: [/usr/lib/cni]}
  metricsAddr: 127.0.0.1:9323      # Prometheus metrics (off by default)
  registries:                      # as /etc/berth/registries.yaml
    docker.io: {mirrors: ["http://127.0.0.1:5000"]}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := Config{}
			if cfgPath != "" {
				var err error
				if cfg, err = loadConfig(cfgPath); err != nil {
					return err
				}
			}
			f := cmd.Flags()
			if f.Changed("root") || cfg.Root == "" {
				cfg.Root = *root
			}
			for name, set := range map[string]func(){
				"run-dir":         func() { cfg.RunDir = flags.RunDir },
				"socket":          func() { cfg.Socket = flags.Socket },
				"default-runtime": func() { cfg.DefaultRuntime = flags.DefaultRuntime },
				"cgroup-parent":   func() { cfg.CgroupParent = flags.CgroupParent },
				"metrics-addr":    func() { cfg.MetricsAddr = flags.MetricsAddr },
				"bridge":          func() { cfg.Network.Bridge = flags.Network.Bridge },
				"subnet":          func() { cfg.Network.Subnet = flags.Network.Subnet },
			} {
				if f.Changed(name) {
					set()
				}
			}
			if noNetwork {
				cfg.Network.Disabled = true
			}
			return run(cmd.Context(), cfg, logger())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "configuration file (YAML, or TOML with a .toml name)")
	f.StringVar(&flags.RunDir, "run-dir", "", "directory of runtime state: monitors, network namespaces (default /run/berth, or <root>/run)")
	f.StringVar(&flags.Socket, "socket", "", "the API's unix socket (default <run dir>/berth.sock)")
	f.StringVar(&flags.DefaultRuntime, "default-runtime", "", "runtime of containers that name none: berth, runc, crun (default berth)")
	f.StringVar(&flags.CgroupParent, "cgroup-parent", "", "cgroup under which containers' cgroups go (default /berth)")
	f.StringVar(&flags.MetricsAddr, "metrics-addr", "", "TCP address to serve Prometheus metrics on (off by default)")
	f.StringVar(&flags.Network.Bridge, "bridge", "", "bridge of the default network (default berth0)")
	f.StringVar(&flags.Network.Subnet, "subnet", "", "subnet of the default network (default 10.87.0.0/16)")
	f.BoolVar(&noNetwork, "no-network", false, "no CNI networking: containers get --network none unless they ask for host")
	return cmd
}

func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return errors.New("berth daemon must run as root")
	}
	if cfg.LogLevel != "" {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
			return fmt.Errorf("logLevel: %w", err)
		}
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/run/berth"
		if filepath.Clean(cfg.Root) != "/var/lib/berth" {
			cfg.RunDir = filepath.Join(cfg.Root, "run")
		}
	}
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(cfg.RunDir, "berth.sock")
	}
	for _, d := range []string{cfg.Root, cfg.RunDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	// One daemon per root: a second one would share its containers.
	lock, err := os.OpenFile(filepath.Join(cfg.Root, "daemon.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("another berth daemon is using %s", cfg.Root)
	}
	store, err := image.Open(cfg.Root, image.Options{Logger: log})
	if err != nil {
		return err
	}
	runtimes := engine.DefaultRuntimes()
	for name, argv := range cfg.Runtimes {
		if len(argv) == 0 {
			return fmt.Errorf("runtime %s: no command", name)
		}
		runtimes[name] = argv
	}
	if cfg.DefaultRuntime == "" {
		cfg.DefaultRuntime = "berth"
	}
	var nets *network.Manager
	if !cfg.Network.Disabled {
		nets, err = network.Open(network.Config{
			Root: cfg.Root, RunDir: cfg.RunDir, PluginDirs: cfg.Network.PluginDirs,
			DefaultBridge: cfg.Network.Bridge, DefaultSubnet: cfg.Network.Subnet,
		})
		if err != nil {
			return fmt.Errorf("networks: %w", err)
		}
	}
	eng, err := engine.Open(engine.Config{
		Root: cfg.Root, RunDir: cfg.RunDir, Runtimes: runtimes, DefaultRuntime: cfg.DefaultRuntime,
		Monitor: engine.DefaultMonitor(), CgroupParent: cfg.CgroupParent,
		LogMaxSize: cfg.LogMaxSize, LogMaxFiles: cfg.LogMaxFiles, Logger: log, Networks: nets,
	}, store)
	if err != nil {
		return err
	}
	defer eng.Close()
	reg := client.New()
	reg.Credentials = client.DockerConfigCredentials("")
	reg.UserAgent = "berth/" + version.Version
	if cfg.Registries != nil {
		reg.Hosts = cfg.Registries
	} else if reg.Hosts, err = client.LoadHosts(""); err != nil {
		return err
	}
	srv := &dockerapi.Server{Engine: eng, Registry: reg, Log: log, Info: info(cfg, runtimes)}

	ln, err := listenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	var ms *http.Server
	if cfg.MetricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newCollector(eng))
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		ms = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- ms.Serve(mln) }()
		log.Info("metrics", "addr", mln.Addr().String())
	}
	log.Info("berth daemon ready", "socket", cfg.Socket, "root", cfg.Root, "runtime", cfg.DefaultRuntime, "networks", nets != nil)
	// Readiness for whoever started us: the socket answers from now on.
	fmt.Fprintf(os.Stderr, "berth daemon listening on unix://%s\n", cfg.Socket)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case sig := <-sigs:
		log.Info("stopping; containers keep running", "signal", sig.String())
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	if ms != nil {
		ms.Shutdown(sctx)
	}
	os.Remove(cfg.Socket)
	return nil
}

// listenUnix listens on a socket only root may use. A socket left by a
// daemon that died is replaced; one that answers is not.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a daemon is already listening on %s", path)
	}
	os.Remove(path)
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func info(cfg Config, runtimes map[string][]string) system.Info {
	var uts unix.Utsname
	unix.Uname(&uts)
	host, _ := os.Hostname()
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	cgv := "1"
	if cgroups.IsV2() {
		cgv = "2"
	}
	rts := map[string]system.RuntimeWithStatus{}
	for name, argv := range runtimes {
		rts[name] = system.RuntimeWithStatus{Runtime: system.Runtime{Path: argv[0], Args: argv[1:]}}
	}
	return system.Info{
		ID: host, Name: host, ServerVersion: version.Version, OperatingSystem: "linux", OSType: "linux",
		Architecture: runtime.GOARCH, NCPU: runtime.NumCPU(), MemTotal: int64(si.Totalram) * int64(si.Unit),
		KernelVersion: unix.ByteSliceToString(uts.Release[:]), DockerRootDir: cfg.Root, Driver: string(snapshot.Overlay),
		CgroupDriver: "cgroupfs", CgroupVersion: cgv, DefaultRuntime: cfg.DefaultRuntime, Runtimes: rts,
		LoggingDriver: "json-file",
	}
}
