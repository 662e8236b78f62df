package runtimecmd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/caps"
	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func (g *globals) execCmd() *cobra.Command {
	var (
		processFile, consoleSocket, cwd, userSpec, pidFile string
		envs, capsAdd                                      []string
		gids                                               []int64
		tty, detach, noNewPrivs                            bool
		preserveFDs                                        int
		label, apparmor                                    string
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] <container-id> <command> [args...]",
		Short: "Run a process in a running container",
		Long: `Run a new process inside a container, in all its namespaces and its cgroup,
with the container's seccomp filter. The process takes its defaults (env,
user, capabilities, ...) from the container's config; flags override them,
or --process gives the whole process as JSON.`,
		Example: `  berth runtime exec mycontainer ps
  berth runtime exec -t --console-socket /tmp/sock mycontainer sh`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || (processFile == "" && len(args) < 2) {
				return fmt.Errorf("%q needs a container ID and a command (or --process)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.rt.Load(args[0])
			if err != nil {
				return err
			}
			var p *specs.Process
			if processFile != "" {
				p, err = readProcess(processFile)
				if err != nil {
					return err
				}
			} else {
				spec, err := c.Spec()
				if err != nil {
					return err
				}
				base := *spec.Process
				p = &base
				p.Args = args[1:]
				p.Terminal = tty
				p.Env = append(append([]string(nil), base.Env...), envs...)
				if cwd != "" {
					p.Cwd = cwd
				}
				if userSpec != "" {
					if err := parseUser(userSpec, &p.User); err != nil {
						return err
					}
				}
				if len(gids) > 0 {
					p.User.AdditionalGids = nil
					for _, gid := range gids {
						p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
					}
				}
				if cmd.Flags().Changed("no-new-privs") {
					p.NoNewPrivileges = noNewPrivs
				}
				if apparmor != "" {
					p.ApparmorProfile = apparmor
				}
				if label != "" {
					p.SelinuxLabel = label
				}
				if len(capsAdd) > 0 {
					p.Capabilities = addCaps(p.Capabilities, capsAdd)
				}
				p.ConsoleSize = nil
			}
			o := &runtime.ExecOpts{
				ConsoleSocket: consoleSocket,
				PidFile:       pidFile,
				PreserveFDs:   preserveFDs,
				Stdin:         os.Stdin,
				Stdout:        os.Stdout,
				Stderr:        os.Stderr,
			}
			return g.exec(c, p, o, detach)
		},
	}
	cmd.Flags().SetInterspersed(false)
	fl := cmd.Flags()
	fl.StringVarP(&processFile, "process", "p", "", "JSON file with the process to run (as config.json's process)")
	fl.StringVar(&consoleSocket, "console-socket", "", "unix socket to send the terminal's master to")
	fl.StringVar(&cwd, "cwd", "", "working directory inside the container")
	fl.StringArrayVarP(&envs, "env", "e", nil, "set an environment variable (KEY=VALUE); repeatable")
	fl.BoolVarP(&tty, "tty", "t", false, "give the process a terminal")
	fl.StringVarP(&userSpec, "user", "u", "", "UID[:GID] to run as")
	fl.Int64SliceVarP(&gids, "additional-gids", "g", nil, "supplementary group IDs")
	fl.BoolVarP(&detach, "detach", "d", false, "return once the process runs")
	fl.StringVar(&pidFile, "pid-file", "", "file to write the process's PID to")
	fl.StringVar(&label, "process-label", "", "SELinux label (accepted; SELinux is not supported)")
	fl.StringVar(&apparmor, "apparmor", "", "AppArmor profile (accepted; applied only where AppArmor runs)")
	fl.BoolVar(&noNewPrivs, "no-new-privs", false, "set no_new_privs for the process")
	fl.StringArrayVarP(&capsAdd, "cap", "c", nil, "add a capability to the process's sets; repeatable")
	fl.IntVar(&preserveFDs, "preserve-fds", 0, "pass descriptors 3 .. 3+N-1 on to the process")
	fl.String("cgroup", "", "accepted for runc compatibility")
	fl.Bool("ignore-paused", false, "accepted for runc compatibility")
	return cmd
}

