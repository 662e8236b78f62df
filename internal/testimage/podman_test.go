package testimage_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/fixture"
	"github.com/berth-dev/berth/internal/testimage"
	"golang.org/x/sys/unix"
)

// podman runs a podman whose images, containers and temporary files all
// live under one test directory.
type podman struct {
	t    *testing.T
	bin  string
	args []string
	env  []string
}

func newPodman(t *testing.T) *podman {
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed: the interoperability check needs it")
	}
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	p := &podman{
		t:   t,
		bin: bin,
		args: []string{
			"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"),
			"--tmpdir", filepath.Join(dir, "libpod"), "--storage-driver", "vfs",
			"--cgroup-manager", "cgroupfs", "--events-backend", "file",
		},
		// Image copies stage in TMPDIR, /var/tmp otherwise.
		env: append(os.Environ(), "TMPDIR="+tmp),
	}
	// crun refuses hybrid cgroup hierarchies; runc copes with them.
	if _, err := exec.LookPath("runc"); err == nil {
		p.args = append(p.args, "--runtime", "runc")
	}
	cgroupsBefore := libpodCgroupExists()
	_, cacheErr := os.Stat("/var/lib/containers")
	t.Cleanup(func() {
		p.run("rm", "--all", "--force", "--time", "0")
		unmountUnder(t, dir)
		if !cgroupsBefore {
			if err := fixture.RemoveCgroups("libpod_parent"); err != nil {
				t.Logf("cgroups podman left: %v", err)
			}
		}
		// As root, podman keeps a blob-info cache in /var/lib/containers
		// whatever --root says; remove it when this test made it.
		if errors.Is(cacheErr, os.ErrNotExist) {
			os.RemoveAll("/var/lib/containers")
		}
	})
	return p
}

func (p *podman) run(args ...string) (string, int, error) {
	cmd := exec.Command(p.bin, append(slices.Clone(p.args), args...)...)
	cmd.Env = p.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		err = fmt.Errorf("podman %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), code, err
}

func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, _, err := p.run(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func libpodCgroupExists() bool {
	matches, _ := filepath.Glob("/sys/fs/cgroup/*/libpod_parent")
	if _, err := os.Stat("/sys/fs/cgroup/libpod_parent"); err == nil {
		return true
	}
	return len(matches) > 0
}

// unmountUnder detaches whatever podman left mounted below dir (a
// container's /dev/shm, say), deepest first, so the directory can go.
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	slices.Sort(points)
	slices.Reverse(points)
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}

// runArgs are what "podman run" needs in a sandbox: no network setup, and
// small rlimits. Podman's defaults are above the hard limits of some
// sandboxes (and here even the current hard limit of nproc was refused
// inside runc), while lowering a limit is always allowed.
func runArgs() []string {
	args := []string{"--pull", "never", "--network", "none"}
	for _, rl := range []struct {
		name string
		res  int
	}{{"nofile", unix.RLIMIT_NOFILE}, {"nproc", unix.RLIMIT_NPROC}} {
		n := uint64(1024)
		var lim unix.Rlimit
		if err := unix.Getrlimit(rl.res, &lim); err == nil {
			n = min(n, lim.Cur)
		}
		args = append(args, "--ulimit", fmt.Sprintf("%s=%d:%d", rl.name, n, n))
	}
	return args
}

// TestPodman loads every archive format into podman and runs the images:
// an outside implementation agreeing that the files are valid images.
func TestPodman(t *testing.T) {
	p := newPodman(t)
	bb, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	echo, err := testimage.EchoServer()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[*testimage.Image]string{}
	for _, img := range []*testimage.Image{&bb, &echo} {
		dir := t.TempDir()
		if _, err := img.WriteOCILayout(dir); err != nil {
			t.Fatal(err)
		}
		ids[img] = readLayout(t, dir)[0].manifest.Config.Digest.Encoded()
	}

	dir := t.TempDir()
	type load struct {
		format string
		img    *testimage.Image
		name   string
		write  func(testimage.Image, *os.File) error
	}
	loads := []load{
		{"docker-archive", &bb, "berth.test/busybox-docker:latest", func(i testimage.Image, f *os.File) error { return i.WriteDockerArchive(f) }},
		{"oci-archive", &bb, "berth.test/busybox-oci:latest", func(i testimage.Image, f *os.File) error { return i.WriteOCIArchive(f) }},
		{"docker-archive-oci", &echo, "berth.test/echoserver:latest", func(i testimage.Image, f *os.File) error { return i.WriteDockerArchiveOCI(f) }},
	}
	for _, l := range loads {
		img := *l.img
		img.Name, img.RepoTags = l.name, []string{l.name}
		file := filepath.Join(dir, l.format+".tar")
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(l.write(img, f), f.Close()); err != nil {
			t.Fatal(err)
		}
		out := p.must("load", "--input", file)
		if !strings.Contains(out, "Loaded image: "+l.name) && !strings.Contains(out, "Loaded image(s): "+l.name) {
			t.Errorf("%s: podman load said %q", l.format, out)
		}
		// Podman's image ID is the config digest: it read our config
		// and its digest agrees with ours.
		if id := p.must("image", "inspect", "--format", "{{.Id}}", l.name); id != ids[l.img] {
			t.Errorf("%s: podman's image ID %s, config digest %s", l.format, id, ids[l.img])
		}
	}
	t.Log("podman loaded the docker-archive, the oci-archive and the Docker 25 docker-archive")

	base := append([]string{"run", "--rm"}, runArgs()...)
	out, code, err := p.run(append(base, "berth.test/busybox-docker:latest", "true")...)
	if code == 125 || code == 126 {
		t.Skipf("podman loaded every format, but cannot run containers on this machine: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	out = p.must(append(base, "--user", "nobody", "berth.test/busybox-oci:latest", "sh", "-c", "id -un; ls -ld /tmp")...)
	if !strings.HasPrefix(out, "nobody\ndrwxrwxrwt") {
		t.Errorf("busybox from the oci-archive says %q", out)
	}

	// The echoserver: up, healthy through busybox wget, exit 0 on stop.
	id := p.must(append(append([]string{"run", "--detach", "--no-healthcheck"}, runArgs()...), "berth.test/echoserver:latest")...)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.must("logs", id), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("the echoserver did not start: %s", p.must("logs", id))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := p.must("exec", id, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/healthz"); got != "ok" {
		t.Errorf("/healthz in the container: %q", got)
	}
	p.must("stop", "--time", "10", id)
	if code := p.must("inspect", "--format", "{{.State.ExitCode}}", id); code != "0" {
		t.Errorf("echoserver exited %s on SIGTERM; logs:\n%s", code, p.must("logs", id))
	}
	p.must("rm", id)
	t.Log("podman ran busybox from both archive kinds and the echoserver")
}
