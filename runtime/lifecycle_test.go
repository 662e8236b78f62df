package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunPrintsOutputAndExitsWithTheContainersCode(t *testing.T) {
	e := newEnv(t)
	out, code := e.run(e.bundle("sh", "-c", "echo hello; exit 3"))
	if code != 3 || strings.TrimSpace(out) != "hello" {
		t.Fatalf("got %q, exit %d; want hello, exit 3", out, code)
	}
}

func TestRunReportsDeathBySignalAs128PlusSignal(t *testing.T) {
	e := newEnv(t)
	// PID 1 of a namespace cannot be killed from inside it: share the
	// host's PID namespace so that the shell can kill itself.
	b := e.bundle("sh", "-c", "kill -9 $$")
	withoutNamespace(b.spec, specs.PIDNamespace)
	_, code := e.run(b)
	if code != 137 {
		t.Fatalf("exit %d, want 137", code)
	}
}

func TestRunRemovesTheContainerAfterwards(t *testing.T) {
	e := newEnv(t)
	e.run(e.bundle("true"))
	if out := e.must("list", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left: %q", out)
	}
}

func TestLifecycleCreateStartStateKillDelete(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sleep", "1000")
	b.spec.Annotations = map[string]string{"org.example.key": "value"}
	id := e.id()
	pidFile := filepath.Join(t.TempDir(), "pid")
	e.must("create", "--bundle", b.write(t), "--pid-file", pidFile, id)

	st := e.state(id)
	if st.Status != specs.StateCreated || st.ID != id || st.Bundle != b.dir || st.Annotations["org.example.key"] != "value" {
		t.Fatalf("state after create: %+v", st)
	}
	pidData, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if strconv.Itoa(st.Pid) != string(pidData) {
		t.Fatalf("pid file says %s, state says %d", pidData, st.Pid)
	}
	// Until start, the init is Berth waiting, not the program.
	if exe, _ := os.Readlink("/proc/" + strconv.Itoa(st.Pid) + "/exe"); strings.Contains(exe, "busybox") {
		t.Fatalf("program runs before start: %s", exe)
	}

	e.must("start", id)
	if st := e.state(id); st.Status != specs.StateRunning {
		t.Fatalf("status after start: %s", st.Status)
	}
	waitFor(t, "sleep to run", func() bool {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/cmdline")
		return strings.HasPrefix(string(cmdline), "sleep\x001000")
	})
	if out, err := e.berth("start", id); err == nil {
		t.Fatalf("second start succeeded: %s", out)
	}
	if out, err := e.berth("delete", id); err == nil || !strings.Contains(out, "running") {
		t.Fatalf("delete of a running container: err %v, %s", err, out)
	}

	e.must("kill", id, "KILL")
	waitFor(t, "container to stop", func() bool { return e.state(id).Status == specs.StateStopped })
	e.must("delete", id)
	if _, err := os.Stat(filepath.Join(e.root, id)); !os.IsNotExist(err) {
		t.Fatalf("state directory left after delete: %v", err)
	}
	if out, err := e.berth("state", id); err == nil {
		t.Fatalf("state of a deleted container: %s", out)
	}
}

func TestKillAcceptsSignalNamesAndNumbers(t *testing.T) {
	e := newEnv(t)
	for _, sig := range []string{"TERM", "SIGTERM", "15"} {
		b := e.bundle("sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done")
		id := e.id()
		e.must("run", "-d", "--bundle", b.write(t), id)
		e.must("kill", id, sig)
		waitFor(t, "exit on "+sig, func() bool { return e.state(id).Status == specs.StateStopped })
		e.must("delete", id)
	}
	// To a running container, so that only the signal can be wrong.
	id := e.runningContainer(e.bundle("sleep", "1000"))
	if out, err := e.berth("kill", id, "NOTASIGNAL"); err == nil || !strings.Contains(out, "unknown signal") {
		t.Fatalf("bogus signal: %v: %s", err, out)
	}
	if st := e.state(id); st.Status != specs.StateRunning {
		t.Fatalf("the container is %s after a bogus signal", st.Status)
	}
}

func TestDeleteForceKillsARunningContainer(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.must("run", "-d", "--bundle", e.bundle("sleep", "1000").write(t), id)
	pid := e.state(id).Pid
	e.must("delete", "--force", id)
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if !strings.Contains(string(st), ") Z") {
			t.Fatalf("process %d still alive after delete --force", pid)
		}
	}
}

func TestDeleteOfACreatedContainerKillsItsInit(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.must("create", "--bundle", e.bundle("sleep", "1000").write(t), id)
	e.must("delete", id)
	if out := e.must("list", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("left: %s", out)
	}
}

func TestListShowsContainersAsTableAndJSON(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	e.must("create", "--bundle", e.bundle("sleep", "1000").write(t), id)
	table := e.must("list")
	if !strings.HasPrefix(table, "ID") || !strings.Contains(table, id) || !strings.Contains(table, "created") {
		t.Fatalf("table:\n%s", table)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(e.must("list", "--format", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0]["id"] != id || list[0]["status"] != "created" {
		t.Fatalf("json: %v", list)
	}
}

func TestSpecWritesAConfigThatRuns(t *testing.T) {
	e := newEnv(t)
	b := e.bundle()
	os.Remove(filepath.Join(b.dir, "config.json"))
	if out, err := e.berthIn(b.dir, "spec"); err != nil {
		t.Fatalf("spec: %v\n%s", err, out)
	}
	var spec specs.Spec
	data, _ := os.ReadFile(filepath.Join(b.dir, "config.json"))
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Process.Args[0] != "sh" || !spec.Root.Readonly || spec.Version != specs.Version {
		t.Fatalf("unexpected default spec: %+v", spec.Process)
	}
	// The default wants a terminal; run it without one for the test.
	b.spec = &spec
	b.spec.Process.Terminal = false
	b.spec.Process.Args = []string{"sh", "-c", "echo ok"}
	if out, code := e.run(b); code != 0 || strings.TrimSpace(out) != "ok" {
		t.Fatalf("default spec: exit %d, %s", code, out)
	}
	if out, err := e.berthIn(b.dir, "spec"); err == nil {
		t.Fatalf("spec overwrote an existing config: %s", out)
	}
}

func TestFeaturesIsAFeaturesDocument(t *testing.T) {
	e := newEnv(t)
	var f map[string]any
	if err := json.Unmarshal([]byte(e.must("features")), &f); err != nil {
		t.Fatal(err)
	}
	if f["ociVersionMax"] != specs.Version || f["linux"] == nil {
		t.Fatalf("features: %v", f)
	}
}

// Containers are independent: many created at once all come up, and no
// lock serializes them.
func TestManyContainersAtOnce(t *testing.T) {
	e := newEnv(t)
	const n = 20
	b := e.bundle("sh", "-c", "echo $$")
	b.write(t)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			out, err := e.berth("run", "--bundle", b.dir, e.id())
			if err == nil && strings.TrimSpace(out) != "1" {
				err = fmt.Errorf("output %q", out)
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if out := e.must("list", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("left: %s", out)
	}
}
