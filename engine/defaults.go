package engine

import (
	"os"
	"os/exec"
	"path/filepath"
)

// DefaultMonitor is the monitor command a daemon uses: bin/berth-shim
// beside the running binary (the monitor alone, small), else the
// binary's own `shim` command.
func DefaultMonitor() []string {
	self, err := os.Executable()
	if err != nil {
		return []string{"berth-shim"}
	}
	if shim := filepath.Join(filepath.Dir(self), "berth-shim"); isExecutable(shim) {
		return []string{shim}
	}
	return []string{self, "shim"}
}

// DefaultRuntimes are the runtimes a daemon offers: "berth" (berth-runc
// beside the running binary, else its `runtime` command), and runc and
// crun where they are installed.
func DefaultRuntimes() map[string][]string {
	rts := map[string][]string{}
	if self, err := os.Executable(); err == nil {
		rts["berth"] = []string{self, "runtime"}
		if rc := filepath.Join(filepath.Dir(self), "berth-runc"); isExecutable(rc) {
			rts["berth"] = []string{rc}
		}
	}
	for _, name := range []string{"runc", "crun"} {
		if p, err := exec.LookPath(name); err == nil {
			rts[name] = []string{p}
		}
	}
	return rts
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
