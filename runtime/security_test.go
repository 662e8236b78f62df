package runtime_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/berth-dev/berth/runtime/caps"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The container sees its standard descriptors only: nothing the runtime or
// its caller had open reaches it (the CVE-2024-21626 class).
func TestOnlyStandardDescriptorsReachTheContainer(t *testing.T) {
	e := newEnv(t)
	// Leak a descriptor to a host directory into the runtime, as a
	// careless caller would.
	dir, err := os.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	b := e.bundle("ls", "/proc/self/fd")
	cmd := e.cmd("run", "--bundle", b.write(t), e.id())
	cmd.ExtraFiles = []*os.File{dir, dir, dir}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// ls opens the directory it lists as descriptor 3.
	if got := strings.Join(strings.Fields(string(out)), " "); got != "0 1 2 3" {
		t.Fatalf("descriptors in the container: %q, want 0 1 2 3", got)
	}
}

func TestPreserveFDsPassesDescriptorsOn(t *testing.T) {
	e := newEnv(t)
	f, err := os.CreateTemp("", "preserved")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	f.WriteString("through fd 3\n")
	f.Seek(0, 0)
	b := e.bundle("sh", "-c", "cat <&3; ls /proc/self/fd | wc -l")
	cmd := e.cmd("run", "--preserve-fds", "1", "--bundle", b.write(t), e.id())
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "through fd 3") {
		t.Fatalf("%v: %s", err, out)
	}
}

// Asking for more descriptors than the caller passed must not hand the
// container what the runtime itself has open at those numbers.
func TestPreserveFDsRefusesTheRuntimesOwnDescriptors(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("ls", "-l", "/proc/self/fd")
	out, err := e.berth("run", "--preserve-fds", "5", "--bundle", b.write(t), e.id())
	if err == nil || !strings.Contains(out, "--preserve-fds 5") {
		t.Fatalf("err %v: %s", err, out)
	}
}

// The runtime's descriptors are marked close-on-exec before any filter is
// in place, so a profile that refuses close_range and fcntl cannot keep
// them open into the program.
func TestSeccompCannotKeepTheRuntimesDescriptorsOpen(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "echo /proc/self/fd/*")
	eperm := uint(syscall.EPERM)
	for _, nnp := range []bool{true, false} {
		b.spec.Process.NoNewPrivileges = nnp
		b.spec.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"close_range", "fcntl"}, Action: specs.ActErrno, ErrnoRet: &eperm}},
		}
		out, code := e.run(b)
		// The shell's glob holds one more: the directory it reads.
		if code != 0 || strings.TrimSpace(out) != "/proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2 /proc/self/fd/3" {
			t.Fatalf("noNewPrivileges %v: exit %d: %s", nnp, code, out)
		}
	}
}

