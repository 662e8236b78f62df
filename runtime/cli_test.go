package runtime_test

import (
	"encoding/json"
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

func TestRunForwardsSignalsToTheContainer(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", `trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.05; done`)
	cmd := e.cmd("run", "--bundle", b.write(t), e.id())
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container to be ready", func() bool { return strings.Contains(out.String(), "ready") })
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 || !strings.Contains(out.String(), "got TERM") {
		t.Fatalf("err %v, output %q", err, out.String())
	}
}

// openPty returns a new terminal pair of the host's.
func openPty(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY)
	if errno != 0 {
		t.Fatal(errno)
	}
	return master, os.NewFile(r, "pty")
}

// run in the foreground on a terminal relays it: the container gets a
// terminal of its own, and what it writes reaches ours.
func TestRunRelaysATerminal(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "tty; read line; echo you said $line; exit 3")
	b.spec.Process.Terminal = true
	master, slave := openPty(t)
	defer master.Close()
	cmd := e.cmd("run", "--bundle", b.write(t), e.id())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var out syncBuffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 1024)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return // EIO once the last holder of the terminal is gone
			}
		}
	}()
	waitFor(t, "the container's tty", func() bool { return strings.Contains(out.String(), "/dev/pts/") })
	master.Write([]byte("hello\r"))
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Fatalf("exit: %v (output %q)", err, out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("run did not finish; output %q", out.String())
	}
	// All the output is in once the terminal has hung up.
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatalf("the terminal stayed open; output %q", out.String())
	}
	if !strings.Contains(out.String(), "you said hello") {
		t.Fatalf("output %q", out.String())
	}
}

func TestSeccompKillAction(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("mkdir", "/tmp/x")
	b.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActKillProcess}},
	}
	if _, code := e.run(b); code != 128+int(syscall.SIGSYS) {
		t.Fatalf("exit %d, want %d (killed by SIGSYS)", code, 128+int(syscall.SIGSYS))
	}
}

func TestDevicesCgroupDeniesUnlistedDevices(t *testing.T) {
	cases := map[string]*specs.LinuxResources{
		"deny-all rule": {Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
		// A config with no device rules at all gets no device beyond
		// the defaults: a new cgroup would otherwise allow every one.
		"no rules": nil,
	}
	for name, res := range cases {
		t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
			e := newEnv(t)
			// /dev/kmsg's numbers, which no default rule allows.
			b := e.bundle("sh", "-c", "(exec 3</dev/mykmsg) && echo opened; cat /dev/null && echo null-ok")
			b.spec.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/mykmsg", Type: "c", Major: 1, Minor: 11}}
			b.spec.Linux.Resources = res
			out, _ := e.run(b)
			if strings.Contains(out, "opened") || !strings.Contains(out, "not permitted") || !strings.Contains(out, "null-ok") {
				t.Fatalf("output: %s", out)
			}
		})
	}
}

func TestUmaskIsApplied(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "umask")
	m := uint32(0o077)
	b.spec.Process.User.Umask = &m
	if out, _ := e.run(b); strings.TrimSpace(out) != "0077" {
		t.Fatalf("umask %q", out)
	}
}

// containerd's shim reads runc's JSON log for the last "error" entry.
func TestErrorsGoToTheJSONLog(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	b.spec.Process.Cwd = "relative"
	log := filepath.Join(t.TempDir(), "log.json")
	out, err := e.berth("--log", log, "--log-format", "json", "create", "--bundle", b.write(t), e.id())
	if err == nil {
		t.Fatalf("create succeeded: %s", out)
	}
	data, _ := os.ReadFile(log)
	var entry struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &entry); err != nil {
		t.Fatalf("log %q: %v", data, err)
	}
	if entry.Level != "error" || !strings.Contains(entry.Msg, "process.cwd") {
		t.Fatalf("log entry %+v", entry)
	}
}

func TestSystemdCgroupPathsAreExplained(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	b.spec.Linux.CgroupsPath = "system.slice:berth:test"
	for _, global := range [][]string{nil, {"--systemd-cgroup"}} {
		args := append(append([]string{}, global...), "create", "--bundle", b.write(t), e.id())
		out, err := e.berth(args...)
		if err == nil || !strings.Contains(out, "systemd") || !strings.Contains(out, "cgroupsPath") {
			t.Fatalf("%v: err %v: %s", global, err, out)
		}
	}
	if left := e.must("list", "-q"); strings.TrimSpace(left) != "" {
		t.Fatalf("left: %s", left)
	}
}

func TestSpecRootless(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	if out, err := e.berth("spec", "--rootless", "--bundle", dir); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var spec specs.Spec
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	var user, net bool
	for _, ns := range spec.Linux.Namespaces {
		user = user || ns.Type == specs.UserNamespace
		net = net || ns.Type == specs.NetworkNamespace
	}
	if !user || net || len(spec.Linux.UIDMappings) != 1 || spec.Linux.Resources != nil {
		t.Fatalf("rootless spec: %+v", spec.Linux)
	}
}
