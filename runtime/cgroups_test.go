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

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupFile reads a knob of the container's cgroup on this (v1 or hybrid)
// host, or "" where the controller is not mounted.
func cgroupFile(t *testing.T, controller, path, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, path, file))
	if err != nil {
		if os.IsNotExist(err) {
			return ""
		}
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func skipUnlessV1(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		t.Skip("these checks read cgroup v1 files; v2 is covered by the cgroups package's tests")
	}
}

func TestResourcesAreAppliedAndUpdated(t *testing.T) {
	skipUnlessV1(t)
	e := newEnv(t)
	b := e.bundle("sleep", "1000")
	cg := "/berth-test/" + e.id()
	b.spec.Linux.CgroupsPath = cg
	shares := uint64(512)
	quota, period := int64(50000), uint64(100000)
	b.spec.Linux.Resources = &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64(64 << 20)},
		CPU:    &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "0"},
		Pids:   &specs.LinuxPids{Limit: i64(50)},
	}
	id := e.runningContainer(b)
	checks := [][3]string{
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpuset", "cpuset.cpus", "0"},
		{"pids", "pids.max", "50"},
	}
	for _, c := range checks {
		if got := cgroupFile(t, c[0], cg, c[1]); got != c[2] {
			t.Errorf("%s: %q, want %s", c[1], got, c[2])
		}
	}
	// The container's processes are in it.
	procs := cgroupFile(t, "memory", cg, "cgroup.procs")
	if !strings.Contains(procs, strconv.Itoa(e.state(id).Pid)) {
		t.Fatalf("init not in its cgroup: %q", procs)
	}

	e.must("update", "--memory", "128m", "--pids-limit", "80", "--cpu-quota", "20000", id)
	if got := cgroupFile(t, "memory", cg, "memory.limit_in_bytes"); got != "134217728" {
		t.Errorf("memory after update: %s", got)
	}
	if got := cgroupFile(t, "pids", cg, "pids.max"); got != "80" {
		t.Errorf("pids after update: %s", got)
	}
	if got := cgroupFile(t, "cpu", cg, "cpu.cfs_quota_us"); got != "20000" {
		t.Errorf("quota after update: %s", got)
	}
	// The same through a resources file on stdin.
	res := `{"pids":{"limit":90}}`
	f := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(f, []byte(res), 0o644)
	e.must("update", "--resources", f, id)
	if got := cgroupFile(t, "pids", cg, "pids.max"); got != "90" {
		t.Errorf("pids after --resources: %s", got)
	}
	out, err := e.berth("update", "--memory", "lots", id)
	if err == nil || !strings.Contains(out, "--memory") {
		t.Fatalf("bad size accepted: %s", out)
	}

	e.must("delete", "--force", id)
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", cg)); !os.IsNotExist(err) {
		t.Fatal("cgroup left after delete")
	}
}

func TestPidsLimitStopsForks(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 10 & done; wait")
	b.spec.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}}
	out, _ := e.run(b)
	if !strings.Contains(out, "can't fork") && !strings.Contains(out, "Resource temporarily unavailable") {
		t.Fatalf("10 forks under a limit of 5: %s", out)
	}
}

func TestPauseAndResume(t *testing.T) {
	e := newEnv(t)
	id := e.runningContainer(e.bundle("sleep", "1000"))
	e.must("pause", id)
	if st := e.state(id); st.Status != "paused" {
		t.Fatalf("status %s", st.Status)
	}
	if out, err := e.berth("pause", id); err == nil {
		t.Fatalf("pausing a paused container: %s", out)
	}
	e.must("resume", id)
	if st := e.state(id); st.Status != specs.StateRunning {
		t.Fatalf("status %s", st.Status)
	}
}

func TestKillAllSignalsEveryProcess(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "sleep 1000 & sleep 1000 & wait")
	withoutNamespace(b.spec, specs.PIDNamespace)
	id := e.runningContainer(b)
	waitFor(t, "three processes", func() bool {
		return len(e.pids(id)) == 3
	})
	e.must("kill", "--all", id, "KILL")
	waitFor(t, "all processes to die", func() bool {
		return len(e.pids(id)) == 0
	})
}

