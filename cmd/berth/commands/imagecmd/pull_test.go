package imagecmd_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// skopeoPush copies the busybox test image into a registry.
func skopeoPush(t *testing.T, dest string) {
	t.Helper()
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed: it pushes the test image")
	}
	archive := writeArchive(t, busybox(t), "oci-archive")
	out, err := exec.Command(skopeo, "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
		"oci-archive:"+archive, "docker://"+dest).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
}

// Berth pulls from and pushes to Debian's docker-registry (distribution
// 2.8) and its own registry server, the first content pushed there by
// skopeo; the images run.
func TestPullFromDistributionAndFromBerthsRegistry(t *testing.T) {
	registries := map[string]func(t *testing.T) string{
		"docker-registry": func(t *testing.T) string {
			bin, err := exec.LookPath("docker-registry")
			if err != nil {
				t.Skip("docker-registry is not installed (apt-get install docker-registry)")
			}
			addr := freeAddr(t)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.yml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o644)
			start(t, exec.Command(bin, "serve", cfg))
			waitFor(t, addr)
			return addr
		},
		"berth registry": func(t *testing.T) string {
			cmd := exec.Command(berthBin, "registry", "serve", "--addr", "127.0.0.1:0", "--root", t.TempDir())
			stderr, _ := cmd.StderrPipe()
			start(t, cmd)
			line, _ := bufio.NewReader(stderr).ReadString('\n')
			addr := strings.TrimSuffix(strings.TrimPrefix(strings.Fields(line + " x x x")[2], "http://"), ",")
			waitFor(t, addr)
			return addr
		},
	}
	for name, run := range registries {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			addr := run(t)
			skopeoPush(t, addr+"/lib/busybox:1")
			s := newStore(t)
			out := s.must("pull", addr+"/lib/busybox:1")
			if !strings.Contains(out, "Downloaded newer image") {
				t.Fatalf("pull said:\n%s", out)
			}
			if out := s.must("pull", addr+"/lib/busybox:1"); !strings.Contains(out, "up to date") {
				t.Fatalf("second pull said:\n%s", out)
			}
			if got := s.run(addr+"/lib/busybox:1", nil, "echo", "pulled"); got != "pulled\n" {
				t.Fatalf("ran %q", got)
			}
			// And back: Berth pushes, mounting every blob from the
			// repository it pulled them from (distribution 2.x mounts
			// only with `from`), a fresh store pulls and runs it.
			if out := s.must("push", addr+"/lib/busybox:1", addr+"/copies/busybox:2"); !strings.Contains(out, "Pushed: 0 uploaded, 2 mounted") {
				t.Fatalf("push said:\n%s", out)
			}
			// skopeo reads what Berth pushed (from Berth's registry, too).
			copied := filepath.Join(t.TempDir(), "copied.tar")
			if out, err := exec.Command("skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
				"docker://"+addr+"/copies/busybox:2", "oci-archive:"+copied+":busybox").CombinedOutput(); err != nil {
				t.Fatalf("skopeo copy from the registry: %v\n%s", err, out)
			}
			newStore(t).must("image", "load", "-i", copied)
			b := newStore(t)
			b.must("pull", addr+"/copies/busybox:2")
			if got := b.run(addr+"/copies/busybox:2", nil, "echo", "pushed"); got != "pushed\n" {
				t.Fatalf("ran %q", got)
			}
		})
	}
}

// berth login checks the password against the registry and keeps it in
// Docker's config.json, where pull and push find it.
func TestLoginThenPullAndPushWithCredentials(t *testing.T) {
	htpasswd, err := exec.LookPath("htpasswd")
	if err != nil {
		t.Skip("htpasswd (apache2-utils) is needed to make the user file")
	}
	dir := t.TempDir()
	users := filepath.Join(dir, "htpasswd")
	if out, err := exec.Command(htpasswd, "-Bbc", users, "alice", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("htpasswd: %v\n%s", err, out)
	}
	cmd := exec.Command(berthBin, "registry", "serve", "--addr", "127.0.0.1:0", "--root", filepath.Join(dir, "reg"), "--htpasswd", users)
	stderr, _ := cmd.StderrPipe()
	start(t, cmd)
	line, _ := bufio.NewReader(stderr).ReadString('\n')
	addr := strings.TrimSuffix(strings.TrimPrefix(strings.Fields(line + " x x x")[2], "http://"), ",")
	waitFor(t, addr)
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker"))

	s := newStore(t)
	s.must("image", "load", "-i", writeArchive(t, busybox(t), "docker-archive"))
	if out, err := s.berth(nil, "push", "berth.test/busybox", addr+"/lib/bb:1"); err == nil || !strings.Contains(out, "login") {
		t.Fatalf("push without credentials: %v\n%s", err, out)
	}
	if out, err := s.berth([]byte("wrong\n"), "login", "-u", "alice", "--password-stdin", addr); err == nil {
		t.Fatalf("login with a wrong password succeeded:\n%s", out)
	}
	if out, err := s.berth([]byte("s3cret\n"), "login", "-u", "alice", "--password-stdin", addr); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("login: %v\n%s", err, out)
	}
	if st, err := os.Stat(filepath.Join(dir, "docker", "config.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config.json: %v %v", st, err)
	}
	s.must("push", "berth.test/busybox", addr+"/lib/bb:1")
	b := newStore(t)
	b.must("pull", addr+"/lib/bb:1")
	b.must("logout", addr)
	if out, err := newStore(t).berth(nil, "pull", addr+"/lib/bb:1"); err == nil {
		t.Fatalf("pull after logout succeeded:\n%s", out)
	}
}
