package engine_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/engine/logs"
	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/internal/fixture"
	"github.com/berth-dev/berth/internal/testimage"
)

var berthBin string

const busybox = "berth.test/busybox:latest"

func TestMain(m *testing.M) {
	os.Exit(fixture.RunAsRoot(m, "engine", &berthBin, "berth-engine-test"))
}

type env struct {
	t         *testing.T
	root, run string
	images    *image.Store
	e         *engine.Engine
}

// newEnv opens an engine on fresh directories, with the busybox image.
func newEnv(t *testing.T) *env {
	t.Helper()
	v := &env{t: t, root: t.TempDir(), run: t.TempDir()}
	var err error
	if v.images, err = image.Open(v.root, image.Options{}); err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := img.WriteDockerArchive(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := v.images.Load(&buf); err != nil {
		t.Fatal(err)
	}
	v.open()
	t.Cleanup(func() {
		for _, c := range v.e.List() {
			v.e.Remove(context.Background(), c.ID, engine.RemoveOptions{Force: true})
		}
		v.e.Close()
	})
	return v
}

func (v *env) open() {
	v.t.Helper()
	var err error
	runtimes := map[string][]string{"berth": {berthBin, "runtime"}}
	if runc, err := exec.LookPath("runc"); err == nil {
		runtimes["runc"] = []string{runc}
	}
	v.e, err = engine.Open(engine.Config{
		Root: v.root, RunDir: v.run,
		Runtimes:       runtimes,
		DefaultRuntime: "berth",
		CgroupParent:   "/berth-engine-test",
		Monitor:        []string{berthBin, "shim"},
	}, v.images)
	if err != nil {
		v.t.Fatal(err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func (v *env) create(spec engine.Spec, name string) engine.Container {
	v.t.Helper()
	c, err := v.e.Create(ctx(v.t), engine.CreateOptions{Name: name, Image: busybox, Spec: spec})
	if err != nil {
		v.t.Fatal(err)
	}
	return c
}

func (v *env) logs(id string, follow bool) string {
	v.t.Helper()
	var b strings.Builder
	err := v.e.Logs(ctx(v.t), id, logs.ReadOptions{Tail: -1, Follow: follow}, func(e logs.Entry) error {
		b.WriteString(e.Stream + ":" + e.Log)
		return nil
	})
	if err != nil {
		v.t.Fatal(err)
	}
	return b.String()
}

// A container runs to its end: its output in the log by stream, its exit
// code recorded, its root filesystem unmounted; rm leaves nothing.
func TestRunToTheEndThenRemove(t *testing.T) {
	v := newEnv(t)
	c := v.create(engine.Spec{Cmd: []string{"sh", "-c", "echo hello; echo oops >&2; exit 7"}}, "first")
	if c.Name != "first" || c.State.Status != engine.Created {
		t.Fatalf("created %+v", c)
	}
	if err := v.e.Start(ctx(t), "first"); err != nil {
		t.Fatal(err)
	}
	code, err := v.e.Wait(ctx(t), c.ID[:8], "")
	if err != nil || code != 7 {
		t.Fatalf("wait: %d %v", code, err)
	}
	// Two pipes: the order between the streams is not kept.
	if got := v.logs(c.ID, false); got != "stdout:hello\nstderr:oops\n" && got != "stderr:oops\nstdout:hello\n" {
		t.Fatalf("logs %q", got)
	}
	got, _ := v.e.Get("first")
	if got.State.Status != engine.Exited || got.State.ExitCode != 7 || got.State.FinishedAt.IsZero() {
		t.Fatalf("state %+v", got.State)
	}
	if err := v.e.Remove(ctx(t), "first", engine.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.Get("first"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("after rm: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(v.root, "containers"))
	sn, _ := v.images.Snapshots.List()
	for _, s := range sn {
		if strings.HasPrefix(s.Name, "container-") {
			t.Errorf("layer left: %s", s.Name)
		}
	}
	if len(ents) != 0 {
		t.Fatalf("container files left: %v", ents)
	}
}

// Bad input names what is wrong and creates nothing.
func TestBadCreatesNameTheProblemAndLeaveNothing(t *testing.T) {
	v := newEnv(t)
	v.create(engine.Spec{Cmd: []string{"true"}}, "taken")
	for _, tc := range []struct {
		name, image string
		spec        engine.Spec
		want        string
	}{
		{"x", "no-such-image:1", engine.Spec{}, "no such image: no-such-image:1"},
		{"taken", busybox, engine.Spec{}, `"/taken" is already in use`},
		{"bad name!", busybox, engine.Spec{}, "invalid container name"},
		{"", busybox, engine.Spec{Runtime: "nope"}, `unknown runtime "nope"`},
		{"", busybox, engine.Spec{Restart: engine.RestartPolicy{Name: "sometimes"}}, `invalid restart policy "sometimes"`},
		{"", busybox, engine.Spec{Mounts: []engine.Mount{{Type: "bind", Source: "/no/such/dir", Destination: "/x"}}}, "bind source path does not exist: /no/such/dir"},
		{"", busybox, engine.Spec{Resources: engine.Resources{Memory: 1000}}, "below the minimum"},
		{"", busybox, engine.Spec{Network: "mynet"}, `network mynet not found`},
		{"", busybox, engine.Spec{StopSignal: "SIGNOPE"}, `invalid signal "SIGNOPE"`},
	} {
		_, err := v.e.Create(ctx(t), engine.CreateOptions{Name: tc.name, Image: tc.image, Spec: tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc, err, tc.want)
		}
	}
	if n := len(v.e.List()); n != 1 {
		t.Fatalf("%d containers after bad creates", n)
	}
	// A process that cannot start: the runtime's error, nothing running.
	c := v.create(engine.Spec{Cmd: []string{"/no/such/binary"}}, "")
	err := v.e.Start(ctx(t), c.ID)
	if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Fatalf("start of a missing binary: %v", err)
	}
	got, _ := v.e.Get(c.ID)
	if got.State.Status != engine.Created || got.State.Error == "" {
		t.Fatalf("state after a failed start: %+v", got.State)
	}
	if ents, _ := os.ReadDir(filepath.Join(v.run, "m")); len(ents) != 0 {
		t.Fatalf("monitor directories left: %v", ents)
	}
	if mounted(t, filepath.Join(v.root, "containers", c.ID, "bundle", "rootfs")) {
		t.Fatal("the root filesystem stayed mounted")
	}
}

func mounted(t *testing.T, dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), " "+dir+" ")
}

// The engine dies (its state closed without a word to the containers)
// and comes back: a running container is still running and its log
// still grows; one that exited meanwhile has its exit recorded.
func TestContainersOutliveTheEngine(t *testing.T) {
	v := newEnv(t)
	long := v.create(engine.Spec{Cmd: []string{"sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"}}, "long")
	short := v.create(engine.Spec{Cmd: []string{"sh", "-c", "sleep 0.5; exit 3"}}, "short")
	for _, id := range []string{long.ID, short.ID} {
		if err := v.e.Start(ctx(t), id); err != nil {
			t.Fatal(err)
		}
	}
	v.e.Close()
	time.Sleep(time.Second) // short exits while no engine watches
	v.open()
	got, _ := v.e.Get("short")
	if got.State.Status != engine.Exited || got.State.ExitCode != 3 {
		t.Fatalf("short after the restart: %+v", got.State)
	}
	got, _ = v.e.Get("long")
	if got.State.Status != engine.Running {
		t.Fatalf("long after the restart: %+v", got.State)
	}
	before := strings.Count(v.logs("long", false), "tick")
	time.Sleep(500 * time.Millisecond)
	if after := strings.Count(v.logs("long", false), "tick"); after <= before {
		t.Fatalf("the log stopped growing: %d then %d lines", before, after)
	}
	if n := len(v.e.List()); n != 2 {
		t.Fatalf("%d containers after the restart", n)
	}
	// Follow, then stop: the follow ends with the container.
	var mu sync.Mutex
	var followed strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- v.e.Logs(ctx(t), "long", logs.ReadOptions{Tail: 1, Follow: true}, func(e logs.Entry) error {
			mu.Lock()
			followed.WriteString(e.Log)
			mu.Unlock()
			return nil
		})
	}()
	time.Sleep(300 * time.Millisecond)
	timeout := 2 * time.Second
	if err := v.e.Stop(ctx(t), "long", &timeout); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs -f did not end when the container stopped")
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Count(followed.String(), "tick") < 2 {
		t.Fatalf("followed %q", followed.String())
	}
	got, _ = v.e.Get("long")
	// sh as PID 1 has no default action for SIGTERM: the stop's
	// SIGKILL after the timeout ended it.
	if got.State.Status != engine.Exited || got.State.ExitCode != 137 {
		t.Fatalf("after stop: %+v", got.State)
	}
}

// on-failure restarts until the count is reached; stop ends always.
func TestRestartPolicies(t *testing.T) {
	v := newEnv(t)
	c := v.create(engine.Spec{Cmd: []string{"sh", "-c", "echo run; exit 1"}, Restart: engine.RestartPolicy{Name: "on-failure", MaxRetries: 2}}, "")
	if err := v.e.Start(ctx(t), c.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _ := v.e.Get(c.ID)
		if got.State.Status == engine.Exited && got.State.RestartCount == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %+v", got.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(v.logs(c.ID, false), "run"); n != 3 {
		t.Fatalf("ran %d times, want 3", n)
	}
	a := v.create(engine.Spec{Cmd: []string{"sh", "-c", "sleep 0.3"}, Restart: engine.RestartPolicy{Name: "always"}}, "")
	if err := v.e.Start(ctx(t), a.ID); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		got, _ := v.e.Get(a.ID)
		if got.State.Status == engine.Running && got.State.RestartCount >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("always did not restart: %+v", got.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	zero := time.Duration(0)
	if err := v.e.Stop(ctx(t), a.ID, &zero); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got, _ := v.e.Get(a.ID); got.State.Status != engine.Exited {
		t.Fatalf("restarted after stop: %+v", got.State)
	}
}

// A terminal container takes input from an attach made before its start.
func TestAttachBeforeStartWithATerminal(t *testing.T) {
	v := newEnv(t)
	c := v.create(engine.Spec{Cmd: []string{"sh"}, Tty: true, OpenStdin: true, StdinOnce: true}, "")
	type res struct {
		out []byte
		err error
	}
	got := make(chan res, 1)
	attached := make(chan io.Writer, 1)
	go func() {
		conn, r, err := v.e.Attach(ctx(t), c.ID, true, true, true)
		if err != nil {
			got <- res{err: err}
			return
		}
		attached <- conn
		out, err := io.ReadAll(r)
		got <- res{out, err}
	}()
	time.Sleep(100 * time.Millisecond)
	if err := v.e.Start(ctx(t), c.ID); err != nil {
		t.Fatal(err)
	}
	w := <-attached
	io.WriteString(w, "echo in-the-box; exit 4\n")
	r := <-got
	if r.err != nil || !bytes.Contains(r.out, []byte("in-the-box")) {
		t.Fatalf("attached: %q %v", r.out, r.err)
	}
	if code, err := v.e.Wait(ctx(t), c.ID, ""); err != nil || code != 4 {
		t.Fatalf("wait %d %v", code, err)
	}
}

// Many containers start at once; none waits on another's lock.
func TestManyStartsAtOnce(t *testing.T) {
	v := newEnv(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := v.e.Create(ctx(t), engine.CreateOptions{Image: busybox, Spec: engine.Spec{Cmd: []string{"sleep", "30"}}})
			if err == nil {
				err = v.e.Start(ctx(t), c.ID)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	running := 0
	for _, c := range v.e.List() {
		if c.State.Status == engine.Running {
			running++
		}
	}
	if running != n {
		t.Fatalf("%d of %d running", running, n)
	}
}

// The runtime is pluggable: runc runs the same container, with stdio,
// logs, a terminal and stop, under the same monitor.
func TestRuncAsTheRuntime(t *testing.T) {
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (apt-get install runc)")
	}
	v := newEnv(t)
	c := v.create(engine.Spec{Runtime: "runc", Cmd: []string{"sh", "-c", "echo via runc; exit 2"}}, "")
	if err := v.e.Start(ctx(t), c.ID); err != nil {
		t.Fatal(err)
	}
	if code, err := v.e.Wait(ctx(t), c.ID, ""); err != nil || code != 2 {
		t.Fatalf("wait %d %v", code, err)
	}
	if got := v.logs(c.ID, false); got != "stdout:via runc\n" {
		t.Fatalf("logs %q", got)
	}
	if got, _ := v.e.Get(c.ID); got.State.Runtime != "runc" {
		t.Fatalf("ran with %q", got.State.Runtime)
	}
	s := v.create(engine.Spec{Runtime: "runc", Cmd: []string{"sleep", "100"}}, "")
	if err := v.e.Start(ctx(t), s.ID); err != nil {
		t.Fatal(err)
	}
	zero := time.Duration(0)
	if err := v.e.Stop(ctx(t), s.ID, &zero); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.e.Get(s.ID); got.State.ExitCode != 137 {
		t.Fatalf("after stop: %+v", got.State)
	}
}
