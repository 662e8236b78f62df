//go:build !berthrunc && !berthshim

package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/cmd/berth/commands/daemoncmd"
	"github.com/berth-dev/berth/cmd/berth/commands/enginecmd"
	"github.com/berth-dev/berth/cmd/berth/commands/imagecmd"
	"github.com/berth-dev/berth/cmd/berth/commands/registrycmd"
	"github.com/berth-dev/berth/cmd/berth/commands/runtimecmd"
	"github.com/berth-dev/berth/engine/shim"
	"github.com/berth-dev/berth/internal/version"
	"github.com/spf13/cobra"
)

// runtimeOnly is false in the full binary: it is every command, and the
// runtime's CLI only when invoked as berth-runc.
const runtimeOnly = false

// shimMain is the container monitor, `berth shim DIR` or berth-shim DIR
// (a variable: the runtime-only build has none).
var shimMain = func() int {
	args := os.Args
	if filepath.Base(args[0]) != "berth-shim" {
		args = args[1:] // "shim" DIR
	}
	return shim.Main(args)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "The container stack in one binary: OCI runtime, images, engine, CRI, Docker and Kubernetes APIs",
		Long: `Berth runs containers from an OCI bundle up to a Kubernetes-style cluster.

Each layer works with the tools people already use:
  berth daemon        the container engine, serving the Docker Engine API
  berth run, ps, ...  docker's verbs, against the daemon (-H, BERTH_HOST)
  berth runtime ...   an OCI runtime with runc's command line (also as berth-runc)
  berth image ...     images: import, load, save, ls, inspect, tag, rm, prune, unpack
  berth registry ...  an OCI registry server`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	g := &imagecmd.Globals{}
	pf := root.PersistentFlags()
	pf.StringVar(&g.Root, "root", imagecmd.EnvOr("BERTH_ROOT", "/var/lib/berth"), "directory of Berth's image store and state (env BERTH_ROOT)")
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
	eg := &enginecmd.Globals{}
	pf.StringVarP(&eg.Host, "host", "H", "", "the daemon's socket, unix:///path (env BERTH_HOST; default "+enginecmd.DefaultHost+")")
	pullCmd := imagecmd.PullCmd(g)
	storePull := pullCmd.RunE
	pullCmd.RunE = func(cmd *cobra.Command, args []string) error {
		// Through the daemon when one answers (it holds the store);
		// straight into the store when none runs.
		if eg.Host != "" || os.Getenv("BERTH_HOST") != "" || eg.Reachable(cmd.Context()) {
			q, _ := cmd.Flags().GetBool("quiet")
			return enginecmd.PullThroughDaemon(eg, cmd, args[0], q)
		}
		return storePull(cmd, args)
	}
	root.AddCommand(pullCmd, imagecmd.PushCmd(g), imagecmd.LoginCmd(), imagecmd.LogoutCmd())
	root.AddCommand(daemoncmd.New(&g.Root, func() *slog.Logger { return g.Log }))
	root.AddCommand(
		enginecmd.RunCmd(eg), enginecmd.CreateCmd(eg), enginecmd.StartCmd(eg), enginecmd.StopCmd(eg, false),
		enginecmd.StopCmd(eg, true), enginecmd.KillCmd(eg), enginecmd.RmCmd(eg), enginecmd.WaitCmd(eg),
		enginecmd.PsCmd(eg), enginecmd.LogsCmd(eg), enginecmd.ExecCmd(eg), enginecmd.InspectCmd(eg),
		enginecmd.TopCmd(eg), enginecmd.AttachCmd(eg), enginecmd.EventsCmd(eg), enginecmd.StatsCmd(eg),
		enginecmd.ImagesCmd(eg), enginecmd.NetworkCmd(eg), enginecmd.VolumeCmd(eg), enginecmd.CpCmd(eg),
	)
	root.AddCommand(registrycmd.New(&g.Root, func() *slog.Logger { return g.Log }))
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
