package enginecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// each runs fn for every argument, printing the argument when it worked
// and every error, as docker's multi-container verbs do.
func each(cmd *cobra.Command, args []string, fn func(ref string) error) error {
	var failed []string
	for _, ref := range args {
		if err := fn(ref); err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "Error response from daemon:", err)
			failed = append(failed, ref)
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), ref)
	}
	if len(failed) > 0 {
		return StatusError{Code: 1}
	}
	return nil
}

// PsCmd is `berth ps`.
func PsCmd(g *Globals) *cobra.Command {
	var all, quiet, noTrunc bool
	var filters []string
	out := &output{}
	cmd := &cobra.Command{
		Use:     "ps",
		Aliases: []string{"ls"},
		Short:   "List containers",
		Long: `List containers: the running ones, or all with -a. The STATUS column says how
long a container has been up and its health, or how it exited.`,
		Args: cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			f := client.Filters{}
			for _, kv := range filters {
				k, v, _ := strings.Cut(kv, "=")
				f.Add(k, v)
			}
			res, err := c.ContainerList(cmd.Context(), client.ContainerListOptions{All: all, Filters: f})
			if err != nil {
				return err
			}
			if quiet {
				for _, s := range res.Items {
					if noTrunc {
						fmt.Fprintln(cmd.OutOrStdout(), s.ID)
					} else {
						fmt.Fprintln(cmd.OutOrStdout(), shortID(s.ID))
					}
				}
				return nil
			}
			var rows [][]string
			var objs, data []any
			for _, s := range res.Items {
				id, command := shortID(s.ID), s.Command
				if noTrunc {
					id = s.ID
				} else if len(command) > 20 {
					command = command[:19] + "…"
				}
				var ports []string
				for _, p := range s.Ports {
					if p.PublicPort != 0 {
						ports = append(ports, fmt.Sprintf("%s:%d->%d/%s", p.IP, p.PublicPort, p.PrivatePort, p.Type))
					} else {
						ports = append(ports, fmt.Sprintf("%d/%s", p.PrivatePort, p.Type))
					}
				}
				names := make([]string, len(s.Names))
				for i, n := range s.Names {
					names[i] = strings.TrimPrefix(n, "/")
				}
				created := time.Unix(s.Created, 0)
				rows = append(rows, []string{id, s.Image, strconv.Quote(command), ago(created), s.Status, strings.Join(ports, ", "), strings.Join(names, ",")})
				objs = append(objs, s)
				data = append(data, map[string]any{
					"ID": id, "Image": s.Image, "Command": strconv.Quote(s.Command), "CreatedAt": created.String(),
					"RunningFor": ago(created), "Ports": strings.Join(ports, ", "), "State": string(s.State),
					"Status": s.Status, "Names": strings.Join(names, ","), "Labels": s.Labels, "Networks": networksOf(s),
				})
			}
			return out.print(cmd.OutOrStdout(), []string{"CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"}, rows, objs, data)
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show every container (default: the running ones)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not shorten IDs and commands")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter: name=, id=, status=, label=, ancestor=")
	out.flags(cmd)
	return cmd
}

func networksOf(s container.Summary) string {
	var ns []string
	if s.NetworkSettings != nil {
		for n := range s.NetworkSettings.Networks {
			ns = append(ns, n)
		}
	}
	sort.Strings(ns)
	return strings.Join(ns, ",")
}

