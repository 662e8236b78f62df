package runtime_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime/caps"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// leftovers lists what a failed create left behind: state, cgroup
// directories, processes holding the bundle or state, host mounts.
func (e *env) leftovers(id, cgPath, bundleDir string) []string {
	var found []string
	if _, err := os.Stat(filepath.Join(e.root, id)); err == nil {
		found = append(found, "state directory "+filepath.Join(e.root, id))
	}
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, ent := range ents {
		p := filepath.Join("/sys/fs/cgroup", ent.Name(), cgPath)
		if _, err := os.Stat(p); err == nil {
			found = append(found, "cgroup "+p)
		}
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", cgPath, "cgroup.procs")); err == nil {
		found = append(found, "cgroup "+cgPath)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		// A zombie is dead: it waits only for its reaper (the host's
		// init, for a container whose runtime has exited).
		if stat, _ := os.ReadFile(p + "/stat"); strings.Contains(string(stat), ") Z ") {
			continue
		}
		cg, _ := os.ReadFile(p + "/cgroup")
		if strings.Contains(string(cg), cgPath) {
			found = append(found, "process "+p+" in the cgroup")
			continue
		}
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			if l, _ := os.Readlink(fd); strings.HasPrefix(l, e.root) || strings.HasPrefix(l, bundleDir) {
				found = append(found, "process "+p+" holding "+l)
				break
			}
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), bundleDir) {
		found = append(found, "host mount under the bundle")
	}
	return found
}

type badCase struct {
	name  string
	edit  func(b *bundle) // edits the spec; or writes raw config when raw != ""
	raw   func(b *bundle) string
	field string // what the error must name
}

func TestBadConfigsFailClearlyAndLeaveNothingBehind(t *testing.T) {
	cases := []badCase{
		{name: "wrong type", raw: func(b *bundle) string {
			return strings.Replace(marshal(b.spec), `"cwd":"/"`, `"cwd":5`, 1)
		}, field: "process.cwd"},
		{name: "JSON syntax", raw: func(b *bundle) string { return marshal(b.spec)[:100] }, field: "line 1"},
		{name: "unsupported version", edit: func(b *bundle) { b.spec.Version = "2.0.0" }, field: "ociVersion"},
		{name: "missing rootfs", edit: func(b *bundle) { b.spec.Root.Path = "/nonexistent/rootfs" }, field: "root.path"},
		{name: "unknown namespace type", edit: func(b *bundle) {
			b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
		}, field: "linux.namespaces[6].type"},
		{name: "unknown rlimit", edit: func(b *bundle) {
			b.spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}}
		}, field: "process.rlimits[0].type"},
		{name: "unknown propagation", edit: func(b *bundle) { b.spec.Linux.RootfsPropagation = "sideways" }, field: "linux.rootfsPropagation"},
		{name: "relative cwd", edit: func(b *bundle) { b.spec.Process.Cwd = "tmp" }, field: "process.cwd"},
		{name: "missing program", edit: func(b *bundle) { b.spec.Process.Args = []string{"no-such-program"} }, field: "process.args[0]"},
		{name: "bad mount", edit: func(b *bundle) {
			b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/bad", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=lots"}})
		}, field: "mounts[7]"},
		{name: "bind of a missing source", edit: func(b *bundle) {
			b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/bad", Type: "bind", Source: "/nonexistent/source"})
		}, field: "mounts[7]"},
		{name: "cgroup limit the kernel refuses", edit: func(b *bundle) {
			b.spec.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "999"}
		}, field: "linux.resources.cpu.cpus"},
		{name: "memory limit too low to start", edit: func(b *bundle) {
			// Refused by the kernel, or enforced by the OOM killer on
			// the waiting process: either way the error says which
			// field.
			limit := int64(4096)
			b.spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
		}, field: "linux.resources.memory.limit"},
		{name: "failing hook", edit: func(b *bundle) {
			b.spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/false"}}}
		}, field: "hooks.createRuntime[0]"},
		{name: "hook timeout", edit: func(b *bundle) {
			one := 1
			b.spec.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "3000.25"}, Timeout: &one}}}
		}, field: "timed out"},
		{name: "seccomp action", edit: func(b *bundle) {
			b.spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_MAYBE"}
		}, field: "linux.seccomp.defaultAction"},
		{name: "hostname without UTS namespace", edit: func(b *bundle) {
			withoutNamespace(b.spec, specs.UTSNamespace)
		}, field: "hostname"},
		{name: "host sysctl", edit: func(b *bundle) {
			b.spec.Linux.Sysctl = map[string]string{"kernel.panic": "1"}
		}, field: "linux.sysctl[kernel.panic]"},
	}
	if !strings.Contains(strings.Join(caps.Bounding(), ","), "CAP_SYS_RESOURCE") {
		cases = append(cases, badCase{name: "capability outside the bounding set", edit: func(b *bundle) {
			b.spec.Process.Capabilities.Bounding = append(b.spec.Process.Capabilities.Bounding, "CAP_SYS_RESOURCE")
		}, field: "CAP_SYS_RESOURCE"})
	}
	e := newEnv(t)
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			b := e.bundle("true")
			id := "bad-" + strings.ReplaceAll(c.name, " ", "-")
			cgPath := "/berth-test-bad/" + id
			b.spec.Linux.CgroupsPath = cgPath
			if b.spec.Linux.Resources == nil {
				b.spec.Linux.Resources = &specs.LinuxResources{}
			}
			if c.edit != nil {
				c.edit(b)
				b.write(t)
			} else {
				os.WriteFile(filepath.Join(b.dir, "config.json"), []byte(c.raw(b)), 0o644)
			}
			out, err := e.berth("create", "--bundle", b.dir, id)
			if err == nil {
				t.Fatalf("create succeeded:\n%s", out)
			}
			if !strings.Contains(out, c.field) {
				t.Fatalf("error does not name %q:\n%s", c.field, out)
			}
			if c.name == "hook timeout" {
				// The timeout stopped the hook, not just the wait.
				procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
				for _, p := range procs {
					if cmdline, _ := os.ReadFile(p); strings.Contains(string(cmdline), "3000.25") {
						t.Fatalf("the timed-out hook still runs: %s", p)
					}
				}
			}
			if left := e.leftovers(id, cgPath, b.dir); len(left) > 0 {
				t.Fatalf("left behind: %v", left)
			}
			// The same ID is free again.
			good := e.bundle("true")
			good.spec.Linux.CgroupsPath = cgPath
			e.must("create", "--bundle", good.write(t), id)
			e.must("delete", "--force", id)
			if left := e.leftovers(id, cgPath, good.dir); len(left) > 0 {
				t.Fatalf("left behind after delete: %v", left)
			}
		})
	}
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCreateWithAnIDInUseFails(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	b := e.bundle("sleep", "1000")
	e.must("create", "--bundle", b.write(t), id)
	out, err := e.berth("create", "--bundle", b.dir, id)
	if err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("err %v: %s", err, out)
	}
	// The first container is untouched.
	if st := e.state(id); st.Status != specs.StateCreated {
		t.Fatalf("status %s", st.Status)
	}
}

