package runtime_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/fixture"
	"github.com/berth-dev/berth/runtime/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// These tests drive the berth binary through its runc command line, as root,
// against busybox bundles: real namespaces, mounts and cgroups.

var berthBin string // built once in TestMain

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// Descriptors this process inherited (a CI agent's, a shell's) are
	// not ours to pass on: the tests check what the runtime itself lets
	// through to containers and hooks.
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	// The parents of the tests' cgroups (cgroupsPath /berth-test/<id>,
	// /berth-test-bad/<id>).
	return fixture.RunAsRoot(m, "runtime integration", &berthBin, "berth-test", "berth-test-bad")
}

var idSeq atomic.Int64

// env is one test's runtime root and helpers.
type env struct {
	t    *testing.T
	root string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, root: t.TempDir()}
	t.Cleanup(func() {
		// Remove whatever a failed test left running.
		out, _ := e.berth("list", "-q")
		for _, id := range strings.Fields(out) {
			e.berth("delete", "--force", id)
		}
	})
	return e
}

func (e *env) id() string {
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(strings.ToLower(e.t.Name()), "/", "-"), idSeq.Add(1))
}

// berth runs the CLI and returns its combined output and error.
func (e *env) berth(args ...string) (string, error) {
	return e.berthIn("", args...)
}

// cmd is the CLI with args, on this test's runtime root, not yet started.
func (e *env) cmd(args ...string) *exec.Cmd {
	return exec.Command(berthBin, append([]string{"runtime", "--root", e.root}, args...)...)
}

func (e *env) berthIn(dir string, args ...string) (string, error) {
	cmd := e.cmd(args...)
	cmd.Dir = dir
	// A file, not a pipe: a detached container inherits these and keeps
	// them open long after the command returns.
	out, err := os.CreateTemp("", "berth-out")
	if err != nil {
		e.t.Fatal(err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	data, _ := os.ReadFile(out.Name())
	return string(data), err
}

// pids is what ps --format json lists for a container.
func (e *env) pids(id string) []int {
	e.t.Helper()
	var pids []int
	out := e.must("ps", "--format", "json", id)
	if err := json.Unmarshal([]byte(out), &pids); err != nil {
		e.t.Fatalf("ps --format json: %v: %s", err, out)
	}
	return pids
}

// must runs the CLI and fails the test on error.
func (e *env) must(args ...string) string {
	e.t.Helper()
	out, err := e.berth(args...)
	if err != nil {
		e.t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// bundle is a busybox bundle with a config the test may edit before use.
type bundle struct {
	dir    string
	rootfs string
	spec   *specs.Spec
}

func (e *env) bundle(args ...string) *bundle {
	e.t.Helper()
	dir := e.t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	if err := fixture.BusyboxRootfs(rootfs); err != nil {
		e.t.Fatal(err)
	}
	spec := config.Default()
	spec.Process.Terminal = false
	spec.Root.Readonly = false
	if len(args) > 0 {
		spec.Process.Args = args
	}
	return &bundle{dir: dir, rootfs: rootfs, spec: spec}
}

// write saves the bundle's config.
func (b *bundle) write(t *testing.T) string {
	t.Helper()
	data, err := json.MarshalIndent(b.spec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, config.Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return b.dir
}

// run runs the bundle in the foreground and returns output and exit code.
func (e *env) run(b *bundle) (string, int) {
	e.t.Helper()
	out, err := e.berth("run", "--bundle", b.write(e.t), e.id())
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out, ee.ExitCode()
		}
		e.t.Fatal(err)
	}
	return out, 0
}

// state returns a container's OCI state.
func (e *env) state(id string) specs.State {
	e.t.Helper()
	var st specs.State
	out := e.must("state", id)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		e.t.Fatalf("state %s: %v\n%s", id, err, out)
	}
	return st
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func i64(v int64) *int64 { return &v }

// syncBuffer is a bytes.Buffer that a command's output goroutine may write
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
