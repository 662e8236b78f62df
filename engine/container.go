package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// Container is what the engine records of a container, in
// <root>/containers/<id>/container.json.
type Container struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	Created time.Time     `json:"created"`
	Image   string        `json:"image"`   // as the user named it
	ImageID digest.Digest `json:"imageId"` // its config's digest
	Spec    Spec          `json:"spec"`
	// Path and Args are the command, Env the environment, that the image
	// and the spec make (what inspect shows).
	Path  string   `json:"path"`
	Args  []string `json:"args,omitempty"`
	Env   []string `json:"env,omitempty"`
	State State    `json:"state"`
	// Snapshot is the key of the container's read-write layer.
	Snapshot string `json:"snapshot"`
}

// Spec is what the user asked the container to be: docker run's flags.
type Spec struct {
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Env        []string          `json:"env,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	User       string            `json:"user,omitempty"`
	Hostname   string            `json:"hostname,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Tty        bool              `json:"tty,omitempty"`
	OpenStdin  bool              `json:"openStdin,omitempty"`
	StdinOnce  bool              `json:"stdinOnce,omitempty"`
	ReadOnly   bool              `json:"readOnly,omitempty"`
	Privileged bool              `json:"privileged,omitempty"`
	CapAdd     []string          `json:"capAdd,omitempty"`
	CapDrop    []string          `json:"capDrop,omitempty"`
	// Mounts are binds (Source a host path) and tmpfs (Type "tmpfs").
	Mounts    []Mount       `json:"mounts,omitempty"`
	Resources Resources     `json:"resources,omitempty"`
	Restart   RestartPolicy `json:"restart,omitempty"`
	// AutoRemove removes the container when it exits (--rm).
	AutoRemove bool `json:"autoRemove,omitempty"`
	// Runtime names the low-level runtime ("" is the engine's default).
	Runtime string `json:"runtime,omitempty"`
	// Network is "none", "host" or a network's name.
	Network    string `json:"network,omitempty"`
	StopSignal string `json:"stopSignal,omitempty"`
	// StopTimeout is the seconds stop waits before SIGKILL (nil: 10).
	StopTimeout *int `json:"stopTimeout,omitempty"`
	// Ports publish container ports on the host (-p).
	Ports []PortMapping `json:"ports,omitempty"`
	// Healthcheck, if set, replaces the image's HEALTHCHECK.
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
}

// PortMapping publishes a container port on the host.
type PortMapping struct {
	HostIP        string `json:"hostIP,omitempty"` // "" is every address
	HostPort      uint16 `json:"hostPort"`
	ContainerPort uint16 `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp, udp
}

// Healthcheck is a command run in the container to tell whether it is
// healthy: Docker's HEALTHCHECK.
type Healthcheck struct {
	// Test is ["NONE"], ["CMD", args...] or ["CMD-SHELL", command].
	Test        []string      `json:"test,omitempty"`
	Interval    time.Duration `json:"interval,omitempty"`
	Timeout     time.Duration `json:"timeout,omitempty"`
	StartPeriod time.Duration `json:"startPeriod,omitempty"`
	Retries     int           `json:"retries,omitempty"`
}

// Mount is a bind or tmpfs mount.
type Mount struct {
	Type        string `json:"type"` // bind, tmpfs
	Source      string `json:"source,omitempty"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
	// Options for tmpfs (size=64m, mode=1777, ...).
	Options []string `json:"options,omitempty"`
}

// Resources are the cgroup limits.
type Resources struct {
	Memory    int64 `json:"memory,omitempty"`    // bytes
	NanoCPUs  int64 `json:"nanoCpus,omitempty"`  // 1e9 is one CPU
	PidsLimit int64 `json:"pidsLimit,omitempty"` // 0: unlimited
}

// RestartPolicy says what to do when the container exits.
type RestartPolicy struct {
	Name       string `json:"name,omitempty"` // no, on-failure, always, unless-stopped
	MaxRetries int    `json:"maxRetries,omitempty"`
}

// Status names of a container's state, Docker's.
const (
	Created    = "created"
	Running    = "running"
	Restarting = "restarting"
	Exited     = "exited"
	Removing   = "removing"
	Dead       = "dead"
)

// State is how the container is now.
type State struct {
	Status     string    `json:"status"`
	Pid        int       `json:"pid,omitempty"`
	ExitCode   int       `json:"exitCode"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// RestartCount counts the restarts the policy made.
	RestartCount int `json:"restartCount,omitempty"`
	// StoppedByUser: a stop or kill ended it, which no policy undoes
	// (but always's at the engine's start).
	StoppedByUser bool `json:"stoppedByUser,omitempty"`
	// Runtime is the runtime the running process was started with.
	Runtime string `json:"runtime,omitempty"`
	// Net is the container's place on its network while it runs.
	Net *NetState `json:"net,omitempty"`
	// Health is the health check's verdict, for containers that have one.
	Health *Health `json:"health,omitempty"`
}

// NetState is a running container's network attachment.
type NetState struct {
	Network   string `json:"network"`
	NetworkID string `json:"networkId,omitempty"`
	// Netns is the bind-mounted network namespace file.
	Netns     string `json:"netns"`
	Interface string `json:"interface,omitempty"`
	IP        string `json:"ip,omitempty"`
	PrefixLen int    `json:"prefixLen,omitempty"`
	Gateway   string `json:"gateway,omitempty"`
	MAC       string `json:"mac,omitempty"`
	// Ports are the published ports, with the host ports allocated for
	// those that asked for any.
	Ports []PortMapping `json:"ports,omitempty"`
}

// Health is a health check's state: starting, healthy or unhealthy.
type Health struct {
	Status        string        `json:"status"`
	FailingStreak int           `json:"failingStreak"`
	Log           []HealthProbe `json:"log,omitempty"`
}

// HealthProbe is one run of a health check (the last few are kept).
type HealthProbe struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	ExitCode int       `json:"exitCode"`
	Output   string    `json:"output"`
}

// save writes the record atomically.
func (c *Container) save(dir string) error {
	b, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "container.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "container.json"))
}

func loadContainer(dir string) (Container, error) {
	var c Container
	b, err := os.ReadFile(filepath.Join(dir, "container.json"))
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}