func TestWorkingDirectoryIsInsideTheRoot(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "pwd; readlink /proc/self/cwd; ls ..")
	b.spec.Process.Cwd = "/work/dir"
	out, code := e.run(b)
	lines := strings.Split(out, "\n")
	if code != 0 || lines[0] != "/work/dir" || lines[1] != "/work/dir" {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// The runtime binary must not be writable through /proc/PID/exe of a
// container process (CVE-2019-5736): a process in the container holds the
// init's exe open while the init is still Berth, waits until the init has
// exec'd (so the binary is no longer busy), and then tries to write it.
func TestRuntimeBinaryCannotBeOverwrittenFromInside(t *testing.T) {
	e := newEnv(t)
	before := hashFile(t, berthBin)
	b := e.bundle("sleep", "1000")
	// A privileged container: every capability the host allows, so that
	// the process may open the init's exe at all.
	all := caps.Bounding()
	b.spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	id := e.id()
	e.must("create", "--bundle", b.write(t), id)
	attack := `exec 3</proc/1/exe; touch /tmp/opened; while [ ! -e /tmp/go ]; do sleep 0.05; done; { echo pwned >> /proc/self/fd/3; } 2>/tmp/err; echo $? > /tmp/rc.new; mv /tmp/rc.new /tmp/rc`
	e.must("exec", "-d", id, "sh", "-c", attack)
	waitFor(t, "the init's exe to be held open", func() bool {
		_, err := os.Stat(filepath.Join(b.rootfs, "tmp", "opened"))
		return err == nil
	})
	e.must("start", id)
	os.WriteFile(filepath.Join(b.rootfs, "tmp", "go"), nil, 0o644)
	waitFor(t, "the attack to finish", func() bool {
		_, err := os.Stat(filepath.Join(b.rootfs, "tmp", "rc"))
		return err == nil
	})
	rc, _ := os.ReadFile(filepath.Join(b.rootfs, "tmp", "rc"))
	msg, _ := os.ReadFile(filepath.Join(b.rootfs, "tmp", "err"))
	if strings.TrimSpace(string(rc)) == "0" {
		t.Fatalf("the runtime binary was opened for writing from the container")
	}
	if !strings.Contains(string(msg), "Read-only") {
		t.Fatalf("write refused for another reason than a read-only mount: %s", msg)
	}
	if hashFile(t, berthBin) != before {
		t.Fatal("the runtime binary changed")
	}
}

func hashFile(t *testing.T, p string) [32]byte {
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

func TestCapabilitiesAreTheConfiguredSets(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("grep", "Cap", "/proc/self/status")
	b.spec.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"},
		Effective:   []string{"CAP_CHOWN", "CAP_KILL"},
		Permitted:   []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"},
		Inheritable: []string{"CAP_NET_RAW"},
		Ambient:     []string{"CAP_NET_RAW"},
	}
	out, code := e.run(b)
	// CHOWN=0, KILL=5, NET_RAW=13.
	for _, want := range []string{"CapInh:\t0000000000002000", "CapPrm:\t0000000000002021", "CapEff:\t0000000000002021", "CapBnd:\t0000000000002021", "CapAmb:\t0000000000002000"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, want %q in\n%s", code, want, out)
		}
	}
}

func TestNonRootUserLosesCapabilitiesUnlessAmbient(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "id; grep CapEff /proc/self/status")
	b.spec.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, 7}}
	out, code := e.run(b)
	if code != 0 || !strings.Contains(out, "uid=1000 gid=1000 groups=5,7") || !strings.Contains(out, "CapEff:\t0000000000000000") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestUnknownCapabilityIsAWarningNotAnError(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	b.spec.Process.Capabilities.Bounding = append(b.spec.Process.Capabilities.Bounding, "CAP_FROM_THE_FUTURE")
	out, code := e.run(b)
	if code != 0 || !strings.Contains(out, "CAP_FROM_THE_FUTURE") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestNoNewPrivilegesIsSet(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("grep", "NoNewPrivs", "/proc/self/status")
	if out, _ := e.run(b); !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Fatalf("output: %s", out)
	}
}

func TestSeccompProfileIsEnforced(t *testing.T) {
	e := newEnv(t)
	eacces := uint(syscall.EACCES)
	b := e.bundle("sh", "-c", "mkdir /tmp/denied; echo mkdir=$?; touch /tmp/ok && echo touch-ok")
	b.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eacces},
		},
	}
	out, code := e.run(b)
	if code != 0 || !strings.Contains(out, "Permission denied") || !strings.Contains(out, "mkdir=1") || !strings.Contains(out, "touch-ok") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(b.rootfs, "tmp", "denied")); err == nil {
		t.Fatal("mkdir went through")
	}
}

func TestSeccompWithoutNoNewPrivileges(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "mkdir /tmp/x; echo rc=$?")
	b.spec.Process.NoNewPrivileges = false
	b.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
	}
	if out, _ := e.run(b); !strings.Contains(out, "rc=1") {
		t.Fatalf("output: %s", out)
	}
}

func TestRlimitsAreSet(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("grep", "open files", "/proc/self/limits")
	b.spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 123, Hard: 456}}
	out, _ := e.run(b)
	if f := strings.Fields(out); len(f) < 5 || f[3] != "123" || f[4] != "456" {
		t.Fatalf("limits: %s", out)
	}
}