// LogsCmd is `berth logs`.
func LogsCmd(g *Globals) *cobra.Command {
	var o client.ContainerLogsOptions
	cmd := &cobra.Command{
		Use:   "logs CONTAINER",
		Short: "Show a container's output",
		Long: `Show what a container wrote to stdout and stderr, kept by its monitor in
JSON lines (rotated by size and count). -f follows it until the container
stops, across the daemon's restarts.`,
		Args: cobra.ExactArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ins, err := c.ContainerInspect(cmd.Context(), args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			o.ShowStdout, o.ShowStderr = true, true
			if o.Since != "" {
				if o.Since, err = timeArg(o.Since); err != nil {
					return fmt.Errorf("--since: %w", err)
				}
			}
			if o.Until != "" {
				if o.Until, err = timeArg(o.Until); err != nil {
					return fmt.Errorf("--until: %w", err)
				}
			}
			r, err := c.ContainerLogs(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			defer r.Close()
			if ins.Container.Config != nil && ins.Container.Config.Tty {
				_, err = io.Copy(cmd.OutOrStdout(), r)
			} else {
				_, err = stdcopy.StdCopy(cmd.OutOrStdout(), cmd.ErrOrStderr(), r)
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Follow, "follow", "f", false, "keep printing as the container writes")
	f.StringVarP(&o.Tail, "tail", "n", "all", "print only the last N lines")
	f.StringVar(&o.Since, "since", "", "only lines since a time (RFC 3339, Unix seconds, or a duration such as 10m)")
	f.StringVar(&o.Until, "until", "", "only lines before a time (as --since)")
	f.BoolVarP(&o.Timestamps, "timestamps", "t", false, "prefix each line with its time")
	return cmd
}

// timeArg reads a time as docker's --since does: a duration ago, RFC
// 3339, or Unix seconds; the API takes Unix seconds.
func timeArg(s string) (string, error) {
	if d, err := time.ParseDuration(s); err == nil {
		t := time.Now().Add(-d)
		return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()), nil
		}
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s, nil
	}
	return "", fmt.Errorf("%q is not a duration, an RFC 3339 time or Unix seconds", s)
}

// ExecCmd is `berth exec`.
func ExecCmd(g *Globals) *cobra.Command {
	var interactive, tty, detach, privileged bool
	var env []string
	var user, workdir string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command in a running container, in its namespaces and cgroup, with its
environment (plus -e) and as its user (or -u). The exit code is the command's.`,
		Args: cobra.MinimumNArgs(2),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ctx := cmd.Context()
			o := client.ExecCreateOptions{
				User: user, Privileged: privileged, TTY: tty, AttachStdin: interactive, AttachStdout: !detach,
				AttachStderr: !detach, Env: env, WorkingDir: workdir, Cmd: args[1:],
			}
			if tty {
				if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
					o.ConsoleSize = client.ConsoleSize{Height: uint(h), Width: uint(w)}
				}
			}
			ex, err := c.ExecCreate(ctx, args[0], o)
			if err != nil {
				return StatusError{Err: err, Code: 1}
			}
			if detach {
				_, err := c.ExecStart(ctx, ex.ID, client.ExecStartOptions{Detach: true})
				return err
			}
			att, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{TTY: tty, ConsoleSize: o.ConsoleSize})
			if err != nil {
				return err
			}
			defer att.Close()
			if tty && interactive {
				if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
					if st, err := term.MakeRaw(fd); err == nil {
						defer term.Restore(fd, st)
					}
				}
				winch := make(chan os.Signal, 1)
				signal.Notify(winch, syscall.SIGWINCH)
				defer signal.Stop(winch)
				go func() {
					for range winch {
						if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
							c.ExecResize(ctx, ex.ID, client.ExecResizeOptions{Height: uint(h), Width: uint(w)})
						}
					}
				}()
			}
			<-stream(att.HijackedResponse, interactive, tty, cmd.OutOrStdout(), cmd.ErrOrStderr())
			res, err := c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
			if err != nil {
				return err
			}
			if res.ExitCode != 0 {
				return StatusError{Code: res.ExitCode}
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&interactive, "interactive", "i", false, "attach stdin")
	f.BoolVarP(&tty, "tty", "t", false, "give the command a terminal")
	f.BoolVarP(&detach, "detach", "d", false, "run in the background")
	f.BoolVar(&privileged, "privileged", false, "give the command every capability")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable KEY=VALUE")
	f.StringVarP(&user, "user", "u", "", "user to run as: name|uid[:group|gid]")
	f.StringVarP(&workdir, "workdir", "w", "", "working directory")
	return cmd
}