func TestInvalidIDsAreRefused(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	for _, id := range []string{"../escape", "a/b", "..", ""} {
		out, err := e.berth("create", "--bundle", b.write(t), id)
		if err == nil || !(strings.Contains(out, "invalid container ID") || strings.Contains(out, "container ID is empty")) {
			t.Fatalf("id %q: %v: %s", id, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(e.root), "escape")); err == nil {
		t.Fatal("an ID escaped the root")
	}
}

func TestOperationsOnMissingContainersExitNonZero(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{{"state", "nope"}, {"start", "nope"}, {"kill", "nope"}, {"delete", "nope"}, {"pause", "nope"}, {"ps", "nope"}} {
		out, err := e.berth(args...)
		if err == nil || !strings.Contains(out, "does not exist") {
			t.Errorf("%v: err %v, %s", args, err, out)
		}
	}
	// delete --force of a missing container is not an error, as in runc.
	if out, err := e.berth("delete", "--force", "nope"); err != nil {
		t.Errorf("delete --force: %v %s", err, out)
	}
}

// existingPidsCgroup makes a cgroup in the v1 pids hierarchy, as a cgroup
// manager other than Berth would, and removes it after the test.
func (e *env) existingPidsCgroup() (cgPath, dir string) {
	e.t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/pids/cgroup.procs"); err != nil {
		e.t.Skip("needs the v1 pids hierarchy")
	}
	cgPath = "/berth-test/" + e.id()
	dir = filepath.Join("/sys/fs/cgroup/pids", cgPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { os.Remove(dir) })
	return cgPath, dir
}

// A cgroup that already holds processes is not the container's to take:
// create refuses it, and neither the processes nor the cgroup suffer.
func TestCreateRefusesACgroupInUse(t *testing.T) {
	e := newEnv(t)
	cgPath, dir := e.existingPidsCgroup()
	sleeper := exec.Command("sleep", "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sleeper.Process.Kill()
		sleeper.Wait()
	}()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	b := e.bundle("true")
	b.spec.Linux.CgroupsPath = cgPath
	out, err := e.berth("create", "--bundle", b.write(t), e.id())
	if err == nil || !strings.Contains(out, "already holds processes") {
		t.Fatalf("err %v: %s", err, out)
	}
	if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the cgroup's process was killed: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the cgroup was removed: %v", err)
	}
}