func TestNamespacedSysctlsAreSetAndHostOnesRefused(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmni")
	b.spec.Linux.ReadonlyPaths = nil
	b.spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
	if out, _ := e.run(b); strings.Fields(out)[0] != "1" || strings.Fields(out)[1] != "1234" {
		t.Fatalf("output: %s", out)
	}
	b.spec.Linux.Sysctl = map[string]string{"vm.swappiness": "1"}
	out, err := e.berth("run", "--bundle", b.write(t), e.id())
	if err == nil || !strings.Contains(out, "linux.sysctl[vm.swappiness]") {
		t.Fatalf("host sysctl accepted: %v %s", err, out)
	}
}

func TestOOMScoreAdjIsSet(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("cat", "/proc/self/oom_score_adj")
	adj := 500
	b.spec.Process.OOMScoreAdj = &adj
	if out, _ := e.run(b); strings.TrimSpace(out) != "500" {
		t.Fatalf("oom_score_adj %q", out)
	}
}

// Between create and start the init waits in the container: its working
// directory is already the container's, not the directory create was run
// from (which a process in the container could reach through /proc/1/cwd).
func TestWaitingInitHasNoHostWorkingDirectory(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	id := e.id()
	path := b.write(t)
	if out, err := e.berthIn(b.dir, "create", "--bundle", path, id); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", e.state(id).Pid))
	if err != nil || cwd != "/" {
		t.Fatalf("the waiting init's working directory is %q (%v)", cwd, err)
	}
}

// A seccomp profile with SCMP_ACT_NOTIFY sends its listener to an agent at
// listenerPath, a path on the host (the container cannot plant a socket
// there), with the container process state the spec describes. The agent
// here answers mkdir with a fake success.
func TestSeccompNotifyGoesToTheAgentOnTheHost(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type received struct {
		state specs.ContainerProcessState
		err   error
	}
	got := make(chan received, 1)
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			got <- received{err: err}
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 64<<10), make([]byte, 64)
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- received{err: err}
			return
		}
		var r received
		r.err = json.Unmarshal(buf[:n], &r.state)
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			got <- received{err: fmt.Errorf("%d control messages", len(msgs))}
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			got <- received{err: fmt.Errorf("no descriptor: %v", err)}
			return
		}
		got <- r
		answerNotifications(fds[0])
	}()
	b := e.bundle("sh", "-c", "mkdir /tmp/agent; echo rc=$?; test -d /tmp/agent && echo made || echo faked")
	b.spec.Annotations = map[string]string{"test": "notify"}
	b.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     sock,
		ListenerMetadata: "agent-metadata",
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
	out, code := e.run(b)
	var r received
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatalf("the agent heard nothing; container: exit %d: %s", code, out)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	st := r.state
	if st.Metadata != "agent-metadata" || len(st.Fds) != 1 || st.Fds[0] != specs.SeccompFdName ||
		st.Pid <= 0 || st.State.Pid != st.Pid || st.State.Annotations["test"] != "notify" || st.State.Bundle != b.dir {
		t.Fatalf("state sent to the agent: %+v", st)
	}
	if code != 0 || !strings.Contains(out, "rc=0") || !strings.Contains(out, "faked") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// answerNotifications makes every notified syscall return 0 without
// running it, until the filter's last user is gone.
func answerNotifications(fd int) {
	defer unix.Close(fd)
	for {
		// struct seccomp_notif: id, pid, flags, then seccomp_data (64 bytes).
		var req [80]byte
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
			if errno == unix.EINTR {
				continue
			}
			return
		}
		// struct seccomp_notif_resp: id, val, error, flags.
		var resp [24]byte
		copy(resp[:8], req[:8])
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp[0]))); errno != 0 && errno != unix.ENOENT {
			return
		}
	}
}

// The runtime reads the container's /etc/passwd (for HOME) as root on the
// host side: a FIFO or device node planted there must not be opened (a
// FIFO would hang the create; a device's open runs its driver on the
// host).
func TestPasswdThatIsNotAFileIsNotOpened(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "echo home=$HOME")
	passwd := filepath.Join(b.dir, "rootfs", "etc", "passwd")
	os.Remove(passwd)
	if err := unix.Mkfifo(passwd, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := e.cmd("run", "--bundle", b.write(t), e.id())
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("run hung on the FIFO at /etc/passwd")
	}
	if err != nil || !strings.Contains(string(out), "home=") {
		t.Fatalf("run: %v\n%s", err, out)
	}
}