// StartCmd is `berth start`.
func StartCmd(g *Globals) *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER...",
		Short: "Start stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ctx := cmd.Context()
			if attach || interactive {
				if len(args) > 1 {
					return errors.New("you cannot start and attach to more than one container at once")
				}
				ins, err := c.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
				if err != nil {
					return err
				}
				tty := ins.Container.Config.Tty
				att, err := c.ContainerAttach(ctx, args[0], client.ContainerAttachOptions{Stream: true, Stdin: interactive, Stdout: true, Stderr: true})
				if err != nil {
					return err
				}
				defer att.Close()
				wait := c.ContainerWait(ctx, args[0], client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
				if _, err := c.ContainerStart(ctx, args[0], client.ContainerStartOptions{}); err != nil {
					return err
				}
				<-stream(att.HijackedResponse, interactive, tty, cmd.OutOrStdout(), cmd.ErrOrStderr())
				select {
				case res := <-wait.Result:
					if res.StatusCode != 0 {
						return StatusError{Code: int(res.StatusCode)}
					}
				case err := <-wait.Error:
					return err
				}
				return nil
			}
			return each(cmd, args, func(ref string) error {
				_, err := c.ContainerStart(ctx, ref, client.ContainerStartOptions{})
				return err
			})
		}),
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach to the output and wait for the exit")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach stdin too")
	return cmd
}

// StopCmd is `berth stop` (and restart with restart set).
func StopCmd(g *Globals, restart bool) *cobra.Command {
	var timeout int
	var sig string
	use, short := "stop", "Stop running containers (SIGTERM, then SIGKILL after the timeout)"
	if restart {
		use, short = "restart", "Restart containers"
	}
	cmd := &cobra.Command{
		Use:   use + " [OPTIONS] CONTAINER...",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			var t *int
			if cmd.Flags().Changed("time") {
				t = &timeout
			}
			return each(cmd, args, func(ref string) error {
				if restart {
					_, err := c.ContainerRestart(cmd.Context(), ref, client.ContainerRestartOptions{Timeout: t, Signal: sig})
					return err
				}
				_, err := c.ContainerStop(cmd.Context(), ref, client.ContainerStopOptions{Timeout: t, Signal: sig})
				return err
			})
		}),
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before killing (default: the container's stop timeout, 10)")
	cmd.Flags().StringVarP(&sig, "signal", "s", "", "signal to stop with (default: the container's stop signal)")
	return cmd
}

// KillCmd is `berth kill`.
func KillCmd(g *Globals) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER...",
		Short: "Send a signal to running containers (SIGKILL by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			return each(cmd, args, func(ref string) error {
				_, err := c.ContainerKill(cmd.Context(), ref, client.ContainerKillOptions{Signal: sig})
				return err
			})
		}),
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal to send")
	return cmd
}

// RmCmd is `berth rm`.
func RmCmd(g *Globals) *cobra.Command {
	var force, volumes bool
	cmd := &cobra.Command{
		Use:   "rm [OPTIONS] CONTAINER...",
		Short: "Remove containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			return each(cmd, args, func(ref string) error {
				_, err := c.ContainerRemove(cmd.Context(), ref, client.ContainerRemoveOptions{Force: force, RemoveVolumes: volumes})
				return err
			})
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "remove the container's anonymous volumes too")
	return cmd
}

// WaitCmd is `berth wait`.
func WaitCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER...",
		Short: "Wait for containers to stop and print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			failed := false
			for _, ref := range args {
				w := c.ContainerWait(cmd.Context(), ref, client.ContainerWaitOptions{})
				select {
				case res := <-w.Result:
					fmt.Fprintln(cmd.OutOrStdout(), res.StatusCode)
				case err := <-w.Error:
					fmt.Fprintln(cmd.ErrOrStderr(), "Error response from daemon:", err)
					failed = true
				}
			}
			if failed {
				return StatusError{Code: 1}
			}
			return nil
		}),
	}
}

// InspectCmd is `berth inspect`.
func InspectCmd(g *Globals) *cobra.Command {
	var format, typ string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID...",
		Short: "Show containers (or images, networks, volumes) in detail, as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ctx := cmd.Context()
			var objs []any
			var failed bool
			for _, ref := range args {
				obj, err := inspectAny(ctx, c, typ, ref)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "Error:", err)
					failed = true
					continue
				}
				objs = append(objs, obj)
			}
			if err := printJSON(cmd.OutOrStdout(), format, objs); err != nil {
				return err
			}
			if failed {
				return StatusError{Code: 1}
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format with a Go template, e.g. '{{.State.Status}}'")
	cmd.Flags().StringVar(&typ, "type", "", "look only for a container, image, network or volume")
	return cmd
}

