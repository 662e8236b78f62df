package cgroups

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// fakeV2 lays out a directory that looks like a cgroup2 root offering the
// given controllers; knobs are files the test creates where the kernel
// would.
func fakeV2(t *testing.T, controllers string) string {
	t.Helper()
	root := t.TempDir()
	write(t, root, "cgroup.controllers", controllers)
	write(t, root, "cgroup.subtree_control", "")
	return root
}

func write(t *testing.T, dir, file, v string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func u64(v uint64) *uint64 { return &v }
func u16(v uint16) *uint16 { return &v }

// knobs creates the files a kernel would show in a new cgroup.
func knobs(t *testing.T, dir string, files ...string) {
	for _, f := range files {
		write(t, dir, f, "")
	}
}

func TestV2CreateDelegatesControllersDownThePath(t *testing.T) {
	root := fakeV2(t, "cpuset cpu io memory pids")
	m, err := New(Options{Root: root, Path: "/berth/c1"})
	if err != nil {
		t.Fatal(err)
	}
	// The kernel makes these files in every new directory.
	os.MkdirAll(filepath.Join(root, "berth"), 0o755)
	write(t, filepath.Join(root, "berth"), "cgroup.subtree_control", "")
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root, filepath.Join(root, "berth")} {
		if got := read(t, d, "cgroup.subtree_control"); got != "+cpuset +cpu +io +memory +pids" {
			t.Errorf("%s/cgroup.subtree_control = %q", d, got)
		}
	}
	if m.Paths()[""] != filepath.Join(root, "berth/c1") || m.Version() != 2 {
		t.Fatalf("paths %v", m.Paths())
	}
}

func TestV2SetConvertsTheSpecsV1Units(t *testing.T) {
	root := fakeV2(t, "")
	m, _ := New(Options{Root: root, Path: "/c"})
	dir := m.Paths()[""]
	knobs(t, dir, "cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems", "memory.max", "memory.swap.max", "memory.low",
		"pids.max", "io.weight", "io.max", "hugetlb.2MB.max", "memory.oom.group")
	err := m.Set(&specs.LinuxResources{
		CPU:            &specs.LinuxCPU{Shares: u64(1024), Quota: i64(50000), Period: u64(100000), Cpus: "0-1", Mems: "0"},
		Memory:         &specs.LinuxMemory{Limit: i64(256 << 20), Swap: i64(512 << 20), Reservation: i64(128 << 20)},
		Pids:           &specs.LinuxPids{Limit: i64(-1)},
		BlockIO:        &specs.LinuxBlockIO{Weight: u16(500), ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1048576}}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
		Unified:        map[string]string{"memory.oom.group": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu.weight":       "39", // 1 + (1024-2)*9999/262142
		"cpu.max":          "50000 100000",
		"cpuset.cpus":      "0-1",
		"memory.max":       "268435456",
		"memory.swap.max":  "268435456", // memory+swap minus memory
		"memory.low":       "134217728",
		"pids.max":         "max",
		"io.weight":        "4950", // 1 + (500-10)*9999/990
		"io.max":           "8:0 rbps=1048576",
		"hugetlb.2MB.max":  "4194304",
		"memory.oom.group": "1",
	}
	for f, v := range want {
		if got := read(t, dir, f); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
}

func TestV2RefusesWhatV2CannotDoNamingTheField(t *testing.T) {
	root := fakeV2(t, "")
	m, _ := New(Options{Root: root, Path: "/c"})
	knobs(t, m.Paths()[""], "memory.max", "memory.swap.max")
	cases := []struct {
		r     specs.LinuxResources
		field string
	}{
		{specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: i64(100)}}, "cpu.realtimeRuntime"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(10)}}, "memory.swappiness"},
		{specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(100), Swap: i64(50)}}, "memory.swap"},
		{specs.LinuxResources{Unified: map[string]string{"../escape": "1"}}, "unified[../escape]"},
		{specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}, "unified[cgroup.procs]"},
		{specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}}, "pids.limit"}, // no pids.max here
	}
	for _, c := range cases {
		err := m.Set(&c.r)
		if err == nil || !strings.Contains(err.Error(), "linux.resources."+c.field) {
			t.Errorf("got %v, want an error naming linux.resources.%s", err, c.field)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "escape")); err == nil {
		t.Fatal("a unified key wrote outside the cgroup")
	}
}

func TestV2FreezeWaitsForTheKernel(t *testing.T) {
	root := fakeV2(t, "")
	m, _ := New(Options{Root: root, Path: "/c"})
	dir := m.Paths()[""]
	knobs(t, dir, "cgroup.freeze")
	write(t, dir, "cgroup.events", "populated 1\nfrozen 0\n")
	go func() {
		time.Sleep(20 * time.Millisecond)
		write(t, dir, "cgroup.events", "populated 1\nfrozen 1\n")
	}()
	if err := m.Freeze(true); err != nil {
		t.Fatal(err)
	}
	if read(t, dir, "cgroup.freeze") != "1" || read(t, dir, "cgroup.events") != "populated 1\nfrozen 1\n" {
		t.Fatal("Freeze returned before the kernel reported frozen")
	}
}

