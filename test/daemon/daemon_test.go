// Package daemon tests `berth daemon` through the berth CLI, as a user
// drives it: real containers, a real CNI bridge, published ports reached
// over the host's addresses, the daemon killed with SIGKILL and started
// again.
package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/fixture"
	"github.com/berth-dev/berth/internal/testimage"
)

var berthBin string

const (
	cgroupParent = "berth-daemon-test"
	bridge       = "berthtest0"
	subnet       = "10.97.0.0/16"
)

func TestMain(m *testing.M) {
	os.Exit(fixture.RunAsRoot(m, "daemon", &berthBin, cgroupParent))
}

// daemon is one `berth daemon` on a root of its own.
type daemon struct {
	t     *testing.T
	root  string
	cmd   *exec.Cmd
	log   *bytes.Buffer
	extra []string // more flags for berth daemon
}

func (d *daemon) socket() string { return filepath.Join(d.root, "run", "berth.sock") }

// newDaemon loads the test images into a fresh root and starts a daemon
// on it; the test's end stops it and removes what is left.
func newDaemon(t *testing.T, extra ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, root: t.TempDir(), extra: extra}
	for _, mk := range []func() (testimage.Image, error){testimage.Busybox, testimage.EchoServer} {
		img, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		tar := filepath.Join(d.root, "img.tar")
		f, err := os.Create(tar)
		if err != nil {
			t.Fatal(err)
		}
		if err := img.WriteDockerArchive(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if out, err := exec.Command(berthBin, "--root", d.root, "image", "load", "-i", tar).CombinedOutput(); err != nil {
			t.Fatalf("load: %v\n%s", err, out)
		}
		os.Remove(tar)
	}
	d.start()
	t.Cleanup(func() {
		if d.cmd != nil {
			out, _ := d.run("ps", "-aq")
			for _, id := range strings.Fields(out) {
				d.run("rm", "-f", "-v", id)
			}
			d.stop()
		}
		exec.Command("ip", "link", "del", bridge).Run()
		exec.Command("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", subnet, "!", "-o", bridge,
			"-m", "comment", "--comment", "berth network bridge", "-j", "MASQUERADE").Run()
		exec.Command("iptables", "-w", "-D", "BERTH-ISOLATION-1", "-i", bridge, "!", "-o", bridge,
			"-m", "comment", "--comment", "berth network bridge", "-j", "BERTH-ISOLATION-2").Run()
		exec.Command("iptables", "-w", "-D", "BERTH-ISOLATION-2", "-o", bridge,
			"-m", "comment", "--comment", "berth network bridge", "-j", "DROP").Run()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	d.log = &bytes.Buffer{}
	args := []string{"--root", d.root, "--log-level", "info", "daemon", "--bridge", bridge, "--subnet", subnet, "--cgroup-parent", "/" + cgroupParent}
	d.cmd = exec.Command(berthBin, append(args, d.extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", d.socket()); err == nil {
			c.Close()
			return
		}
	}
	d.t.Fatalf("the daemon did not listen on %s:\n%s", d.socket(), d.log)
}

func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	d.cmd = nil
}

func (d *daemon) kill9() {
	d.cmd.Process.Kill()
	d.cmd.Wait()
	d.cmd = nil
}

// run runs the berth CLI against the daemon.
func (d *daemon) run(args ...string) (string, error) {
	out, errOut, err := d.runSplit("", args...)
	return out + errOut, err
}

func (d *daemon) runSplit(stdin string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(berthBin, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+d.socket())
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Stdin = strings.NewReader(stdin)
	err = cmd.Run()
	return o.String(), e.String(), err
}

// must runs the CLI and fails the test if it fails.
func (d *daemon) must(args ...string) string {
	d.t.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// eventually retries fn until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, fn func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if fn() {
			return
		}
	}
	t.Fatalf("not within %v: %s", within, what)
}

