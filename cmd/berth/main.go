// Command berth is the whole container stack in one binary. Invoked as
// berth-runc it is a drop-in runc; as berth it offers that CLI under
// `berth runtime` beside the rest.

// Berth sets GOMAXPROCS itself (see main); the default derived from the
// cgroup's CPU limit costs every start a walk of /proc/self/mountinfo.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/berth-dev/berth/cmd/berth/commands/imagecmd"
	"github.com/berth-dev/berth/cmd/berth/commands/runtimecmd"
	"github.com/berth-dev/berth/internal/version"
	"github.com/spf13/cobra"
)

func init() {
	// The main goroutine keeps the main thread: the runtime sets up a
	// container's root filesystem from a thread that enters the
	// container's namespaces and is thrown away after, which must never
	// be the main one (it cannot exit, and /proc/self would show the
	// container's namespaces from then on).
	goruntime.LockOSThread()
}

func main() {
	if filepath.Base(os.Args[0]) == "berth-runc" || (len(os.Args) > 1 && os.Args[1] == "runtime") {
		// The runtime's commands overlap a few things (a config decoded
		// while the cgroup is made and the container process starts; a
		// root set up while the caller waits), most of them in system
		// calls; more Ps than two only add idle threads to wake.
		goruntime.GOMAXPROCS(min(goruntime.NumCPU(), 2))
	}
	var root *cobra.Command
	if filepath.Base(os.Args[0]) == "berth-runc" {
		root = runtimecmd.New("berth-runc")
	} else {
		root = newRoot()
	}
	err := root.Execute()
	if err == nil {
		return
	}
	var ec runtimecmd.ExitCode
	if errors.As(err, &ec) {
		os.Exit(int(ec))
	}
	fmt.Fprintln(os.Stderr, "berth:", err)
	os.Exit(1)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "The container stack in one binary: OCI runtime, images, engine, CRI, Docker and Kubernetes APIs",
		Long: `Berth runs containers from an OCI bundle up to a Kubernetes-style cluster.

Each layer works with the tools people already use:
  berth runtime ...   an OCI runtime with runc's command line (also as berth-runc)
  berth image ...     images: import, load, save, ls, inspect, tag, rm, prune, unpack`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	g := &imagecmd.Globals{}
	pf := root.PersistentFlags()
	pf.StringVar(&g.Root, "root", envOr("BERTH_ROOT", "/var/lib/berth"), "directory of Berth's image store and state (env BERTH_ROOT)")
	pf.StringVar(&g.Snapshotter, "snapshotter", "", "how layers are stored: overlay or copy (default: overlay where it works; a store keeps the one it was made with)")
	logLevel := pf.String("log-level", "warn", "log level: debug, info, warn or error")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		g.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
		return nil
	}
	root.AddCommand(runtimecmd.New("runtime"))
	root.AddCommand(imagecmd.New(g))
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print Berth's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.Long())
		},
	})
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