func inspectAny(ctx context.Context, c *client.Client, typ, ref string) (any, error) {
	if typ == "" || typ == "container" {
		res, err := c.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
		if err == nil || typ == "container" {
			return json.RawMessage(res.Raw), err
		}
	}
	if typ == "" || typ == "image" {
		res, err := c.ImageInspect(ctx, ref)
		if err == nil || typ == "image" {
			return res.InspectResponse, err
		}
	}
	if typ == "" || typ == "network" {
		res, err := c.NetworkInspect(ctx, ref, client.NetworkInspectOptions{})
		if err == nil || typ == "network" {
			return json.RawMessage(res.Raw), err
		}
	}
	if typ == "" || typ == "volume" {
		res, err := c.VolumeInspect(ctx, ref, client.VolumeInspectOptions{})
		if err == nil || typ == "volume" {
			return json.RawMessage(res.Raw), err
		}
	}
	return nil, fmt.Errorf("no such object: %s", ref)
}

// TopCmd is `berth top`.
func TopCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Show a container's processes",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			res, err := c.ContainerTop(cmd.Context(), args[0], client.ContainerTopOptions{Arguments: args[1:]})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, strings.Join(res.Titles, "\t"))
			for _, p := range res.Processes {
				fmt.Fprintln(tw, strings.Join(p, "\t"))
			}
			return tw.Flush()
		}),
	}
}

// AttachCmd is `berth attach`.
func AttachCmd(g *Globals) *cobra.Command {
	var noStdin bool
	cmd := &cobra.Command{
		Use:   "attach CONTAINER",
		Short: "Attach to a running container's stdin and output",
		Args:  cobra.ExactArgs(1),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ctx := cmd.Context()
			ins, err := c.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			cfg := ins.Container.Config
			stdin := cfg.OpenStdin && !noStdin
			att, err := c.ContainerAttach(ctx, args[0], client.ContainerAttachOptions{Stream: true, Stdin: stdin, Stdout: true, Stderr: true})
			if err != nil {
				return err
			}
			defer att.Close()
			if cfg.Tty && stdin {
				if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
					if st, err := term.MakeRaw(fd); err == nil {
						defer term.Restore(fd, st)
					}
					if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
						c.ContainerResize(ctx, args[0], client.ContainerResizeOptions{Height: uint(h), Width: uint(w)})
					}
				}
			}
			<-stream(att.HijackedResponse, stdin, cfg.Tty, cmd.OutOrStdout(), cmd.ErrOrStderr())
			after, err := c.ContainerInspect(ctx, args[0], client.ContainerInspectOptions{})
			if err == nil && !after.Container.State.Running && after.Container.State.ExitCode != 0 {
				return StatusError{Code: after.Container.State.ExitCode}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach stdin")
	return cmd
}

// EventsCmd is `berth events`.
func EventsCmd(g *Globals) *cobra.Command {
	var since, until, format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Stream the daemon's events (container create, start, die, destroy, ...)",
		Args:  cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, c *client.Client) error {
			o := client.EventsListOptions{Filters: client.Filters{}}
			var err error
			if since != "" {
				if o.Since, err = timeArg(since); err != nil {
					return fmt.Errorf("--since: %w", err)
				}
			}
			if until != "" {
				if o.Until, err = timeArg(until); err != nil {
					return fmt.Errorf("--until: %w", err)
				}
			}
			for _, kv := range filters {
				k, v, _ := strings.Cut(kv, "=")
				o.Filters.Add(k, v)
			}
			res := c.Events(cmd.Context(), o)
			out := cmd.OutOrStdout()
			for {
				select {
				case m, ok := <-res.Messages:
					if !ok {
						return nil
					}
					if format == "json" || format == "{{json .}}" {
						b, _ := json.Marshal(m)
						fmt.Fprintln(out, string(b))
						continue
					}
					var attrs []string
					for k, v := range m.Actor.Attributes {
						attrs = append(attrs, k+"="+v)
					}
					sort.Strings(attrs)
					fmt.Fprintf(out, "%s %s %s %s (%s)\n", time.Unix(0, m.TimeNano).Format(time.RFC3339Nano), m.Type, m.Action, m.Actor.ID, strings.Join(attrs, ", "))
				case err := <-res.Err:
					if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
						return nil
					}
					return err
				}
			}
		}),
	}
	cmd.Flags().StringVar(&since, "since", "", "show events since a time (as logs --since)")
	cmd.Flags().StringVar(&until, "until", "", "stop at a time")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "filter: type=, event=, container=, image=")
	cmd.Flags().StringVar(&format, "format", "", "json: one JSON object per event")
	return cmd
}

