//go:build berthrunc

package main

import "github.com/spf13/cobra"

// runtimeOnly: built with -tags berthrunc, the binary is the OCI runtime's
// command line alone, whatever its name, with nothing else linked. It is
// what `make build` installs as bin/berth-runc, for the callers that start
// a runtime process per container operation (containerd's shim, podman,
// docker): a run of the full binary maps the code of everything it holds
// and runs every package's initialisation, which a runtime call pays for in
// time and memory and has no use for. The runtime's code and CLI are the
// same in both.
const runtimeOnly = true

// shimMain: the runtime-only build has no monitor.
var shimMain func() int

func newRoot() *cobra.Command { panic("unreachable: the runtime-only build has no other commands") }