// A failed create removes the cgroup directories it made, and only those.
func TestFailedCreateKeepsAnExistingCgroup(t *testing.T) {
	e := newEnv(t)
	cgPath, dir := e.existingPidsCgroup()
	b := e.bundle("/no/such/program")
	b.spec.Linux.CgroupsPath = cgPath
	if out, err := e.berth("create", "--bundle", b.write(t), e.id()); err == nil {
		t.Fatalf("create of a missing program succeeded: %s", out)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the existing cgroup was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", cgPath)); err == nil {
		t.Fatalf("the cgroup made in the memory hierarchy was left behind")
	}
}

// stalledCreate starts a create whose createRuntime hook stops it where it
// stands (the init started and in its cgroup, the mounts made) and returns
// once the hook runs; killCreate kills the create and its hook, as an OOM
// killer or a reboot of the caller would.
func (e *env) stalledCreate(b *bundle) (id string, killCreate func()) {
	e.t.Helper()
	started := filepath.Join(e.t.TempDir(), "started")
	b.spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "touch " + started + "; sleep 1000"}}}}
	id = e.id()
	cmd := e.cmd("create", "--bundle", b.write(e.t), id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	killed := false
	killCreate = func() {
		if !killed {
			killed = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	}
	e.t.Cleanup(killCreate)
	waitFor(e.t, "the hook to start", func() bool { _, err := os.Stat(started); return err == nil })
	return id, killCreate
}

// A create killed halfway leaves a container that state reports and
// delete cleans up: no process, cgroup, host mount or state directory
// remains.
func TestKilledCreateIsRemovedByDelete(t *testing.T) {
	for _, hostMounts := range []bool{false, true} {
		t.Run(map[bool]string{false: "own-mount-namespace", true: "host-mount-namespace"}[hostMounts], func(t *testing.T) {
			e := newEnv(t)
			b := e.bundle("true")
			cgPath := "/berth-test/" + e.id()
			b.spec.Linux.CgroupsPath = cgPath
			if hostMounts {
				withoutNamespace(b.spec, specs.MountNamespace)
			}
			id, killCreate := e.stalledCreate(b)
			if st := e.state(id); st.Status != specs.StateCreating {
				t.Fatalf("state during create: %+v", st)
			}
			killCreate()
			if st := e.state(id); st.Status != specs.StateStopped {
				t.Fatalf("state after the create died: %+v", st)
			}
			e.must("delete", id)
			if left := e.leftovers(id, cgPath, b.dir); len(left) > 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

// A container being created has no init to signal yet: kill fails, and
// signals nothing else (kill(2) with PID 0 would hit the caller's group).
func TestKillOfAContainerBeingCreatedSignalsNothing(t *testing.T) {
	e := newEnv(t)
	id, _ := e.stalledCreate(e.bundle("true"))
	script := berthBin + " runtime --root " + e.root + " kill " + id + " TERM; echo kill-rc=$?"
	out, err := exec.Command("setsid", "sh", "-c", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kill-rc=1") {
		t.Fatalf("the caller of kill: %v: %s", err, out)
	}
	if out, err := e.berth("delete", id); err == nil || !strings.Contains(out, "being created") {
		t.Fatalf("delete of a container being created: %v: %s", err, out)
	}
	e.must("delete", "--force", id)
}

// A state directory with nothing in it (a create killed at its very
// start) is no obstacle: delete removes it and the ID is free again.
func TestDeleteRemovesAnEmptyStateDirectory(t *testing.T) {
	e := newEnv(t)
	id := e.id()
	if err := os.MkdirAll(filepath.Join(e.root, id), 0o700); err != nil {
		t.Fatal(err)
	}
	e.must("delete", id)
	if _, err := os.Stat(filepath.Join(e.root, id)); !os.IsNotExist(err) {
		t.Fatalf("state directory still there: %v", err)
	}
}

// The temporary directory of a create killed before it named its state
// directory goes at the next list, once it is old enough not to be a live
// create's.
func TestListRemovesAbandonedClaims(t *testing.T) {
	e := newEnv(t)
	e.must("list")
	old := filepath.Join(e.root, ".creating-123")
	young := filepath.Join(e.root, ".creating-456")
	for _, d := range []string{old, young} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-time.Hour)
	os.Chtimes(old, long, long)
	e.must("list")
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("abandoned claim still there: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("a young claim was removed: %v", err)
	}
}

// A pid file that cannot be written fails run before the program runs, and
// leaves nothing behind.
func TestUnwritablePidFileFailsBeforeTheProgramRuns(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("touch", "/ran")
	id := e.id()
	out, err := e.berth("run", "--pid-file", "/nonexistent/dir/pid", "--bundle", b.write(t), id)
	if err == nil || !strings.Contains(out, "pid file") {
		t.Fatalf("err %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(b.rootfs, "ran")); err == nil {
		t.Fatal("the program ran")
	}
	if left := e.leftovers(id, id, b.dir); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