// StatsCmd is `berth stats`.
func StatsCmd(g *Globals) *cobra.Command {
	var noStream bool
	out := &output{}
	cmd := &cobra.Command{
		Use:   "stats [CONTAINER...]",
		Short: "Show containers' CPU, memory, network, block I/O and process counts",
		RunE: g.withClient(func(cmd *cobra.Command, args []string, c *client.Client) error {
			ctx := cmd.Context()
			for {
				ids := args
				if len(ids) == 0 {
					res, err := c.ContainerList(ctx, client.ContainerListOptions{})
					if err != nil {
						return err
					}
					for _, s := range res.Items {
						ids = append(ids, s.ID)
					}
				}
				var rows [][]string
				var objs, data []any
				for _, id := range ids {
					res, err := c.ContainerStats(ctx, id, client.ContainerStatsOptions{})
					if err != nil {
						return err
					}
					var st container.StatsResponse
					err = json.NewDecoder(res.Body).Decode(&st)
					res.Body.Close()
					if err != nil {
						return err
					}
					row := statsRow(id, st)
					rows = append(rows, row)
					objs = append(objs, st)
					data = append(data, map[string]string{"Container": row[0], "Name": row[1], "CPUPerc": row[2], "MemUsage": row[3], "MemPerc": row[4], "NetIO": row[5], "BlockIO": row[6], "PIDs": row[7]})
				}
				if !noStream && out.kind == "" && out.format == "" {
					fmt.Fprint(cmd.OutOrStdout(), "\x1b[2J\x1b[H")
				}
				if err := out.print(cmd.OutOrStdout(), []string{"CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"}, rows, objs, data); err != nil {
					return err
				}
				if noStream {
					return nil
				}
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return nil
				}
			}
		}),
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one sample and exit")
	out.flags(cmd)
	return cmd
}

func statsRow(id string, st container.StatsResponse) []string {
	cpu := 0.0
	if d := float64(st.CPUStats.SystemUsage) - float64(st.PreCPUStats.SystemUsage); d > 0 {
		used := float64(st.CPUStats.CPUUsage.TotalUsage) - float64(st.PreCPUStats.CPUUsage.TotalUsage)
		cpu = used / d * float64(max(st.CPUStats.OnlineCPUs, 1)) * 100
	}
	mem := float64(st.MemoryStats.Usage)
	if cache, ok := st.MemoryStats.Stats["total_inactive_file"]; ok && float64(cache) < mem {
		mem -= float64(cache)
	} else if cache, ok := st.MemoryStats.Stats["inactive_file"]; ok && float64(cache) < mem {
		mem -= float64(cache)
	}
	limit := float64(st.MemoryStats.Limit)
	memPerc := 0.0
	if limit > 0 && limit < 1<<62 {
		memPerc = mem / limit * 100
	}
	var rx, tx float64
	for _, n := range st.Networks {
		rx += float64(n.RxBytes)
		tx += float64(n.TxBytes)
	}
	var rd, wr float64
	for _, e := range st.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			rd += float64(e.Value)
		case "write":
			wr += float64(e.Value)
		}
	}
	limitS := "unlimited"
	if limit > 0 && limit < 1<<62 {
		limitS = humanBytes(limit)
	}
	return []string{shortID(id), strings.TrimPrefix(st.Name, "/"), fmt.Sprintf("%.2f%%", cpu),
		humanBytes(mem) + " / " + limitS, fmt.Sprintf("%.2f%%", memPerc),
		humanSize(rx) + " / " + humanSize(tx), humanSize(rd) + " / " + humanSize(wr), strconv.FormatUint(st.PidsStats.Current, 10)}
}
