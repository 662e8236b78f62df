package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func withoutNamespace(s *specs.Spec, t specs.LinuxNamespaceType) {
	var ns []specs.LinuxNamespace
	for _, n := range s.Linux.Namespaces {
		if n.Type != t {
			ns = append(ns, n)
		}
	}
	s.Linux.Namespaces = ns
}

func setNamespace(s *specs.Spec, t specs.LinuxNamespaceType, path string) {
	withoutNamespace(s, t)
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
}

func TestNewNamespacesIsolateTheContainer(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", `echo pid=$$; hostname; cat /proc/sys/kernel/domainname; ls /sys/class/net; for n in ipc uts net mnt cgroup; do readlink /proc/self/ns/$n; done`)
	b.spec.Hostname = "boxhost"
	b.spec.Domainname = "boxdomain"
	out, code := e.run(b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "pid=1" || lines[1] != "boxhost" || lines[2] != "boxdomain" || lines[3] != "lo" {
		t.Fatalf("output:\n%s", out)
	}
	for i, ns := range []string{"ipc", "uts", "net", "mnt", "cgroup"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		if lines[4+i] == host {
			t.Errorf("%s namespace is the host's (%s)", ns, host)
		}
	}
}

// namedNetns makes a network namespace with `ip netns add`, removed after
// the test, and returns its path and inode number.
func (e *env) namedNetns() (string, uint64) {
	e.t.Helper()
	name := fmt.Sprintf("berthtest%d-%d", os.Getpid(), idSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		e.t.Fatalf("ip netns add: %v: %s", err, out)
	}
	e.t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	path := "/var/run/netns/" + name
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		e.t.Fatal(err)
	}
	return path, st.Ino
}

// withoutMounts drops the config's mounts of a filesystem type.
func withoutMounts(s *specs.Spec, fstype string) {
	var mounts []specs.Mount
	for _, m := range s.Mounts {
		if m.Type != fstype {
			mounts = append(mounts, m)
		}
	}
	s.Mounts = mounts
}

func TestJoiningANamespaceByPath(t *testing.T) {
	e := newEnv(t)
	path, ino := e.namedNetns()
	b := e.bundle("readlink", "/proc/self/ns/net")
	setNamespace(b.spec, specs.NetworkNamespace, path)
	out, code := e.run(b)
	if want := fmt.Sprintf("net:[%d]", ino); code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("exit %d, container in %q, want %s", code, out, want)
	}
}

func TestSharingTheHostsNetworkNamespace(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("readlink", "/proc/self/ns/net")
	withoutNamespace(b.spec, specs.NetworkNamespace)
	out, _ := e.run(b)
	host, _ := os.Readlink("/proc/self/ns/net")
	if strings.TrimSpace(out) != host {
		t.Fatalf("container net ns %q, host %q", out, host)
	}
}

// usernsBundle is a bundle whose root is host ID 100000 in a user namespace
// of its own.
func (e *env) usernsBundle(args ...string) *bundle {
	e.t.Helper()
	b := e.bundle(args...)
	b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	b.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	b.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	// The rootfs must be usable by the mapped root, and the way to it
	// open to it (test directories are 0700).
	if err := exec.Command("chown", "-R", "100000:100000", b.rootfs).Run(); err != nil {
		e.t.Fatal(err)
	}
	for d := b.dir; len(d) > len(os.TempDir()); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	// sysfs needs a network namespace owned by the user namespace; the
	// default config has one. cgroup mounts need care in a user namespace:
	// drop that mount.
	withoutMounts(b.spec, "cgroup")
	return b
}

func TestUserNamespaceMapsRootToAnUnprivilegedHostID(t *testing.T) {
	e := newEnv(t)
	b := e.usernsBundle("sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/owned; sleep 0.2")
	out, code := e.run(b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	f := strings.Fields(out)
	if len(f) < 4 || f[0] != "0" || f[1] != "0" || f[2] != "100000" || f[3] != "65536" {
		t.Fatalf("output: %q", out)
	}
	st, err := os.Stat(b.rootfs + "/tmp/owned")
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 100000 {
		t.Fatalf("file made by the container's root is owned by host uid %d, want 100000", uid)
	}
}

// A new user namespace and a network namespace given by path, which the
// host's user namespace owns: the join comes before the process leaves
// the host's user namespace, where it has the privilege to join.
func TestNewUserNamespaceWithAJoinedNetworkNamespace(t *testing.T) {
	e := newEnv(t)
	path, ino := e.namedNetns()
	b := e.usernsBundle("sh", "-c", "readlink /proc/self/ns/net; id -u")
	setNamespace(b.spec, specs.NetworkNamespace, path)
	// sysfs cannot be mounted from a user namespace that does not own
	// the network namespace.
	withoutMounts(b.spec, "sysfs")
	out, code := e.run(b)
	if want := fmt.Sprintf("net:[%d]\n0", ino); code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("exit %d: %q, want %q", code, out, want)
	}
}

func TestTimeNamespaceOffsetsTheMonotonicClock(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("cat", "/proc/uptime")
	b.spec.Linux.Namespaces = append(b.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
	b.spec.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 86400 * 365}}
	out, code := e.run(b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	up, err := strconv.ParseFloat(strings.Fields(out)[0], 64)
	if err != nil || up < 86400*365 {
		t.Fatalf("uptime %q inside a time namespace a year ahead", out)
	}
}

func TestCgroupNamespaceShowsTheContainersCgroupAsRoot(t *testing.T) {
	e := newEnv(t)
	cgPath := "/berth-test/" + e.id()
	b := e.bundle("sleep", "1000")
	b.spec.Linux.CgroupsPath = cgPath
	id := e.runningContainer(b)
	// From the host, the init is in the configured cgroup everywhere...
	host, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", e.state(id).Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(host)), "\n") {
		if !strings.HasSuffix(line, ":"+cgPath) {
			t.Fatalf("host view %q: not in %s", line, cgPath)
		}
	}
	// ...and from inside, that cgroup is the root.
	out := e.must("exec", id, "cat", "/proc/self/cgroup")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[2] != "/" {
			t.Fatalf("cgroup line %q: the container should see its cgroup as /", line)
		}
	}
}

func TestSharingTheHostsPIDNamespaceSeesHostProcesses(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "test -d /proc/"+strconv.Itoa(os.Getpid())+" && echo sees-host")
	withoutNamespace(b.spec, specs.PIDNamespace)
	if out, _ := e.run(b); !strings.Contains(out, "sees-host") {
		t.Fatalf("output %q", out)
	}
}
