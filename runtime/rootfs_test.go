package runtime_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestBindMountsReadWriteAndReadOnly(t *testing.T) {
	e := newEnv(t)
	rw, ro := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(ro, "f"), []byte("from host"), 0o644)
	b := e.bundle("sh", "-c", "echo written > /rw/out; cat /ro/f; echo x > /ro/g && echo ro-writable")
	b.spec.Mounts = append(b.spec.Mounts,
		specs.Mount{Destination: "/rw", Type: "bind", Source: rw, Options: []string{"rbind", "rw"}},
		specs.Mount{Destination: "/ro", Type: "bind", Source: ro, Options: []string{"bind", "ro"}},
	)
	out, _ := e.run(b)
	if !strings.Contains(out, "from host") || strings.Contains(out, "ro-writable") {
		t.Fatalf("output: %s", out)
	}
	if data, _ := os.ReadFile(filepath.Join(rw, "out")); string(data) != "written\n" {
		t.Fatalf("rw mount: host sees %q", data)
	}
}

func TestBindMountOfAFileCreatesTheTarget(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(src, []byte("10.0.0.1 berth\n"), 0o644)
	b := e.bundle("cat", "/etc/new/dir/hosts")
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/etc/new/dir/hosts", Type: "bind", Source: src, Options: []string{"bind", "ro"}})
	if out, code := e.run(b); code != 0 || !strings.Contains(out, "10.0.0.1 berth") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestRelativeBindSourceIsRelativeToTheBundle(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("cat", "/data/file")
	os.MkdirAll(filepath.Join(b.dir, "data"), 0o755)
	os.WriteFile(filepath.Join(b.dir, "data", "file"), []byte("bundle data"), 0o644)
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "data", Options: []string{"bind"}})
	if out, _ := e.run(b); !strings.Contains(out, "bundle data") {
		t.Fatalf("output %q", out)
	}
}

func TestTmpfsOptionsAreApplied(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "grep ' /scratch ' /proc/mounts")
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "size=1m", "mode=700"}})
	out, _ := e.run(b)
	for _, want := range []string{"tmpfs", "nosuid", "nodev", "noexec", "size=1024k", "mode=700"} {
		if !strings.Contains(out, want) {
			t.Fatalf("mount line %q lacks %s", out, want)
		}
	}
}

func TestReadonlyRootRefusesWrites(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "touch /newfile && echo wrote; touch /dev/shm/ok && echo tmpfs-ok")
	b.spec.Root.Readonly = true
	out, _ := e.run(b)
	if strings.Contains(out, "wrote") || !strings.Contains(out, "tmpfs-ok") {
		t.Fatalf("output: %s", out)
	}
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	e := newEnv(t)
	// /proc/sys/fs is never empty: masked, it must be.
	if ents, _ := os.ReadDir("/proc/sys/fs"); len(ents) == 0 {
		t.Fatal("/proc/sys/fs is empty on the host")
	}
	b := e.bundle("sh", "-c", "wc -c < /proc/timer_list; ls /proc/sys/fs | wc -l; echo 1 > /proc/sys/kernel/domainname && echo sys-writable; echo done")
	b.spec.Linux.MaskedPaths = []string{"/proc/timer_list", "/proc/sys/fs", "/proc/does-not-exist"}
	b.spec.Linux.ReadonlyPaths = []string{"/proc/sys"}
	out, code := e.run(b)
	lines := strings.Fields(out)
	if code != 0 || len(lines) < 3 || lines[0] != "0" || lines[1] != "0" || strings.Contains(out, "sys-writable") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// A mount destination that goes through a symlink in the image resolves