func TestPsTableFiltersTheContainersProcesses(t *testing.T) {
	e := newEnv(t)
	id := e.runningContainer(e.bundle("sleep", "1000"))
	out := e.must("ps", id)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "PID") || !strings.Contains(lines[1], "sleep 1000") {
		t.Fatalf("ps:\n%s", out)
	}
}

func TestEventsStatsReportsUsage(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sleep", "1000")
	b.spec.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(20)}}
	id := e.runningContainer(b)
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			Pids   struct{ Current, Limit uint64 } `json:"pids"`
			Memory struct {
				Usage struct{ Usage uint64 } `json:"usage"`
			} `json:"memory"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(e.must("events", "--stats", id)), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "stats" || ev.ID != id || ev.Data.Pids.Current != 1 || ev.Data.Pids.Limit != 20 || ev.Data.Memory.Usage.Usage == 0 {
		t.Fatalf("event %+v", ev)
	}
}

// delete --force of a paused container: a frozen process cannot die
// until it thaws (v1's freezer), so delete thaws it.
func TestDeleteForceOfAPausedContainer(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "sleep 1000 & sleep 1000")
	id := e.runningContainer(b)
	e.must("pause", id)
	done := make(chan string, 1)
	go func() { out, _ := e.berth("delete", "--force", id); done <- out }()
	select {
	case out := <-done:
		if out != "" {
			t.Fatalf("delete: %s", out)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("delete --force of a paused container hangs")
	}
	if out, _ := e.berth("list", "-q"); strings.Contains(out, id) {
		t.Fatalf("container still listed: %s", out)
	}
}

// berthWithoutUnified runs the CLI in a mount namespace of its own without
// the cgroup2 mount: a host with cgroup v1 hierarchies only, where the
// container process starts before its cgroup exists and moves itself in.
func (e *env) berthWithoutUnified(args ...string) (string, error) {
	e.t.Helper()
	if !isCgroup2("/sys/fs/cgroup/unified") {
		e.t.Skip("needs the hybrid layout, to take its cgroup2 mount away")
	}
	script := `umount /sys/fs/cgroup/unified && exec "$0" "$@"`
	cmd := exec.Command("unshare", append([]string{"-m", "sh", "-c", script, berthBin, "runtime", "--root", e.root}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func isCgroup2(path string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(path, &st) == nil && st.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
}

func TestCgroupV1OnlyHost(t *testing.T) {
	e := newEnv(t)
	cgPath := "/berth-test/" + e.id()
	b := e.bundle("cat", "/proc/self/cgroup")
	b.spec.Linux.CgroupsPath = cgPath
	// The container's own cgroup namespace would show "/".
	withoutNamespace(b.spec, specs.CgroupNamespace)
	out, err := e.berthWithoutUnified("run", "--bundle", b.write(t), e.id())
	if err != nil {
		t.Fatalf("run: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	in := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "0::") {
			continue // the cgroup2 hierarchy, not mounted here
		}
		if !strings.HasSuffix(l, ":"+cgPath) {
			t.Errorf("not in its cgroup: %s", l)
		}
		in++
	}
	if in < 5 {
		t.Fatalf("in %d v1 hierarchies only:\n%s", in, out)
	}

	// A create that fails after the process has started leaves nothing.
	bad := e.bundle("true")
	bad.spec.Linux.CgroupsPath = cgPath + "-bad"
	bad.spec.Process.Cwd = "relative"
	id := e.id()
	if out, err := e.berthWithoutUnified("create", "--bundle", bad.write(t), id); err == nil || !strings.Contains(out, "process.cwd") {
		t.Fatalf("create with a bad config: %v: %s", err, out)
	}
	if left := e.leftovers(id, cgPath+"-bad", bad.dir); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