// leftovers lists what containers' networking may leave on the host.
func (d *daemon) leftovers() []string {
	var out []string
	ents, _ := os.ReadDir(filepath.Join(d.root, "run", "netns"))
	for _, e := range ents {
		out = append(out, "netns "+e.Name())
	}
	leases, _ := filepath.Glob(filepath.Join(d.root, "run", "cni", "ipam", "*", "10.*"))
	for _, l := range leases {
		out = append(out, "lease "+filepath.Base(l))
	}
	links, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).Output()
	if s := strings.TrimSpace(string(links)); s != "" {
		out = append(out, "veth "+s)
	}
	nat, _ := exec.Command("iptables", "-w", "-t", "nat", "-S").Output()
	for _, l := range strings.Split(string(nat), "\n") {
		if strings.Contains(l, "CNI-DN-") && strings.HasPrefix(l, "-A CNI-DN") {
			out = append(out, "rule "+l)
		}
	}
	return out
}

func TestRunPsLogsExecRemove(t *testing.T) {
	d := newDaemon(t)
	// Only root may talk to the daemon.
	if st, err := os.Stat(d.socket()); err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v, mode %v", d.socket(), err, st.Mode())
	}
	if _, err := exec.LookPath("runc"); err == nil {
		if out := d.must("run", "--rm", "--runtime", "runc", "berth.test/busybox", "echo", "from runc"); out != "from runc" {
			t.Errorf("--runtime runc: %q", out)
		}
	}
	if out := d.must("run", "--rm", "berth.test/busybox", "echo", "hello"); out != "hello" {
		t.Fatalf("run --rm echo: %q", out)
	}
	_, err := d.run("run", "--rm", "berth.test/busybox", "sh", "-c", "exit 3")
	if exitCode(err) != 3 {
		t.Fatalf("run of exit 3: %v", err)
	}
	// stdin with -i, and stderr kept apart.
	o, e, err := d.runSplit("from stdin\n", "run", "--rm", "-i", "berth.test/busybox", "sh", "-c", "cat; echo oops >&2")
	if err != nil || o != "from stdin\n" || e != "oops\n" {
		t.Fatalf("run -i: %v, stdout %q, stderr %q", err, o, e)
	}
	id := d.must("run", "-d", "--name", "web", "-e", "GREETING=hi", "berth.test/busybox", "sh", "-c", "echo started; echo $GREETING; exec sleep 1000")
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, not an ID", id)
	}
	if out := d.must("ps", "--format", "{{.Names}} {{.State}}"); out != "web running" {
		t.Fatalf("ps: %q", out)
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(d.must("ps", "-o", "json")), &listed); err != nil || len(listed) != 1 || listed[0]["Id"] != id {
		t.Fatalf("ps -o json: %v %v", err, listed)
	}
	if out := d.must("ps"); !strings.Contains(out, "CONTAINER ID") || !strings.Contains(out, "Up ") {
		t.Fatalf("ps table:\n%s", out)
	}
	eventually(t, 5*time.Second, "logs of web", func() bool {
		out, _ := d.run("logs", "web")
		return out == "started\nhi\n"
	})
	if out := d.must("logs", "--tail", "1", "-t", "web"); !strings.HasSuffix(out, " hi") || !strings.Contains(out, "T") {
		t.Fatalf("logs --tail 1 -t: %q", out)
	}
	if out := d.must("exec", "-e", "X=1", "web", "sh", "-c", "echo $GREETING $X; id -u"); out != "hi 1\n0" {
		t.Fatalf("exec: %q", out)
	}
	if _, err := d.run("exec", "web", "sh", "-c", "exit 4"); exitCode(err) != 4 {
		t.Fatalf("exec exit 4: %v", err)
	}
	if out := d.must("exec", "-u", "nobody", "-w", "/tmp", "web", "sh", "-c", "id -un; pwd"); out != "nobody\n/tmp" {
		t.Fatalf("exec -u -w: %q", out)
	}
	if out := d.must("inspect", "--format", "{{.State.Status}} {{.Name}} {{.HostConfig.NetworkMode}}", "web"); out != "running /web bridge" {
		t.Fatalf("inspect --format: %q", out)
	}
	if out := d.must("top", "web"); !strings.Contains(out, "sleep 1000") {
		t.Fatalf("top:\n%s", out)
	}
	var stats []map[string]any
	if err := json.Unmarshal([]byte(d.must("stats", "--no-stream", "-o", "json", "web")), &stats); err != nil || len(stats) != 1 {
		t.Fatalf("stats: %v", err)
	}
	if mem := stats[0]["memory_stats"].(map[string]any)["usage"]; mem == nil || mem.(float64) <= 0 {
		t.Fatalf("stats report no memory use: %v", stats[0]["memory_stats"])
	}
	if _, err := d.run("rm", "web"); exitCode(err) != 1 {
		t.Fatalf("rm of a running container: %v", err)
	}
	d.must("stop", "-t", "1", "web")
	if out := d.must("inspect", "--format", "{{.State.Status}}", "web"); out != "exited" {
		t.Fatalf("after stop: %q", out)
	}
	d.must("rm", "web")
	if out := d.must("ps", "-aq"); out != "" {
		t.Fatalf("containers left: %q", out)
	}
	if left := d.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestBadInputNamesTheProblemAndLeavesNothing(t *testing.T) {
	d := newDaemon(t)
	d.must("run", "-d", "--name", "taken", "berth.test/busybox", "sleep", "1000")
	vols := d.must("volume", "ls", "-q")
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--pull", "never", "berth.test/nosuch"}, "No such image"},
		{[]string{"-p", "70000:80", "berth.test/busybox"}, "70000"},
		{[]string{"-p", "80:80/sctp", "berth.test/busybox"}, "sctp"},
		{[]string{"-v", "/no/such/dir:/data", "berth.test/busybox"}, "/no/such/dir"},
		{[]string{"--name", "taken", "berth.test/busybox"}, "already in use"},
		{[]string{"-m", "lots", "berth.test/busybox"}, "lots"},
		{[]string{"--runtime", "nosuch", "berth.test/busybox"}, "nosuch"},
		{[]string{"--network", "nosuchnet", "berth.test/busybox"}, "nosuchnet"},
		{[]string{"--restart", "sometimes", "berth.test/busybox"}, "sometimes"},
	}
	for _, b := range bad {
		_, stderr, err := d.runSplit("", append([]string{"run", "--rm"}, append(b.args, "true")...)...)
		if exitCode(err) != 125 || !strings.Contains(stderr, b.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("run %v: exit %d, stderr %q; want 125 and one line naming %q", b.args, exitCode(err), stderr, b.want)
		}
	}
	// A command that is not there: the runtime's error, exit 127.
	_, stderr, err := d.runSplit("", "run", "--rm", "berth.test/busybox", "/no/such/binary")
	if exitCode(err) != 127 || !strings.Contains(stderr, "/no/such/binary") {
		t.Errorf("missing binary: exit %d, stderr %q", exitCode(err), stderr)
	}
	eventually(t, 5*time.Second, "only the first container left", func() bool {
		out, _ := d.run("ps", "-a", "--format", "{{.Names}}")
		return strings.TrimSpace(out) == "taken"
	})
	if got := d.must("volume", "ls", "-q"); got != vols {
		t.Errorf("volumes changed: %q, was %q", got, vols)
	}
	d.must("rm", "-f", "taken")
	if left := d.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	// No daemon: one line that says so.
	cmd := exec.Command(berthBin, "ps")
	cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+filepath.Join(t.TempDir(), "none.sock"))
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), "berth daemon") {
		t.Errorf("without a daemon: %v %q", err, out)
	}
}