func (g *globals) exec(c *runtime.Container, p *specs.Process, o *runtime.ExecOpts, detach bool) error {
	var recv *os.File
	if p.Terminal && !detach && o.ConsoleSocket == "" {
		r, s, err := console.Pair()
		if err != nil {
			return err
		}
		recv, o.Console = r, s
		defer r.Close()
		defer s.Close()
	}
	var fwd *runtime.SignalForwarder
	if !detach {
		if err := runtime.SetSubreaper(); err != nil {
			return err
		}
		fwd = runtime.NewSignalForwarder()
	}
	proc, err := c.Exec(p, o)
	if err != nil {
		return err
	}
	if detach {
		return nil
	}
	var term *runtime.Terminal
	var tty *os.File
	if recv != nil {
		tty, err = console.RecvFd(recv)
		if err != nil {
			_ = unix.Kill(proc.Pid, unix.SIGKILL)
			return err
		}
		term = runtime.AttachTerminal(tty)
	}
	fwd.Start(proc.Pid, tty)
	ws, err := runtime.WaitReaping(proc.Pid)
	fwd.Stop()
	if term != nil {
		term.Close()
	}
	if err != nil {
		return err
	}
	return ExitCode(runtime.ExitCode(ws))
}

func readProcess(path string) (*specs.Process, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		defer f.Close()
		r = f
	}
	var p specs.Process
	if err := json.NewDecoder(r).Decode(&p); err != nil {
		return nil, fmt.Errorf("--process %s: %w", path, err)
	}
	return &p, nil
}

func parseUser(s string, u *specs.User) error {
	uidS, gidS, hasGid := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(uidS, 10, 32)
	if err != nil {
		return fmt.Errorf("--user %q: the UID must be a number", s)
	}
	u.UID = uint32(uid)
	if hasGid {
		gid, err := strconv.ParseUint(gidS, 10, 32)
		if err != nil {
			return fmt.Errorf("--user %q: the GID must be a number", s)
		}
		u.GID = uint32(gid)
	}
	return nil
}

func addCaps(c *specs.LinuxCapabilities, add []string) *specs.LinuxCapabilities {
	out := &specs.LinuxCapabilities{}
	if c != nil {
		cp := *c
		out = &cp
	}
	for _, a := range add {
		name := strings.ToUpper(a)
		if !strings.HasPrefix(name, "CAP_") {
			name = "CAP_" + name
		}
		out.Bounding = append(out.Bounding, name)
		out.Effective = append(out.Effective, name)
		out.Permitted = append(out.Permitted, name)
		out.Ambient = append(out.Ambient, name)
		out.Inheritable = append(out.Inheritable, name)
	}
	return out
}

func (g *globals) psCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags] <container-id> [ps options]",
		Short: "List the processes of a container",
		Long:  "Run ps(1) (default options -ef) and show the lines of the container's processes, or their PIDs as JSON with --format json.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.rt.Load(args[0])
			if err != nil {
				return err
			}
			pids, err := c.Pids()
			if err != nil {
				return err
			}
			switch format {
			case "json":
				if pids == nil {
					pids = []int{}
				}
				return printJSON(cmd.OutOrStdout(), pids, false)
			case "table":
			default:
				return fmt.Errorf("--format: %q is not table or json", format)
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			out, err := exec.Command("ps", psArgs...).Output()
			if err != nil {
				return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
			}
			return filterPs(cmd.OutOrStdout(), out, pids)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output format: table or json")
	return cmd
}

// filterPs keeps ps's header and the lines whose PID column is one of pids.
func filterPs(w io.Writer, out []byte, pids []int) error {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) == 0 {
		return nil
	}
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps printed no PID column")
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	fmt.Fprintln(w, lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) > col {
			if pid, err := strconv.Atoi(f[col]); err == nil && want[pid] {
				fmt.Fprintln(w, l)
			}
		}
	}
	return nil
}

type listEntry struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

