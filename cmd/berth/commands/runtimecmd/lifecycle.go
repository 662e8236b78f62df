package runtimecmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/config"
	"github.com/berth-dev/berth/runtime/console"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func (g *globals) specCmd() *cobra.Command {
	var bundle string
	var rootless bool
	cmd := &cobra.Command{
		Use:   "spec",
		Short: "Write a starting config.json for a bundle",
		Long: `Write a config.json into the bundle directory: an interactive sh in ./rootfs
with its own namespaces, a read-only root and the usual mounts. Edit it, put a
root filesystem in rootfs/, and run the bundle.`,
		Example: `  mkdir -p demo/rootfs && cp /bin/busybox demo/rootfs/ && cd demo
  berth runtime spec
  berth runtime run demo`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path := filepath.Join(bundle, config.Name)
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s exists already; remove it first", path)
			}
			spec := config.Default()
			if rootless {
				config.Rootless(spec)
			}
			b, err := json.MarshalIndent(spec, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, append(b, '\n'), 0o666)
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory to write config.json into")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "write a config for a container run by an unprivileged user")
	return cmd
}

type createFlags struct {
	bundle        string
	consoleSocket string
	pidFile       string
	noPivot       bool
	noNewKeyring  bool
	preserveFDs   int
}

func (f *createFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.bundle, "bundle", "b", ".", "bundle directory (holding config.json)")
	fl.StringVar(&f.consoleSocket, "console-socket", "", "unix socket to send the terminal's master to, when process.terminal is true")
	fl.StringVar(&f.pidFile, "pid-file", "", "file to write the container init's PID to")
	fl.BoolVar(&f.noPivot, "no-pivot", false, "move the root instead of pivot_root (for roots on a ramdisk)")
	fl.BoolVar(&f.noNewKeyring, "no-new-keyring", false, "keep the caller's session keyring instead of creating one")
	fl.IntVar(&f.preserveFDs, "preserve-fds", 0, "pass descriptors 3 .. 3+N-1 on to the container")
}

func (f *createFlags) opts() *runtime.CreateOpts {
	return &runtime.CreateOpts{
		Bundle:        f.bundle,
		PidFile:       f.pidFile,
		ConsoleSocket: f.consoleSocket,
		NoPivot:       f.noPivot,
		NoNewKeyring:  f.noNewKeyring,
		PreserveFDs:   f.preserveFDs,
		Stdin:         os.Stdin,
		Stdout:        os.Stdout,
		Stderr:        os.Stderr,
	}
}

func (g *globals) createCmd() *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create [flags] <container-id>",
		Short: "Create a container, ready to start",
		Long: `Create a container from a bundle: namespaces, mounts, cgroup and the init
process, which then waits for "start" before it runs the configured program.`,
		Args: exactID,
		RunE: func(_ *cobra.Command, args []string) error {
			_, err := g.rt.Create(args[0], f.opts())
			return err
		},
	}
	f.add(cmd)
	return cmd
}

func (g *globals) startCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start <container-id>",
		Short: "Run the program of a created container",
		Args:  exactID,
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.rt.Load(args[0])
			if err != nil {
				return err
			}
			return c.Start()
		},
	}
}

