// Command berth is the whole container stack in one binary. Invoked as
// berth-runc it is a drop-in runc; as berth it offers that CLI under
// `berth runtime` beside the rest; as berth-shim (or `berth shim`) it is a
// container's monitor. Built with -tags berthrunc it is that runtime CLI
// alone (see root_runc.go), which make installs as bin/berth-runc; with
// -tags berthshim the monitor alone (main_shim.go), bin/berth-shim.

//go:build !berthshim

// Berth sets GOMAXPROCS itself (see main); the default derived from the
// cgroup's CPU limit costs every start a walk of /proc/self/mountinfo.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/berth-dev/berth/cmd/berth/commands/runtimecmd"
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
	if shimMain != nil && (filepath.Base(os.Args[0]) == "berth-shim" || (len(os.Args) > 1 && os.Args[1] == "shim")) {
		os.Exit(shimMain())
	}
	if filepath.Base(os.Args[0]) == "berth-runc" || (len(os.Args) > 1 && os.Args[1] == "runtime") {
		// The runtime's commands overlap a few things (a config decoded
		// while the cgroup is made and the container process starts; a
		// root set up while the caller waits), most of them in system
		// calls; more Ps than two only add idle threads to wake.
		goruntime.GOMAXPROCS(min(goruntime.NumCPU(), 2))
	}
	var root *cobra.Command
	if filepath.Base(os.Args[0]) == "berth-runc" || runtimeOnly {
		root = runtimecmd.New(filepath.Base(os.Args[0]))
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
	var se interface{ ExitStatus() int }
	if errors.As(err, &se) {
		if msg := err.Error(); !strings.HasPrefix(msg, "exit status ") {
			fmt.Fprintln(os.Stderr, "berth:", msg)
		}
		os.Exit(se.ExitStatus())
	}
	fmt.Fprintln(os.Stderr, "berth:", err)
	os.Exit(1)
}