func (g *globals) listCmd() *cobra.Command {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cs, err := g.rt.List()
			if err != nil {
				return err
			}
			entries := []listEntry{}
			for _, c := range cs {
				st := c.State()
				entries = append(entries, listEntry{
					Version: st.Version, ID: st.ID, Pid: st.Pid, Status: string(st.Status), Bundle: st.Bundle,
					Rootfs: st.Rootfs, Created: st.Created, Annotations: st.Annotations, Owner: st.Owner,
				})
			}
			w := cmd.OutOrStdout()
			if quiet {
				for _, e := range entries {
					fmt.Fprintln(w, e.ID)
				}
				return nil
			}
			switch format {
			case "json":
				return printJSON(w, entries, false)
			case "table":
				tw := tabwriter.NewWriter(w, 12, 1, 3, ' ', 0)
				fmt.Fprintln(tw, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
				for _, e := range entries {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, e.Pid, e.Status, e.Bundle, e.Created.Format(time.RFC3339Nano), e.Owner)
				}
				return tw.Flush()
			}
			return fmt.Errorf("--format: %q is not table or json", format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output format: table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the IDs")
	return cmd
}

// parseBytes reads a size with an optional k, m, g or t suffix (powers of
// 1024), or -1 for unlimited.
func parseBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 512m, 1g, or bytes)", s)
	}
	return int64(v * float64(mult)), nil
}

func (g *globals) updateCmd() *cobra.Command {
	var resources string
	cmd := &cobra.Command{
		Use:   "update [flags] <container-id>",
		Short: "Change a running container's resource limits",
		Long: `Change cgroup limits of a live container: from a JSON file of the config's
linux.resources (--resources FILE, - for stdin), and/or single-value flags.`,
		Example: `  berth runtime update --memory 256m --pids-limit 100 mycontainer
  echo '{"cpu":{"quota":50000,"period":100000}}' | berth runtime update -r - mycontainer`,
		Args: exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.rt.Load(args[0])
			if err != nil {
				return err
			}
			r := &specs.LinuxResources{}
			if resources != "" {
				var in io.Reader = os.Stdin
				if resources != "-" {
					f, err := os.Open(resources)
					if err != nil {
						return fmt.Errorf("--resources: %w", err)
					}
					defer f.Close()
					in = f
				}
				if err := json.NewDecoder(in).Decode(r); err != nil {
					return fmt.Errorf("--resources: %w", err)
				}
			}
			if err := applyUpdateFlags(cmd, r); err != nil {
				return err
			}
			return c.Update(r)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&resources, "resources", "r", "", "JSON file of linux.resources to apply (- for stdin)")
	fl.Uint16("blkio-weight", 0, "block I/O weight (10-1000)")
	fl.Uint64("cpu-period", 0, "CPU CFS period in microseconds")
	fl.Int64("cpu-quota", 0, "CPU CFS quota in microseconds per period")
	fl.Uint64("cpu-share", 0, "CPU shares (relative weight)")
	fl.Uint64("cpu-rt-period", 0, "realtime period in microseconds")
	fl.Int64("cpu-rt-runtime", 0, "realtime runtime in microseconds per period")
	fl.String("cpuset-cpus", "", "CPUs to run on (0-3, 0,1)")
	fl.String("cpuset-mems", "", "memory nodes to use (0-3, 0,1)")
	fl.String("memory", "", "memory limit (e.g. 512m; -1 for none)")
	fl.String("memory-reservation", "", "memory soft limit")
	fl.String("memory-swap", "", "memory plus swap limit (-1 for none)")
	fl.String("kernel-memory", "", "accepted for runc compatibility; kernel memory limits no longer exist")
	fl.String("kernel-memory-tcp", "", "kernel TCP buffer memory limit")
	fl.Int64("pids-limit", 0, "maximum number of processes (-1 for none)")
	fl.String("l3-cache-schema", "", "Intel RDT (not supported)")
	fl.String("mem-bw-schema", "", "Intel RDT (not supported)")
	return cmd
}

