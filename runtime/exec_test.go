package runtime_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime/console"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runningContainer starts a long-lived container and returns its ID.
func (e *env) runningContainer(b *bundle) string {
	e.t.Helper()
	id := e.id()
	e.must("run", "-d", "--bundle", b.write(e.t), id)
	return id
}

func TestExecJoinsEveryNamespaceAndTheCgroup(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sleep", "1000")
	b.spec.Hostname = "exechost"
	b.spec.Linux.CgroupsPath = "/berth-test/" + e.id()
	id := e.runningContainer(b)
	init := e.state(id).Pid

	out := e.must("exec", id, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; for n in mnt net pid ipc uts cgroup; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "exechost" || !strings.HasPrefix(lines[1], "sleep 1000") {
		t.Fatalf("exec output:\n%s", out)
	}
	for i, ns := range []string{"mnt", "net", "pid", "ipc", "uts", "cgroup"} {
		want, _ := os.Readlink("/proc/" + strconv.Itoa(init) + "/ns/" + ns)
		if lines[2+i] != want {
			t.Errorf("exec'd process in %s %s, container in %s", ns, lines[2+i], want)
		}
	}
	// Inside the cgroup namespace both see their cgroup as the root.
	for _, l := range lines[8:] {
		if !strings.HasSuffix(l, ":/") {
			t.Errorf("exec'd process outside the container's cgroup: %s", l)
		}
	}
}

func TestExecReturnsTheProcessExitCode(t *testing.T) {
	e := newEnv(t)
	id := e.runningContainer(e.bundle("sleep", "1000"))
	_, err := e.berth("exec", id, "sh", "-c", "exit 42")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 42 {
		t.Fatalf("exec exit: %v", err)
	}
}

func TestExecWithUserEnvCwdAndProcessFile(t *testing.T) {
	e := newEnv(t)
	id := e.runningContainer(e.bundle("sleep", "1000"))
	out := e.must("exec", "--user", "1000:1001", "--env", "FOO=bar", "--cwd", "/tmp", id, "sh", "-c", "id -u; id -g; echo $FOO; pwd")
	if got := strings.Fields(out); strings.Join(got, " ") != "1000 1001 bar /tmp" {
		t.Fatalf("exec output %q", out)
	}
	p := specs.Process{Args: []string{"sh", "-c", "echo from process file $X"}, Env: []string{"X=y", "PATH=/bin"}, Cwd: "/"}
	data, _ := json.Marshal(p)
	file := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(file, data, 0o644)
	if out := e.must("exec", "--process", file, id); strings.TrimSpace(out) != "from process file y" {
		t.Fatalf("process file: %q", out)
	}
}

func TestExecDetachedWritesThePidFile(t *testing.T) {
	e := newEnv(t)
	id := e.runningContainer(e.bundle("sleep", "1000"))
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	e.must("exec", "-d", "--pid-file", pidFile, id, "sleep", "999")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	cmdline, _ := os.ReadFile("/proc/" + string(data) + "/cmdline")
	if !strings.HasPrefix(string(cmdline), "sleep\x00999") {
		t.Fatalf("pid file %s names %q", data, cmdline)
	}
	if pids := e.pids(id); len(pids) != 2 {
		t.Fatalf("ps: %v", pids)
	}
}

func TestExecOfAMissingProgramFailsClearly(t *testing.T) {
	e := newEnv(t)
	id := e.runningContainer(e.bundle("sleep", "1000"))
	out, err := e.berth("exec", id, "no-such-program")
	if err == nil || !strings.Contains(out, "no-such-program") || !strings.Contains(out, "not found") {
		t.Fatalf("err %v: %s", err, out)
	}
	out, err = e.berth("exec", "no-such-container", "true")
	if err == nil || !strings.Contains(out, "does not exist") {
		t.Fatalf("err %v: %s", err, out)
	}
}

// consoleServer listens on a unix socket and receives one terminal master,
// as containerd's shim and conmon do.
func consoleServer(t *testing.T) (string, <-chan *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *os.File, 1)
	go func() {
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		f, _ := c.(*net.UnixConn).File()
		c.Close()
		master, err := console.RecvFd(f)
		f.Close()
		if err != nil {
			close(ch)
			return
		}
		// A non-blocking copy, so that the reads below honour deadlines.
		fd, _ := syscall.Dup(int(master.Fd()))
		master.Close()
		syscall.SetNonblock(fd, true)
		ch <- os.NewFile(uintptr(fd), "master")
	}()
	return path, ch
}

func readUntil(t *testing.T, f *os.File, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 1024)
	f.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(string(got), want) {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read terminal: %v (got %q)", err, got)
		}
	}
	return string(got)
}

func TestTerminalIsSentToTheConsoleSocket(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "tty; stty size; test -c /dev/console && echo has-console; sleep 1000")
	b.spec.Process.Terminal = true
	b.spec.Process.ConsoleSize = &specs.Box{Height: 33, Width: 99}
	sock, ch := consoleServer(t)
	id := e.id()
	e.must("create", "--console-socket", sock, "--bundle", b.write(t), id)
	master := <-ch
	if master == nil {
		t.Fatal("no terminal received")
	}
	defer master.Close()
	e.must("start", id)
	out := readUntil(t, master, "has-console")
	if !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "33 99") {
		t.Fatalf("terminal output %q", out)
	}

	// exec -t gets a terminal of its own the same way.
	sock2, ch2 := consoleServer(t)
	e.must("exec", "-d", "-t", "--console-socket", sock2, id, "sh", "-c", "tty; sleep 1000")
	m2 := <-ch2
	if m2 == nil {
		t.Fatal("no exec terminal received")
	}
	defer m2.Close()
	if out := readUntil(t, m2, "/dev/pts/"); strings.Contains(out, "/dev/pts/0") {
		t.Fatalf("exec got the init's terminal: %q", out)
	}
}

func TestTerminalWithoutAConsoleSocketIsRefused(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	b.spec.Process.Terminal = true
	out, err := e.berth("create", "--bundle", b.write(t), e.id())
	if err == nil || !strings.Contains(out, "console-socket") {
		t.Fatalf("err %v: %s", err, out)
	}
}