// hostAddr is one of the host's own non-loopback IPv4 addresses.
func hostAddr(t *testing.T) string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !strings.HasPrefix(ipn.IP.String(), "10.97.") {
			return ipn.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address on this host")
	return ""
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestNetworking(t *testing.T) {
	d := newDaemon(t)
	d.must("run", "-d", "--name", "echo", "-p", "18080:8080", "-p", "127.0.0.1:18081:8080", "berth.test/echoserver")
	ip := d.must("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "echo")
	if !strings.HasPrefix(ip, "10.97.") {
		t.Fatalf("container address %q is not in %s", ip, subnet)
	}
	for _, url := range []string{"http://127.0.0.1:18080/", "http://127.0.0.1:18081/", "http://" + hostAddr(t) + ":18080/", "http://" + ip + ":8080/"} {
		var body string
		eventually(t, 10*time.Second, "GET "+url, func() bool {
			var err error
			body, err = get(url)
			return err == nil
		})
		if !strings.HasPrefix(body, "echoserver ") {
			t.Errorf("GET %s: %q", url, body)
		}
	}
	// Container to container, by IP; /etc/hosts names the container.
	if out := d.must("run", "--rm", "berth.test/busybox", "wget", "-qO-", "http://"+ip+":8080/"); !strings.HasPrefix(out, "echoserver") {
		t.Errorf("container to container: %q", out)
	}
	if out := d.must("exec", "echo", "cat", "/etc/hosts"); !strings.Contains(out, ip+"\t") {
		t.Errorf("/etc/hosts has not the container's address:\n%s", out)
	}
	if out := d.must("run", "--rm", "--network", "none", "berth.test/busybox", "ls", "/sys/class/net"); out != "lo" {
		t.Errorf("--network none interfaces: %q", out)
	}
	hostLinks, _ := os.ReadDir("/sys/class/net")
	if out := d.must("run", "--rm", "--network", "host", "berth.test/busybox", "ls", "/sys/class/net"); len(strings.Fields(out)) != len(hostLinks) {
		t.Errorf("--network host interfaces: %q, the host has %d", out, len(hostLinks))
	}
	// A user network of its own subnet.
	d.must("network", "create", "--subnet", "10.96.5.0/24", "testnet")
	if out := d.must("network", "ls", "--format", "{{.Name}} {{.Subnet}}"); !strings.Contains(out, "testnet 10.96.5.0/24") {
		t.Errorf("network ls:\n%s", out)
	}
	d.must("run", "-d", "--name", "onnet", "--network", "testnet", "berth.test/busybox", "sleep", "1000")
	if out := d.must("inspect", "--format", "{{.NetworkSettings.Networks.testnet.IPAddress}}", "onnet"); !strings.HasPrefix(out, "10.96.5.") {
		t.Errorf("address on testnet: %q", out)
	}
	// Networks are isolated from each other, as Docker's bridges are.
	if out, err := d.run("exec", "onnet", "wget", "-T", "2", "-qO-", "http://"+ip+":8080/"); err == nil {
		t.Errorf("a container on testnet reached one on the default network: %q", out)
	}
	if _, err := d.run("network", "rm", "testnet"); err == nil {
		t.Errorf("a network in use was removed")
	}
	d.must("rm", "-f", "onnet", "echo")
	d.must("network", "rm", "testnet")
	if left := d.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	if _, err := get("http://127.0.0.1:18080/"); err == nil {
		t.Errorf("the published port still answers after rm")
	}
}

func TestContainersOutliveTheDaemon(t *testing.T) {
	d := newDaemon(t)
	d.must("run", "-d", "--name", "counter", "berth.test/busybox", "sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done")
	d.must("run", "-d", "--name", "short", "berth.test/busybox", "sh", "-c", "sleep 1; exit 7")
	d.must("run", "-d", "--name", "published", "-p", "18090:8080", "berth.test/echoserver")
	// logs -f across the daemon's death: it ends with the daemon, and
	// a new one takes up where the log is.
	before := d.must("logs", "counter")
	d.kill9()
	time.Sleep(2 * time.Second)
	// Meanwhile the container runs on and its port still answers.
	if _, err := get("http://127.0.0.1:18090/"); err != nil {
		t.Errorf("the published port died with the daemon: %v", err)
	}
	d.start()
	// The exit that came while the daemon was down was cleaned up after
	// at its start: namespaces and leases are the two running ones'.
	var netns, leases int
	for _, l := range d.leftovers() {
		switch {
		case strings.HasPrefix(l, "netns "):
			netns++
		case strings.HasPrefix(l, "lease "):
			leases++
		}
	}
	if netns != 2 || leases != 2 {
		t.Errorf("after the restart %d namespaces and %d leases, not 2 and 2: %v", netns, leases, d.leftovers())
	}
	out := d.must("ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}")
	lines := strings.Split(out, "\n")
	if len(lines) != 3 {
		t.Fatalf("containers after the restart:\n%s", out)
	}
	for _, want := range []string{"counter running", "published running", "short exited Exited (7)"} {
		if !strings.Contains(out, want) {
			t.Errorf("after the restart, no %q in:\n%s", want, out)
		}
	}
	after := d.must("logs", "counter")
	if len(after) <= len(before) || !strings.HasPrefix(after, before) {
		t.Errorf("the log did not go on while the daemon was down: %d bytes before, %d after", len(before), len(after))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	follow := exec.CommandContext(ctx, berthBin, "logs", "-f", "--tail", "1", "counter")
	follow.Env = append(os.Environ(), "BERTH_HOST=unix://"+d.socket())
	fout, _ := follow.Output()
	if n := len(strings.Fields(string(fout))); n < 3 {
		t.Errorf("logs -f after the restart printed %d lines in 1.5 s: %q", n, fout)
	}
	if _, err := get("http://127.0.0.1:18090/"); err != nil {
		t.Errorf("the published port after the restart: %v", err)
	}
	d.must("rm", "-f", "counter", "short", "published")
	if left := d.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestFiftyRunsAtOnce(t *testing.T) {
	d := newDaemon(t)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := d.run("run", "-d", "--name", fmt.Sprintf("c%d", i), "berth.test/busybox", "sleep", "1000"); err != nil {
				errs <- fmt.Errorf("c%d: %v: %s", i, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(strings.Fields(d.must("ps", "-q"))); n != 50 {
		t.Fatalf("%d containers running, not 50", n)
	}
	ips := map[string]bool{}
	for _, ip := range strings.Fields(d.must("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "c0", "c1", "c2", "c48", "c49")) {
		ips[ip] = true
	}
	if len(ips) != 5 {
		t.Errorf("addresses are not distinct: %v", ips)
	}
	args := []string{"rm", "-f"}
	for i := range 50 {
		args = append(args, fmt.Sprintf("c%d", i))
	}
	d.must(args...)
	if left := d.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestHealthRestartVolumesCopyEvents(t *testing.T) {
	d := newDaemon(t, "--metrics-addr", "127.0.0.1:19323")
	start := time.Now()
	// The image's HEALTHCHECK, at the flags' interval.
	d.must("run", "-d", "--name", "healthy", "--health-interval", "500ms", "berth.test/echoserver")
	eventually(t, 15*time.Second, "healthy", func() bool {
		out, _ := d.run("inspect", "--format", "{{.State.Health.Status}}", "healthy")
		return strings.TrimSpace(out) == "healthy"
	})
	if out := d.must("ps", "--format", "{{.Status}}"); !strings.Contains(out, "(healthy)") {
		t.Errorf("ps status: %q", out)
	}
	d.must("run", "-d", "--name", "sick", "--health-cmd", "exit 1", "--health-interval", "300ms", "--health-retries", "2", "berth.test/busybox", "sleep", "1000")
	eventually(t, 10*time.Second, "unhealthy", func() bool {
		out, _ := d.run("inspect", "--format", "{{.State.Health.Status}} {{.State.Health.FailingStreak}}", "sick")
		return strings.HasPrefix(strings.TrimSpace(out), "unhealthy ")
	})
	// on-failure:2 restarts twice, with back-off, then leaves it.
	d.must("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "berth.test/busybox", "sh", "-c", "exit 1")
	eventually(t, 15*time.Second, "two restarts", func() bool {
		out, _ := d.run("inspect", "--format", "{{.RestartCount}} {{.State.Status}}", "flaky")
		return strings.TrimSpace(out) == "2 exited"
	})
	// A named volume outlives the container that wrote it.
	d.must("volume", "create", "data")
	d.must("run", "--rm", "-v", "data:/data", "berth.test/busybox", "sh", "-c", "echo kept > /data/f")
	if out := d.must("run", "--rm", "-v", "data:/data:ro", "berth.test/busybox", "cat", "/data/f"); out != "kept" {
		t.Errorf("volume content: %q", out)
	}
	if _, err := d.run("run", "--rm", "-v", "data:/data:ro", "berth.test/busybox", "touch", "/data/g"); err == nil {
		t.Errorf("a read-only volume was written")
	}
	d.must("volume", "rm", "data")
	// cp in and out.
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in.txt"), []byte("to the container\n"), 0o644)
	d.must("run", "-d", "--name", "box", "berth.test/busybox", "sleep", "1000")
	d.must("cp", filepath.Join(host, "in.txt"), "box:/tmp/")
	if out := d.must("exec", "box", "cat", "/tmp/in.txt"); out != "to the container" {
		t.Errorf("cp in: %q", out)
	}
	d.must("exec", "box", "sh", "-c", "mkdir -p /out/sub && echo back > /out/sub/f && ln -s /etc/passwd /out/link")
	d.must("cp", "box:/out", filepath.Join(host, "out"))
	if b, _ := os.ReadFile(filepath.Join(host, "out", "sub", "f")); string(b) != "back\n" {
		t.Errorf("cp out: %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(host, "out", "link")); l != "/etc/passwd" {
		t.Errorf("cp out of a symlink: %q", l)
	}
	// Prometheus metrics, opt-in on their own address.
	metrics, err := get("http://127.0.0.1:19323/metrics")
	if err != nil {
		t.Fatal(err)
	}
	running := len(strings.Fields(d.must("ps", "-q")))
	for _, want := range []string{fmt.Sprintf(`berth_containers{state="running"} %d`, running), "berth_container_memory_bytes{id=", `berth_container_restarts{id=`, "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("no %q in the metrics", want)
		}
	}
	// Events since the test began: create, start, die, destroy.
	d.must("rm", "-f", "box")
	ev := d.must("events", "--since", start.Format(time.RFC3339Nano), "--until", time.Now().Add(time.Second).Format(time.RFC3339Nano), "--filter", "type=container")
	for _, want := range []string{"container create", "container start", "container die", "container destroy", "health_status: healthy"} {
		if !strings.Contains(ev, want) {
			t.Errorf("no %q in events:\n%s", want, ev)
		}
	}
}

// The reviewer's cases: the wait for the next exit of a run that has
// not started yet, starts in quick succession, ports taken twice, an
// exec of a missing binary, cp into a volume and of a whiteout's name.
func TestExitsStartsPortsExecCopy(t *testing.T) {
	d := newDaemon(t)
	// Without --rm, the CLI waits for the next exit, which must be the
	// run it starts, however long that takes to start.
	for range 3 {
		if _, err := d.run("run", "--network", "none", "berth.test/busybox", "sh", "-c", "sleep 0.3; exit 3"); exitCode(err) != 3 {
			t.Fatalf("run of exit 3 (no --rm): %v", err)
		}
	}
	d.must("create", "--name", "again", "berth.test/busybox", "true")
	for i := range 20 {
		if out, err := d.run("start", "-a", "again"); err != nil {
			t.Fatalf("start %d: %v\n%s", i, err, out)
		}
	}
	d.must("run", "-d", "--name", "p1", "-p", "18181:8080", "berth.test/echoserver")
	_, stderr, err := d.runSplit("", "run", "-d", "--name", "p2", "-p", "18181:8080", "berth.test/echoserver")
	if err == nil || !strings.Contains(stderr, "already allocated") {
		t.Errorf("a host port published twice: %v %q", err, stderr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:18182")
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, err = d.runSplit("", "run", "--rm", "-p", "127.0.0.1:18182:8080", "berth.test/echoserver")
	l.Close()
	if err == nil || !strings.Contains(stderr, "already allocated") {
		t.Errorf("a host port a host process listens on: %v %q", err, stderr)
	}
	if _, err := get("http://127.0.0.1:18181/"); err != nil {
		t.Errorf("the first container's port stopped answering: %v", err)
	}
	_, stderr, err = d.runSplit("", "exec", "p1", "/no/such/binary")
	if exitCode(err) != 127 || !strings.Contains(stderr, "/no/such/binary") {
		t.Errorf("exec of a missing binary: exit %d, %q", exitCode(err), stderr)
	}
	d.must("run", "-d", "--name", "vol", "-v", "cpvol:/data", "berth.test/busybox", "sleep", "1000")
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, ".wh.keep"), []byte("not a whiteout\n"), 0o644)
	d.must("cp", filepath.Join(host, ".wh.keep"), "vol:/data/")
	if out := d.must("run", "--rm", "-v", "cpvol:/v", "berth.test/busybox", "cat", "/v/.wh.keep"); out != "not a whiteout" {
		t.Errorf("cp into a volume: %q", out)
	}
	d.must("rm", "-f", "p1", "vol", "again")
	d.must("volume", "rm", "cpvol")
	if left := d.leftovers(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// The docker CLI itself runs against the daemon (it half-closes its
// attach at once, which Berth's CLI does not).
func TestDockerCLI(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI")
	}
	d := newDaemon(t)
	docker := func(args ...string) (string, error) {
		cmd := exec.Command("docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.socket())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := docker("run", "--rm", "berth.test/busybox", "echo", "hi"); err != nil || out != "hi\n" {
		t.Errorf("docker run --rm echo: %v %q", err, out)
	}
	if _, err := docker("run", "berth.test/busybox", "sh", "-c", "sleep 0.2; exit 5"); exitCode(err) != 5 {
		t.Errorf("docker run of exit 5: %v", err)
	}
	if out, err := docker("run", "--rm", "berth.test/busybox", "/no/such"); exitCode(err) != 127 {
		t.Errorf("docker run --rm of a missing binary: %v %q", err, out)
	}
	eventually(t, 5*time.Second, "the --rm containers removed", func() bool {
		out, _ := docker("ps", "-a", "-q", "-f", "status=created")
		return strings.TrimSpace(out) == ""
	})
	d.must("run", "-d", "--name", "dx", "berth.test/busybox", "sleep", "1000")
	if out, err := docker("exec", "dx", "sh", "-c", "echo in; exit 2"); exitCode(err) != 2 || out != "in\n" {
		t.Errorf("docker exec: %v %q", err, out)
	}
	if out, err := docker("ps", "--format", "{{.Names}}"); err != nil || strings.TrimSpace(out) != "dx" {
		t.Errorf("docker ps: %v %q", err, out)
	}
}

// run -it under a real terminal (script(1) makes one): the container has
// a terminal of the size of ours, gets what is typed, and its exit code
// is berth's.
func TestInteractiveTerminal(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) to make a terminal with")
	}
	d := newDaemon(t)
	cmd := exec.Command("script", "-qec", "stty cols 100 rows 30; "+berthBin+" run -it --rm berth.test/busybox sh", "/dev/null")
	cmd.Env = append(os.Environ(), "BERTH_HOST=unix://"+d.socket())
	cmd.Stdin = strings.NewReader("echo $((6*7)); tty; stty size; exit 9\n")
	out, err := cmd.CombinedOutput()
	got := strings.ReplaceAll(string(out), "\r", "")
	if exitCode(err) != 9 {
		t.Errorf("exit: %v, output %q", err, got)
	}
	for _, want := range []string{"\n42\n", "/dev/pts/0\n", "30 100\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in %q", want, got)
		}
	}
}
