// Package shim is the monitor that is a container's parent, the role of
// containerd's shim and podman's conmon: one small process per container
// (and per exec) that runs the low-level runtime, holds the process's
// stdio (pipes or a terminal), writes its log, reaps it and records how it
// exited, so that the engine may die and come back without the container
// noticing.
//
// The engine starts one with Launch and talks to it over a unix socket in
// the monitor's directory (Client): start, attach, resize, kill, wait.
// Each request is one JSON line on a connection of its own, answered by
// one JSON line; an attach then carries the streams. When the process has
// exited, the monitor writes exit.json in its directory, answers its
// waiters and exits: a caller that finds no monitor reads the file.
package shim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// Config is what a monitor runs, written as config.json in its directory.
type Config struct {
	// ID is the container's ID for the runtime.
	ID string `json:"id"`
	// Runtime is the runc-compatible command and its global flags
	// (e.g. ["/usr/sbin/runc", "--root", "/run/berth/runc"]).
	Runtime []string `json:"runtime"`
	// Bundle, for a container's init process: the monitor runs `create`
	// on it, and `start` when asked.
	Bundle string `json:"bundle,omitempty"`
	// Process, for an exec: the process.json the monitor passes to
	// `exec --detach`. Its output waits for the first attach (or a
	// release) so that none is lost.
	Process string `json:"process,omitempty"`
	// Terminal gives the process a pty (the runtime's --console-socket).
	Terminal bool `json:"terminal,omitempty"`
	// Stdin keeps the process's stdin open for attaches; StdinOnce
	// closes it when the first attach that wrote to it ends.
	Stdin     bool `json:"stdin,omitempty"`
	StdinOnce bool `json:"stdinOnce,omitempty"`
	// Log, if set, receives the output in Docker's json-file format.
	Log *LogConfig `json:"log,omitempty"`
}

// LogConfig places and rotates the log.
type LogConfig struct {
	Path     string `json:"path"`
	MaxSize  int64  `json:"maxSize,omitempty"`
	MaxFiles int    `json:"maxFiles,omitempty"`
}

// Exit is how the process ended.
type Exit struct {
	Pid int `json:"pid"`
	// Code is the exit status, or 128+N for a process killed by signal N
	// (as a shell reports it).
	Code   int       `json:"code"`
	Signal int       `json:"signal,omitempty"`
	At     time.Time `json:"at"`
}

// The files of a monitor's directory.
const (
	configFile  = "config.json"
	socketFile  = "sock"
	pidFile     = "pid"
	exitFile    = "exit.json"
	runtimeLog  = "runtime.log"
	consoleFile = "console.sock"
)

// request is one call on the socket.
type request struct {
	Op     string `json:"op"` // start, attach, release, resize, kill, wait, state
	Stdin  bool   `json:"stdin,omitempty"`
	Stdout bool   `json:"stdout,omitempty"`
	Stderr bool   `json:"stderr,omitempty"`
	Rows   uint16 `json:"rows,omitempty"`
	Cols   uint16 `json:"cols,omitempty"`
	Signal int    `json:"signal,omitempty"`
	All    bool   `json:"all,omitempty"`
}

// response answers a request.
type response struct {
	Error   string `json:"error,omitempty"`
	Pid     int    `json:"pid,omitempty"`
	Running bool   `json:"running,omitempty"`
	Exit    *Exit  `json:"exit,omitempty"`
}

// Stream numbers of attach frames, as Docker's multiplexed streams: a
// frame is [stream, 0, 0, 0, size (4 bytes, big endian)] then the bytes.
// With a terminal there is one stream and no frames.
const (
	Stdout = 1
	Stderr = 2
)

// ReadExit reads the exit a monitor recorded in dir, if it did.
func ReadExit(dir string) (Exit, bool) {
	var e Exit
	b, err := os.ReadFile(filepath.Join(dir, exitFile))
	if err != nil || json.Unmarshal(b, &e) != nil {
		return e, false
	}
	return e, true
}
