// Package runtimecmd is runc's command line over Berth's runtime package, flag
// for flag, so that `berth runtime` (or the binary named berth-runc) can stand
// wherever containerd, podman or a script call runc.
package runtimecmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/berth-dev/berth/internal/version"
	"github.com/berth-dev/berth/runtime"
	"github.com/spf13/cobra"
)

// ExitCode is returned by commands whose exit status is a container's.
type ExitCode int

func (e ExitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// DefaultRoot is where container state lives unless --root says otherwise.
const DefaultRoot = "/run/berth/runtime"

type globals struct {
	root          string
	log           string
	logFormat     string
	debug         bool
	systemdCgroup bool
	rootless      string
	criu          string
	logFile       *os.File
	rt            *runtime.Runtime
}

// New returns the runc-compatible command tree, named use.
func New(use string) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   use,
		Short: "Run containers from OCI bundles (runc's command line)",
		Long: `An OCI runtime with runc's command line.

A bundle is a directory with a root filesystem and a config.json (see "spec").
The usual lifecycle is create, start, then delete once the container has
stopped; run does all three for a container in the foreground.

State of each container is kept under --root. Invoked as berth-runc, this
binary accepts exactly what runc does, so containerd, podman and docker can
use it as their runtime.`,
		// The long form reads the build info: only when it is asked for.
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.setup()
		},
		PersistentPostRun: func(*cobra.Command, []string) {
			if g.logFile != nil {
				g.logFile.Close()
			}
		},
	}
	cobra.AddTemplateFunc("longVersion", version.Long)
	cmd.SetVersionTemplate("{{longVersion}}\n")
	f := cmd.PersistentFlags()
	f.StringVar(&g.root, "root", DefaultRoot, "directory for the state of containers")
	f.StringVar(&g.log, "log", "", "write logs to this file instead of stderr")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&g.debug, "debug", false, "log debug messages")
	f.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "accept systemd-style cgroup paths (slice:prefix:name); Berth then explains that it manages cgroups directly")
	f.StringVar(&g.rootless, "rootless", "auto", "accepted for runc compatibility")
	f.StringVar(&g.criu, "criu", "criu", "accepted for runc compatibility; checkpoint and restore are not supported")
	_ = f.MarkHidden("criu")

	cmd.AddCommand(
		g.specCmd(), g.createCmd(), g.startCmd(), g.runCmd(), g.stateCmd(), g.killCmd(),
		g.deleteCmd(), g.execCmd(), g.psCmd(), g.listCmd(), g.pauseCmd(), g.resumeCmd(),
		g.updateCmd(), g.eventsCmd(), g.featuresCmd(), unsupported("checkpoint"), unsupported("restore"),
	)
	// The wrapper turns errors into runc's behaviour: logged, printed, exit 1.
	wrapErrors(cmd, g)
	return cmd
}

func (g *globals) setup() error {
	var w io.Writer = os.Stderr
	if g.log != "" {
		f, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("open log %s: %w", g.log, err)
		}
		g.logFile = f
		w = f
	}
	level := slog.LevelInfo
	if g.debug {
		level = slog.LevelDebug
	}
	// Lower-case levels: containerd reads the last "error" entry of
	// runc's JSON log to explain a failure.
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey {
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		return a
	}}
	var h slog.Handler
	switch g.logFormat {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	default:
		return fmt.Errorf("--log-format: %q is not text or json", g.logFormat)
	}
	g.rt = &runtime.Runtime{Root: g.root, SystemdCgroup: g.systemdCgroup, Log: slog.New(h)}
	return nil
}

// wrapErrors logs every command's error the way runc does (to --log when
// given) and prints it on stderr.
func wrapErrors(root *cobra.Command, g *globals) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error {
				err := run(cmd, args)
				var ec ExitCode
				if err == nil || errors.As(err, &ec) {
					return err
				}
				if g.rt != nil && g.logFile != nil {
					g.rt.Log.Error(err.Error())
				}
				fmt.Fprintln(os.Stderr, "error:", err)
				return ExitCode(1)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func unsupported(name string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              name + " is not supported",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("%s is not supported by Berth", name)
		},
	}
}

func exactID(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%q needs exactly one container ID, got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}

func printJSON(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}