func (g *globals) runCmd() *cobra.Command {
	var f createFlags
	var detach, keep, noSubreaper bool
	cmd := &cobra.Command{
		Use:   "run [flags] <container-id>",
		Short: "Create and start a container, and wait for it",
		Long: `Create and start a container. Without --detach, run stays in the foreground:
it forwards signals to the container, relays its terminal, exits with its exit
code (128+N if signal N killed it), and deletes it afterwards.`,
		Args: exactID,
		RunE: func(_ *cobra.Command, args []string) error {
			return g.run(args[0], &f, detach, keep, noSubreaper)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "return once the container runs, leaving it running")
	cmd.Flags().BoolVar(&keep, "keep", false, "do not delete the container after it exits")
	cmd.Flags().BoolVar(&noSubreaper, "no-subreaper", false, "accepted for runc compatibility")
	return cmd
}

func (g *globals) run(id string, f *createFlags, detach, keep, _ bool) error {
	o := f.opts()
	o.Start = true
	var recv *os.File
	if !detach && f.consoleSocket == "" {
		// The caller will own the terminal, if the config asks for one.
		r, s, err := console.Pair()
		if err != nil {
			return err
		}
		recv = r
		defer recv.Close()
		o.Console = s
		defer s.Close()
	}
	var fwd *runtime.SignalForwarder
	if !detach {
		if err := runtime.SetSubreaper(); err != nil {
			return fmt.Errorf("become subreaper: %w", err)
		}
		fwd = runtime.NewSignalForwarder()
	}
	c, err := g.rt.Create(id, o)
	if err != nil {
		return err
	}
	var tty *os.File
	if spec, _ := c.Spec(); !detach && spec.Process.Terminal {
		master, err := console.RecvFd(recv)
		if err != nil {
			_ = c.Delete(true)
			return err
		}
		tty = master
	}
	if detach {
		return nil
	}
	var term *runtime.Terminal
	if tty != nil {
		term = runtime.AttachTerminal(tty)
	}
	fwd.Start(c.Pid(), tty)
	ws, err := runtime.WaitReaping(c.Pid())
	fwd.Stop()
	if term != nil {
		term.Close()
	}
	if !keep {
		if derr := c.Delete(true); derr != nil && err == nil {
			err = derr
		}
	}
	if err != nil {
		return err
	}
	return ExitCode(runtime.ExitCode(ws))
}

func (g *globals) stateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "state <container-id>",
		Short: "Print a container's state as the OCI spec defines it (JSON)",
		Args:  exactID,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.rt.Load(args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), c.State(), true)
		},
	}
}

// parseSignal accepts a number, a name, or a name without its SIG prefix.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %d is out of range", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	if strings.HasPrefix(name, "SIGRTMIN") || strings.HasPrefix(name, "SIGRTMAX") {
		base, off := 34, 0
		rest := name[len("SIGRTMIN"):]
		if strings.HasPrefix(name, "SIGRTMAX") {
			base = 64
		}
		if rest != "" {
			n, err := strconv.Atoi(rest)
			if err != nil {
				return 0, fmt.Errorf("unknown signal %q", s)
			}
			off = n
		}
		return unix.Signal(base + off), nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func (g *globals) killCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "kill [flags] <container-id> [signal]",
		Short: "Send a signal (default SIGTERM) to a container's init",
		Long:  "Send a signal to a container's init process, or to all its processes with --all. The signal is a name (KILL, SIGKILL) or number.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("%q needs a container ID and optionally a signal", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				s, err := parseSignal(args[1])
				if err != nil {
					return err
				}
				sig = s
			}
			c, err := g.rt.Load(args[0])
			if err != nil {
				return err
			}
			return c.Kill(sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "signal every process in the container")
	return cmd
}

func (g *globals) deleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "delete [flags] <container-id>",
		Aliases: []string{"rm"},
		Short:   "Delete a stopped container and everything it holds",
		Args:    exactID,
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.rt.Load(args[0])
			if err != nil {
				if errors.Is(err, runtime.ErrNotExist) {
					if removed, rerr := g.rt.RemoveLeftover(args[0]); removed || rerr != nil {
						return rerr
					}
					if force {
						return nil
					}
				}
				return err
			}
			return c.Delete(force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	return cmd
}

func (g *globals) pauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pause <container-id>",
		Short: "Freeze every process of a container",
		Args:  exactID,
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.rt.Load(args[0])
			if err != nil {
				return err
			}
			return c.Pause()
		},
	}
}

func (g *globals) resumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resume <container-id>",
		Short: "Thaw a paused container",
		Args:  exactID,
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.rt.Load(args[0])
			if err != nil {
				return err
			}
			return c.Resume()
		},
	}
}