// inside the root filesystem, never on the host: an absolute or relative
// link out of the root lands on the same path below the root.
func TestMountDestinationSymlinksStayInsideTheRoot(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	b := e.bundle("sh", "-c", "cat /escape/marker; cat /up/marker")
	os.Symlink(host, filepath.Join(b.rootfs, "escape"))
	os.MkdirAll(filepath.Join(b.rootfs, host), 0o755)
	hostB := t.TempDir()
	os.Symlink("../../../../../../../../../"+hostB, filepath.Join(b.rootfs, "up"))
	os.MkdirAll(filepath.Join(b.rootfs, hostB), 0o755)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "marker"), []byte("mounted\n"), 0o644)
	b.spec.Mounts = append(b.spec.Mounts,
		specs.Mount{Destination: "/escape", Type: "bind", Source: src, Options: []string{"bind"}},
		specs.Mount{Destination: "/up/sub", Type: "bind", Source: src, Options: []string{"bind"}},
		specs.Mount{Destination: "/../../../../tmp/dotdot", Type: "tmpfs", Source: "tmpfs"},
	)
	b.spec.Process.Args = []string{"sh", "-c", "cat /escape/marker; cat /up/sub/marker"}
	out, code := e.run(b)
	if code != 0 || strings.Count(out, "mounted") != 2 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, h := range []string{host, hostB} {
		if ents, _ := os.ReadDir(h); len(ents) != 0 {
			t.Fatalf("mount landed on the host: %v", ents)
		}
	}
	if _, err := os.Stat(filepath.Join(b.rootfs, hostB, "sub")); err != nil {
		t.Fatalf("/up/sub was not made inside the root: %v", err)
	}
	if _, err := os.Stat("/tmp/dotdot"); err == nil {
		t.Fatal("a '..' destination created /tmp/dotdot on the host")
	}
	if _, err := os.Stat(filepath.Join(b.rootfs, "tmp", "dotdot")); err != nil {
		t.Fatalf("'..' destination was not resolved inside the root: %v", err)
	}
}

// Through a link whose target is missing inside the root, nothing is made
// anywhere: the create fails and names the mount.
func TestMountThroughADanglingSymlinkFailsWithoutWritingOnTheHost(t *testing.T) {
	e := newEnv(t)
	host := filepath.Join(t.TempDir(), "target")
	b := e.bundle("true")
	os.Symlink(host, filepath.Join(b.rootfs, "escape"))
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/escape/deeper", Type: "tmpfs", Source: "tmpfs"})
	out, err := e.berth("run", "--bundle", b.write(t), e.id())
	if err == nil || !strings.Contains(out, "/escape/deeper") {
		t.Fatalf("err %v: %s", err, out)
	}
	if _, err := os.Stat(host); err == nil {
		t.Fatal("the link's host target was created")
	}
}

func TestMountsOverProcAreRefused(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("true")
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/proc/self/attr", Type: "tmpfs", Source: "tmpfs"})
	out, err := e.berth("run", "--bundle", b.write(t), e.id())
	if err == nil || !strings.Contains(out, "mounts[") || !strings.Contains(out, "/proc/self/attr") {
		t.Fatalf("err %v: %s", err, out)
	}
	// A symlink in the image steering a destination into /proc is caught
	// after resolution too.
	b2 := e.bundle("true")
	os.Symlink("/proc/sys", filepath.Join(b2.rootfs, "sneaky"))
	b2.spec.Mounts = append(b2.spec.Mounts, specs.Mount{Destination: "/sneaky/kernel", Type: "tmpfs", Source: "tmpfs"})
	out, err = e.berth("run", "--bundle", b2.write(t), e.id())
	if err == nil || !strings.Contains(out, "/proc") {
		t.Fatalf("err %v: %s", err, out)
	}
}

