// Package dropin checks that Berth's runtime stands in for runc under the
// engines that call runc: Debian's containerd (runc shim v2 with its binary
// pointed at berth-runc) and podman (--runtime).
package dropin

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/fixture"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var (
	berthRunc string
	rootfs    string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("skipping drop-in tests: they need root")
		return 0
	}
	dir, err := os.MkdirTemp("", "berth-dropin")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if _, err := fixture.BuildBerth(dir); err != nil {
		fmt.Println(err)
		return 1
	}
	berthRunc = filepath.Join(dir, "berth-runc")
	if err := os.Symlink("berth", berthRunc); err != nil {
		panic(err)
	}
	rootfs = filepath.Join(dir, "rootfs")
	if err := fixture.BusyboxRootfs(rootfs); err != nil {
		fmt.Println(err)
		return 1
	}
	// The engines' own state must be reachable by the container's mapped
	// processes; test directories are 0700.
	os.Chmod(dir, 0o755)
	code := m.Run()
	// The parents the engines made for their containers' cgroups: ctr's
	// namespace, podman's libpod_parent.
	if err := fixture.RemoveCgroups(ctrNamespace, "libpod_parent"); err != nil {
		fmt.Println("cgroups left behind:", err)
	}
	return code
}

// ctrNamespace is the containerd namespace the test uses; its cgroups are
// made under /<namespace>/.
var ctrNamespace = fmt.Sprintf("berthtest%d", os.Getpid())

func need(t *testing.T, bins ...string) {
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s is not installed (make test installs it)", b)
		}
	}
}

func cmdOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// berthState reads a container's state through Berth itself: proof that the
// engine's runtime calls went to berth-runc, whose state format is its own.
func berthState(t *testing.T, root, id string) specs.State {
	t.Helper()
	var st specs.State
	out := cmdOut(t, berthRunc, "--root", root, "state", id)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("state: %v: %s", err, out)
	}
	return st
}

func TestContainerdRunsContainersWithBerth(t *testing.T) {
	need(t, "containerd", "ctr")
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644)
	ctd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	logf, _ := os.Create(filepath.Join(dir, "containerd.log"))
	ctd.Stdout, ctd.Stderr = logf, logf
	if err := ctd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctd.Process.Kill()
		ctd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Logf("containerd log:\n%s", log)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ns := ctrNamespace
	ctr := func(args ...string) string {
		t.Helper()
		return cmdOut(t, "ctr", append([]string{"--address", sock, "--namespace", ns}, args...)...)
	}
	// The runc shim keeps runtime state under /run/containerd/runc/<ns>.
	runcRoot := "/run/containerd/runc/" + ns
	defer os.RemoveAll(runcRoot)

	out := ctr("run", "--rm", "--runc-binary", berthRunc, "--rootfs", rootfs, "oneshot", "sh", "-c", "echo hello from containerd; id -u")
	if !strings.Contains(out, "hello from containerd\n0") {
		t.Fatalf("ctr run: %q", out)
	}

	ctr("run", "-d", "--runc-binary", berthRunc, "--rootfs", rootfs, "long", "sleep", "1000")
	defer func() {
		exec.Command("ctr", "--address", sock, "--namespace", ns, "task", "kill", "-s", "KILL", "long").Run()
		time.Sleep(200 * time.Millisecond)
		exec.Command("ctr", "--address", sock, "--namespace", ns, "task", "rm", "-f", "long").Run()
		exec.Command("ctr", "--address", sock, "--namespace", ns, "container", "rm", "long").Run()
	}()
	st := berthState(t, runcRoot, "long")
	if st.Status != specs.StateRunning {
		t.Fatalf("berth state: %v", st)
	}
	if tasks := ctr("task", "ls"); !slices.Contains(strings.Fields(tasks), strconv.Itoa(st.Pid)) {
		t.Fatalf("containerd and berth disagree on the PID: %s vs %v", tasks, st.Pid)
	}
	if out := ctr("task", "exec", "--exec-id", "e1", "long", "sh", "-c", "echo exec works"); !strings.Contains(out, "exec works") {
		t.Fatalf("exec: %q", out)
	}
	ctr("task", "pause", "long")
	if out := ctr("task", "ls"); !strings.Contains(out, "PAUSED") {
		t.Fatalf("after pause: %s", out)
	}
	ctr("task", "resume", "long")
	if out := ctr("task", "ps", "long"); !slices.Contains(strings.Fields(out), strconv.Itoa(st.Pid)) {
		t.Fatalf("ps: %s", out)
	}
	ctr("task", "kill", "-s", "KILL", "long")
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(ctr("task", "ls"), "STOPPED") {
		if time.Now().After(deadline) {
			t.Fatal("task did not stop")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctr("task", "rm", "long")
	ctr("container", "rm", "long")
	if _, err := os.Stat(filepath.Join(runcRoot, "long")); !os.IsNotExist(err) {
		t.Fatalf("berth state left after containerd removed the task: %v", err)
	}
}

func TestPodmanRunsContainersWithBerth(t *testing.T) {
	need(t, "podman", "conmon")
	// podman refuses a runroot longer than 50 characters.
	dir, err := os.MkdirTemp("", "pm")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	// Without systemd podman manages cgroups itself and logs events to a
	// file; its default rlimits exceed what this machine allows (no
	// CAP_SYS_RESOURCE), for runc as for Berth.
	base := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--runtime", berthRunc, "--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	podman := func(args ...string) string {
		t.Helper()
		return cmdOut(t, "podman", append(append([]string{}, base...), args...)...)
	}
	limits := []string{"--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	defer func() {
		exec.Command("podman", append(append([]string{}, base...), "rm", "-f", "-a")...).Run()
		// podman leaves its storage mounted.
		exec.Command("umount", "-R", filepath.Join(dir, "root", "overlay")).Run()
		exec.Command("umount", filepath.Join(dir, "root", "overlay")).Run()
		os.RemoveAll(dir)
	}()

	run := append(append([]string{"run", "--rm"}, limits...), "--rootfs", rootfs, "sh", "-c", "echo hello from podman; id -u")
	if out := podman(run...); !strings.Contains(out, "hello from podman\n0") {
		t.Fatalf("podman run: %q", out)
	}

	detached := append(append([]string{"run", "-d", "--name", "long"}, limits...), "--rootfs", rootfs, "sleep", "1000")
	id := strings.TrimSpace(podman(detached...))
	if out := podman("exec", "long", "sh", "-c", "echo exec works"); !strings.Contains(out, "exec works") {
		t.Fatalf("podman exec: %q", out)
	}
	// podman passes no --root: the state is under Berth's default.
	st := berthState(t, "/run/berth/runtime", id)
	if st.Status != specs.StateRunning {
		t.Fatalf("berth state under podman: %v", st)
	}
	podman("pause", "long")
	podman("unpause", "long")
	podman("stop", "-t", "1", "long")
	if out := podman("ps", "-a", "--format", "{{.Status}}"); !strings.Contains(out, "Exited") {
		t.Fatalf("after stop: %s", out)
	}
	podman("rm", "long")
}
