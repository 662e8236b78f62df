//go:build berthshim

// Built with -tags berthshim, the binary is the container monitor alone
// (engine/shim), which make installs as bin/berth-shim: one runs beside
// every container for as long as it lives, so what it maps and allocates
// is paid once per container; it links nothing else.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"os"
	goruntime "runtime"

	"github.com/berth-dev/berth/engine/shim"
)

func main() {
	// Copying output and answering a few requests: one P is plenty,
	// and each more is an idle thread per container.
	goruntime.GOMAXPROCS(1)
	os.Exit(shim.Main(os.Args))
}