func TestSystemdPathsAreRefused(t *testing.T) {
	if _, err := New(Options{Path: "system.slice:berth:abc"}); !errors.Is(err, ErrSystemd) {
		t.Fatalf("got %v", err)
	}
}

func TestCPUSharesConversionKeepsTheEnds(t *testing.T) {
	if ConvertCPUShares(2) != 1 || ConvertCPUShares(262144) != 10000 || ConvertCPUShares(0) != 0 {
		t.Fatal("shares ends")
	}
	if ConvertBlkioWeight(10) != 1 || ConvertBlkioWeight(1000) != 10000 {
		t.Fatal("blkio ends")
	}
}

// unified returns a real cgroup2 mount to test against, which this host
// has either as its only hierarchy or beside v1 controllers.
func unified(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	t.Skip("no cgroup2 mount")
	return ""
}

// commandIn is a command to start directly in the cgroup dir
// (clone3 CLONE_INTO_CGROUP).
func commandIn(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	return cmd
}

// startIn starts a command directly in the cgroup.
func startIn(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := commandIn(t, dir, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestV2OnTheKernelFreezePidsAndKill(t *testing.T) {
	root := unified(t)
	m, err := New(Options{Root: root, Path: "/berth-unit-" + t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer m.Destroy()
	dir := m.Paths()[""]
	cmd := startIn(t, dir, "sleep", "100")
	pids, err := m.Pids()
	if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Fatalf("pids %v %v, want [%d]", pids, err, cmd.Process.Pid)
	}
	if err := m.Freeze(true); err != nil {
		t.Fatal(err)
	}
	if f, _ := m.Frozen(); !f {
		t.Fatal("not frozen")
	}
	if err := m.Freeze(false); err != nil {
		t.Fatal(err)
	}
	if err := m.Kill(); err != nil {
		t.Fatalf("cgroup.kill: %v", err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("process survived cgroup.kill")
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("cgroup not removed")
	}
}

func TestV2DeviceFilterOnTheKernel(t *testing.T) {
	root := unified(t)
	m, err := New(Options{Root: root, Path: "/berth-unit-devices"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	defer m.Destroy()
	// Deny everything, then allow /dev/kmsg read-only; the defaults add
	// /dev/null and the rest.
	rules := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64(1), Minor: i64(11), Access: "r"},
	}
	if err := m.Set(&specs.LinuxResources{Devices: rules}); err != nil {
		t.Fatal(err)
	}
	out := func(script string) string {
		b, _ := commandIn(t, m.Paths()[""], "sh", "-c", script).CombinedOutput()
		return strings.TrimSpace(string(b))
	}
	if got := out("exec 3</dev/kmsg && echo opened"); got != "opened" {
		t.Errorf("read /dev/kmsg: %q", got)
	}
	if got := out("exec 3>/dev/kmsg && echo opened"); strings.Contains(got, "opened") || !strings.Contains(got, "not permitted") {
		t.Errorf("write /dev/kmsg allowed: %q", got)
	}
	// A node of our own for a device no rule names (1:1, /dev/mem's).
	mem := filepath.Join(t.TempDir(), "mem")
	if err := unix.Mknod(mem, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))); err != nil {
		t.Fatal(err)
	}
	if got := out("exec 3<" + mem + " && echo opened"); strings.Contains(got, "opened") || !strings.Contains(got, "not permitted") {
		t.Errorf("read /dev/mem, which no rule allows: %q", got)
	}
	if got := out("echo x > /dev/null && echo ok"); got != "ok" {
		t.Errorf("default /dev/null: %q", got)
	}
	// A new filter replaces the old one rather than stacking on it.
	if err := m.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}); err != nil {
		t.Fatal(err)
	}
	// The kernel has no driver for 1:1 here: ENXIO instead of EPERM
	// shows the filter let the open through.
	if got := out("exec 3<" + mem + " && echo opened"); strings.Contains(got, "not permitted") || !strings.Contains(got, "No such device or address") {
		t.Errorf("after allowing all: %q", got)
	}
}

func TestPagesizesNameHugetlbFilesOnly(t *testing.T) {
	for _, s := range []string{"2MB", "1GB", "64KB", "16GB", "4B"} {
		if !validPagesize(s) {
			t.Errorf("%s refused", s)
		}
	}
	for _, s := range []string{"", "B", "2M", "02MB", "2MMB", "2KMB", "../2MB", "2MB/..", "2 MB", "-2MB"} {
		if validPagesize(s) {
			t.Errorf("%q accepted", s)
		}
	}
}
