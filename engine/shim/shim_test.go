package shim_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/engine/logs"
	"github.com/berth-dev/berth/engine/shim"
	"github.com/berth-dev/berth/internal/fixture"
	"github.com/berth-dev/berth/runtime/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var berthBin string

func TestMain(m *testing.M) {
	os.Exit(fixture.RunAsRoot(m, "monitor", &berthBin, "berth-shim-test"))
}

var seq atomic.Int64

// box is a busybox bundle, a runtime root and a monitor directory.
type box struct {
	t                     *testing.T
	id, bundle, root, dir string
	spec                  *specs.Spec
	runtime               []string
}

func newBox(t *testing.T, args ...string) *box {
	t.Helper()
	b := &box{t: t, id: fmt.Sprintf("shim-test-%d-%d", os.Getpid(), seq.Add(1)), bundle: t.TempDir(), root: t.TempDir(), dir: t.TempDir()}
	if err := fixture.BusyboxRootfs(filepath.Join(b.bundle, "rootfs")); err != nil {
		t.Fatal(err)
	}
	b.spec = config.Default()
	b.spec.Process.Terminal = false
	b.spec.Process.Args = args
	b.spec.Linux.CgroupsPath = "/berth-shim-test/" + b.id
	b.runtime = []string{berthBin, "runtime", "--root", b.root}
	t.Cleanup(func() {
		exec.Command(berthBin, "runtime", "--root", b.root, "delete", "--force", b.id).Run()
	})
	return b
}

func (b *box) launch(cfg shim.Config) (int, error) {
	b.t.Helper()
	data, _ := json.Marshal(b.spec)
	if err := os.WriteFile(filepath.Join(b.bundle, "config.json"), data, 0o644); err != nil {
		b.t.Fatal(err)
	}
	cfg.ID, cfg.Runtime = b.id, b.runtime
	if cfg.Process == "" {
		cfg.Bundle = b.bundle
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return shim.Launch(ctx, berthBin, []string{"shim"}, b.dir, cfg)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// demux splits framed output into stdout and stderr.
func demux(t *testing.T, r io.Reader) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return out.String(), errb.String()
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		w := &out
		if hdr[0] == shim.Stderr {
			w = &errb
		}
		if _, err := io.CopyN(w, r, int64(n)); err != nil {
			t.Fatal(err)
		}
	}
}

// A container's output reaches the attached client in frames and the
// log as json-file entries; its exit is answered to a waiter and left in
// exit.json; the monitor deletes the runtime's container and goes.
func TestMonitorRunsAContainerToItsEnd(t *testing.T) {
	b := newBox(t, "sh", "-c", "echo out; echo err >&2; exit 3")
	logPath := filepath.Join(b.dir, "log.json")
	pid, err := b.launch(shim.Config{Log: &shim.LogConfig{Path: logPath}})
	if err != nil {
		t.Fatal(err)
	}
	if pid <= 0 {
		t.Fatalf("pid %d", pid)
	}
	c := shim.Client{Dir: b.dir}
	conn, r, err := c.Attach(ctx(t), false, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := demux(t, r)
	conn.Close()
	if stdout != "out\n" || stderr != "err\n" {
		t.Fatalf("attached: stdout %q stderr %q", stdout, stderr)
	}
	exit, err := c.Wait(ctx(t))
	if err != nil || exit.Code != 3 || exit.Pid != pid {
		t.Fatalf("wait: %+v %v", exit, err)
	}
	var got []string
	logs.Read(context.Background(), logPath, logs.ReadOptions{Tail: -1}, nil, func(e logs.Entry) error {
		got = append(got, e.Stream+" "+e.Log)
		return nil
	})
	if len(got) != 2 || !strings.Contains(strings.Join(got, ""), "stdout out\n") || !strings.Contains(strings.Join(got, ""), "stderr err\n") {
		t.Fatalf("log: %q", got)
	}
	waitGone(t, b)
	if e, ok := shim.ReadExit(b.dir); !ok || e.Code != 3 {
		t.Fatalf("exit.json: %+v %v", e, ok)
	}
	// A wait after the monitor went reads the file.
	if e, err := c.Wait(ctx(t)); err != nil || e.Code != 3 {
		t.Fatalf("late wait: %+v %v", e, err)
	}
	if out, err := exec.Command(berthBin, "runtime", "--root", b.root, "state", b.id).CombinedOutput(); err == nil {
		t.Fatalf("the runtime still has the container:\n%s", out)
	}
}

// waitGone waits for the monitor's socket to go.
func waitGone(t *testing.T, b *box) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(filepath.Join(b.dir, "sock")); os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the monitor did not go")
}