func applyUpdateFlags(cmd *cobra.Command, r *specs.LinuxResources) error {
	fl := cmd.Flags()
	cpu := func() *specs.LinuxCPU {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		return r.CPU
	}
	mem := func() *specs.LinuxMemory {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		return r.Memory
	}
	if fl.Changed("blkio-weight") {
		v, _ := fl.GetUint16("blkio-weight")
		if r.BlockIO == nil {
			r.BlockIO = &specs.LinuxBlockIO{}
		}
		r.BlockIO.Weight = &v
	}
	for _, name := range []string{"cpu-period", "cpu-share", "cpu-rt-period"} {
		if fl.Changed(name) {
			v, _ := fl.GetUint64(name)
			switch name {
			case "cpu-period":
				cpu().Period = &v
			case "cpu-share":
				cpu().Shares = &v
			case "cpu-rt-period":
				cpu().RealtimePeriod = &v
			}
		}
	}
	if fl.Changed("cpu-quota") {
		v, _ := fl.GetInt64("cpu-quota")
		cpu().Quota = &v
	}
	if fl.Changed("cpu-rt-runtime") {
		v, _ := fl.GetInt64("cpu-rt-runtime")
		cpu().RealtimeRuntime = &v
	}
	if fl.Changed("cpuset-cpus") {
		cpu().Cpus, _ = fl.GetString("cpuset-cpus")
	}
	if fl.Changed("cpuset-mems") {
		cpu().Mems, _ = fl.GetString("cpuset-mems")
	}
	sizes := []struct {
		flag string
		set  func(int64)
	}{
		{"memory", func(v int64) { mem().Limit = &v }},
		{"memory-reservation", func(v int64) { mem().Reservation = &v }},
		{"memory-swap", func(v int64) { mem().Swap = &v }},
		{"kernel-memory-tcp", func(v int64) { mem().KernelTCP = &v }},
	}
	for _, s := range sizes {
		if !fl.Changed(s.flag) {
			continue
		}
		str, _ := fl.GetString(s.flag)
		v, err := parseBytes(str)
		if err != nil {
			return fmt.Errorf("--%s: %w", s.flag, err)
		}
		s.set(v)
	}
	if fl.Changed("pids-limit") {
		v, _ := fl.GetInt64("pids-limit")
		r.Pids = &specs.LinuxPids{Limit: &v}
	}
	if fl.Changed("l3-cache-schema") || fl.Changed("mem-bw-schema") {
		return fmt.Errorf("Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported")
	}
	return nil
}

// event is one line of `events` output, shaped as runc's.
type event struct {
	Type string         `json:"type"`
	ID   string         `json:"id"`
	Data *cgroups.Stats `json:"data,omitempty"`
}

func (g *globals) eventsCmd() *cobra.Command {
	var stats bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "events [flags] <container-id>",
		Short: "Print a container's resource usage, once or every interval",
		Long:  "Print cgroup statistics of a container as JSON lines, every --interval until it stops, or once with --stats.",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.rt.Load(args[0])
			if err != nil {
				return err
			}
			if interval <= 0 {
				return fmt.Errorf("--interval: %s is not positive", interval)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			emit := func() error {
				st, err := c.Stats()
				if err != nil {
					return err
				}
				if err := printJSON(w, event{Type: "stats", ID: c.ID(), Data: st}, false); err != nil {
					return err
				}
				return w.Flush()
			}
			if stats {
				return emit()
			}
			for c.Status() != runtime.StatusStopped {
				if err := emit(); err != nil {
					return err
				}
				time.Sleep(interval)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print statistics once and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "time between statistics")
	return cmd
}

func (g *globals) featuresCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "Print what this runtime supports, as the OCI features document (JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printJSON(cmd.OutOrStdout(), featureDoc(), true)
		},
	}
}

func featureDoc() *features.Features {
	t := true
	ns := []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}
	actions := []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
		"SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"}
	ops := []string{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"}
	arches := []string{"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390X",
		"SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"}
	flags := []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC",
		"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}
	v1, v2 := true, true
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  runtime.MountOptions(),
		Linux: &features.Linux{
			Namespaces:   ns,
			Capabilities: caps.Names(),
			Cgroup:       &features.Cgroup{V1: &v1, V2: &v2, Systemd: new(bool), SystemdUser: new(bool), Rdma: &t},
			Seccomp: &features.Seccomp{
				Enabled: &t, Actions: actions, Operators: ops, Archs: arches, KnownFlags: flags, SupportedFlags: flags,
			},
			Apparmor:        &features.Apparmor{Enabled: new(bool)},
			Selinux:         &features.Selinux{Enabled: new(bool)},
			IntelRdt:        &features.IntelRdt{Enabled: new(bool)},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &t}},
		},
		Annotations: map[string]string{"org.berth.version": version.Version},
	}
}
