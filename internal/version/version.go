// Package version says which Berth this is.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Version is set at build time with -ldflags "-X .../version.Version=...".
var Version = "0.1.0-dev"

// Commit is the VCS revision the binary was built from, if known.
func Commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// String is the one-line version.
func String() string { return "berth version " + Version }

// Long is the version block runc prints, with Berth's values.
func Long() string {
	return fmt.Sprintf("berth version %s\ncommit: %s\nspec: %s\ngo: %s", Version, Commit(), specs.Version, runtime.Version())
}
