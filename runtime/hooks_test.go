package runtime_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hookScript writes a host shell script that appends its name, its mount
// namespace and the state it read on stdin to log.
func hookScript(t *testing.T, dir, log string) string {
	t.Helper()
	p := filepath.Join(dir, "hook.sh")
	script := "#!/bin/sh\nstate=$(cat)\necho \"$1 $(readlink /proc/self/ns/mnt) $state\" >> " + log + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHooksRunInOrderWithTheState(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "hooks.log")
	script := hookScript(t, dir, log)
	b := e.bundle("sh", "-c", "cat /hook-ran")
	hook := func(name string) []specs.Hook {
		return []specs.Hook{{Path: script, Args: []string{"hook.sh", name}}}
	}
	// startContainer runs inside the container, so its program must be
	// there: it leaves a file for the container to read.
	b.spec.Hooks = &specs.Hooks{
		Prestart:        hook("prestart"),
		CreateRuntime:   hook("createRuntime"),
		CreateContainer: hook("createContainer"),
		StartContainer:  []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo startContainer > /hook-ran"}}},
		Poststart:       hook("poststart"),
		Poststop:        hook("poststop"),
	}
	id := e.id()
	e.must("create", "--bundle", b.write(t), id)
	initPid := e.state(id).Pid
	e.must("start", id)
	waitFor(t, "the container to exit", func() bool { return e.state(id).Status == specs.StateStopped })
	e.must("delete", id)

	data, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var names []string
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	for _, l := range lines {
		f := strings.SplitN(l, " ", 3)
		names = append(names, f[0])
		var st specs.State
		if err := json.Unmarshal([]byte(f[2]), &st); err != nil {
			t.Fatalf("%s read no state: %q", f[0], f[2])
		}
		if st.ID != id || st.Bundle != b.dir {
			t.Errorf("%s state: %+v", f[0], st)
		}
		if f[0] != "poststop" && st.Pid != initPid {
			t.Errorf("%s state pid %d, init %d", f[0], st.Pid, initPid)
		}
		inHost := f[1] == hostMnt
		if (f[0] == "createContainer") == inHost {
			t.Errorf("%s ran in mount namespace %s (host %s)", f[0], f[1], hostMnt)
		}
	}
	if got := strings.Join(names, ","); got != "prestart,createRuntime,createContainer,poststart,poststop" {
		t.Fatalf("hooks ran: %s", got)
	}
	if data, _ := os.ReadFile(filepath.Join(b.rootfs, "hook-ran")); strings.TrimSpace(string(data)) != "startContainer" {
		t.Fatalf("startContainer did not run inside the container: %q", data)
	}
}

func TestFailingPoststartIsOnlyAWarning(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	b.spec.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/false"}}}
	out, code := e.run(b)
	if code != 0 || !strings.Contains(out, "poststart") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestFailingStartContainerHookFailsStart(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	b.spec.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/false"}}}
	id := e.id()
	e.must("create", "--bundle", b.write(t), id)
	out, err := e.berth("start", id)
	if err == nil || !strings.Contains(out, "hooks.startContainer[0]") {
		t.Fatalf("err %v: %s", err, out)
	}
}

// A hook gets its state on stdin and nothing else of the runtime's: not
// the socket to the container process, not the fifos.
func TestHooksInheritNoRuntimeDescriptors(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "fds")
	b := e.bundle("true")
	ls := func(name string) []specs.Hook {
		return []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo " + name + ": $(ls /proc/self/fd) >> " + log}}}
	}
	b.spec.Hooks = &specs.Hooks{CreateRuntime: ls("createRuntime"), CreateContainer: ls("createContainer"), Poststart: ls("poststart")}
	if out, code := e.run(b); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	data, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 {
		t.Fatalf("hooks ran: %q", data)
	}
	for _, l := range lines {
		// ls itself holds one more: the directory it lists.
		if name, fds, _ := strings.Cut(l, ": "); fds != "0 1 2 3" {
			t.Errorf("%s hook had descriptors %s open", name, fds)
		}
	}
}

// A hook that leaves a process behind writing to its output does not hold
// the create up: the runtime reads what fits in its report and goes on.
func TestHookWithABackgroundWriterDoesNotHang(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	b.spec.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "yes & sleep 0.2; exit 3"}}}}
	done := make(chan string, 1)
	go func() { out, _ := e.berth("run", "--bundle", b.write(t), e.id()); done <- out }()
	select {
	case out := <-done:
		if !strings.Contains(out, "hooks.createContainer[0]") || !strings.Contains(out, "exit status 3") {
			t.Fatalf("output: %.300s", out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run hangs on a hook's background writer")
	}
}