func TestDevicesAreCreated(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/mydevice; readlink /dev/ptmx; readlink /dev/fd")
	mode := os.FileMode(0o600)
	b.spec.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/mydevice", Type: "c", Major: 1, Minor: 3, FileMode: &mode}}
	out, code := e.run(b)
	if code != 0 || !strings.Contains(out, "crw-------") || !strings.Contains(out, "pts/ptmx") || !strings.Contains(out, "/proc/self/fd") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// With --no-pivot the root is moved over / and entered by chroot, which
// only changes the caller's root: the container's program must still run
// in the container's, not the host's.
func TestNoPivotMovesTheRoot(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "cat /marker; ls /proc/1/root/")
	if err := os.WriteFile(filepath.Join(b.rootfs, "marker"), []byte("in-the-container\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := e.berth("run", "--no-pivot", "--bundle", b.write(t), e.id())
	if err != nil || !strings.Contains(out, "in-the-container") || !strings.Contains(out, "marker") {
		t.Fatalf("err %v: %s", err, out)
	}
}

func TestRootfsPropagationShared(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("grep", "-E", "^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / ", "/proc/self/mountinfo")
	b.spec.Linux.RootfsPropagation = "shared"
	out, code := e.run(b)
	if code != 0 || !strings.Contains(out, "shared:") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestTmpcopyupKeepsTheDirectorysContents(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sh", "-c", "cat /etc/passwd | head -1; grep ' /etc ' /proc/mounts")
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/etc", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup"}})
	out, code := e.run(b)
	if code != 0 || !strings.HasPrefix(out, "root:x:0:0") || !strings.Contains(out, "tmpfs /etc") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestCgroupMountShowsControllers(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("ls", "/sys/fs/cgroup")
	out, _ := e.run(b)
	if !strings.Contains(out, "memory") && !strings.Contains(out, "cgroup.procs") {
		t.Fatalf("cgroup mount: %s", out)
	}
}

// Without a mount namespace the container shares the host's: its mounts
// are made there, under its root, and delete takes them all away again.
func TestContainerWithoutAMountNamespace(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sleep", "1000")
	withoutNamespace(b.spec, specs.MountNamespace)
	b.spec.Root.Readonly = true
	if err := os.WriteFile(filepath.Join(b.rootfs, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	id := e.runningContainer(b)
	// The init itself runs in the container's root, as exec does.
	if root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", e.state(id).Pid)); err != nil || root != b.rootfs {
		t.Fatalf("the init's root is %q (%v), not %s", root, err, b.rootfs)
	}
	out := e.must("exec", id, "sh", "-c", "ls /bin/busybox /marker; touch /x || echo read-only")
	if !strings.Contains(out, "/bin/busybox") || !strings.Contains(out, "/marker") || !strings.Contains(out, "read-only") {
		t.Fatalf("exec: %s", out)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if !strings.Contains(string(mi), b.rootfs+"/proc") {
		t.Fatalf("no host-visible mounts for a container in the host's mount namespace")
	}
	// access(2) reports EROFS for a read-only mount.
	if err := syscall.Access("/", 2); err != nil {
		t.Fatalf("the host's root is no longer writable: %v", err)
	}
	e.must("delete", "--force", id)
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), b.rootfs) {
		t.Fatalf("mounts left on the host after delete:\n%s", mi)
	}
}

// A root that is a mount of its own on the host (an image's overlay, as
// containerd mounts it) stays mounted after delete of a container without
// a mount namespace: delete takes away only what the runtime mounted.
func TestDeleteKeepsTheHostsMountOfTheRoot(t *testing.T) {
	e := newEnv(t)
	b := e.bundle("sleep", "1000")
	withoutNamespace(b.spec, specs.MountNamespace)
	if err := syscall.Mount(b.rootfs, b.rootfs, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(b.rootfs, syscall.MNT_DETACH)
	id := e.runningContainer(b)
	e.must("delete", "--force", id)
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if n := strings.Count(string(mi), " "+b.rootfs+" "); n != 1 {
		t.Fatalf("%d mounts at the root after delete, want the host's 1:\n%s", n, mi)
	}
	if strings.Contains(string(mi), b.rootfs+"/") {
		t.Fatalf("mounts under the root left after delete:\n%s", mi)
	}
}