// Kill reaches the container; a signal's death is 128+N.
func TestKillIsRecordedAsASignal(t *testing.T) {
	b := newBox(t, "sleep", "100")
	if _, err := b.launch(shim.Config{}); err != nil {
		t.Fatal(err)
	}
	c := shim.Client{Dir: b.dir}
	if err := c.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, running, _, err := c.State(ctx(t)); err != nil || !running {
		t.Fatalf("state: running %v, %v", running, err)
	}
	if err := c.Kill(ctx(t), syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	exit, err := c.Wait(ctx(t))
	if err != nil || exit.Code != 137 || exit.Signal != 9 {
		t.Fatalf("wait: %+v %v", exit, err)
	}
}

// With a terminal, the attached client talks to a shell on it, raw, and
// resizes it.
func TestTerminalAttachAndResize(t *testing.T) {
	b := newBox(t, "sh")
	b.spec.Process.Terminal = true
	if _, err := b.launch(shim.Config{Terminal: true, Stdin: true}); err != nil {
		t.Fatal(err)
	}
	c := shim.Client{Dir: b.dir}
	if err := c.Resize(ctx(t), 33, 111); err != nil {
		t.Fatal(err)
	}
	conn, r, err := c.Attach(ctx(t), true, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "stty size; exit 5\n")
	out, _ := io.ReadAll(r)
	if !strings.Contains(string(out), "33 111") {
		t.Fatalf("terminal output: %q", out)
	}
	if exit, err := c.Wait(ctx(t)); err != nil || exit.Code != 5 {
		t.Fatalf("wait: %+v %v", exit, err)
	}
}

// An exec's output waits for its first attach: none is lost; its stdin
// ends when that attach closes its side.
func TestExecOutputWaitsForTheAttach(t *testing.T) {
	b := newBox(t, "sleep", "100")
	if _, err := b.launch(shim.Config{}); err != nil {
		t.Fatal(err)
	}
	c := shim.Client{Dir: b.dir}
	if err := c.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	defer c.Kill(ctx(t), syscall.SIGKILL, true)
	proc := *b.spec.Process
	proc.Args = []string{"sh", "-c", "echo early; cat; echo late >&2; exit 2"}
	edir := t.TempDir()
	data, _ := json.Marshal(proc)
	os.WriteFile(filepath.Join(edir, "process.json"), data, 0o600)
	ctxl, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := shim.Config{ID: b.id, Runtime: b.runtime, Process: filepath.Join(edir, "process.json"), Stdin: true, StdinOnce: true}
	if _, err := shim.Launch(ctxl, berthBin, []string{"shim"}, edir, cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // "early" is written by now, into the pipe
	ec := shim.Client{Dir: edir}
	conn, r, err := ec.Attach(ctx(t), true, true, true)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "typed\n")
	conn.(interface{ CloseWrite() error }).CloseWrite()
	stdout, stderr := demux(t, r)
	if stdout != "early\ntyped\n" || stderr != "late\n" {
		t.Fatalf("exec: stdout %q stderr %q", stdout, stderr)
	}
	if exit, err := ec.Wait(ctx(t)); err != nil || exit.Code != 2 {
		t.Fatalf("exec wait: %+v %v", exit, err)
	}
	// The container is untouched.
	if _, running, _, err := c.State(ctx(t)); err != nil || !running {
		t.Fatalf("container after the exec: running %v, %v", running, err)
	}
}

// A process that cannot start fails Launch with the runtime's words, and
// leaves no monitor, no runtime container and no process.
func TestFailedCreateLeavesNothing(t *testing.T) {
	b := newBox(t, "/no/such/binary")
	_, err := b.launch(shim.Config{})
	if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Fatalf("launch: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "sock")); err == nil {
		t.Fatal("a monitor socket is left")
	}
	if out, err := exec.Command(berthBin, "runtime", "--root", b.root, "list", "-q").CombinedOutput(); strings.TrimSpace(string(out)) != "" || err != nil {
		t.Fatalf("the runtime has containers: %q %v", out, err)
	}
	// No monitor process for this directory.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p)
		if bytes.Contains(cmdline, []byte(b.dir)) {
			t.Fatalf("a process is left: %s %q", p, cmdline)
		}
	}
}
