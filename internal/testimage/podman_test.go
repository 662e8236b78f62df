package testimage_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/fixture"
	"github.com/berth-dev/berth/internal/testimage"
)

// TestPodman loads every archive format into podman and runs the images:
// an outside implementation agreeing that the files are valid images.
func TestPodman(t *testing.T) {
	p := fixture.NewPodman(t)
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
		out := p.Must("load", "--input", file)
		if !strings.Contains(out, "Loaded image: "+l.name) && !strings.Contains(out, "Loaded image(s): "+l.name) {
			t.Errorf("%s: podman load said %q", l.format, out)
		}
		// Podman's image ID is the config digest: it read our config
		// and its digest agrees with ours.
		if id := p.Must("image", "inspect", "--format", "{{.Id}}", l.name); id != ids[l.img] {
			t.Errorf("%s: podman's image ID %s, config digest %s", l.format, id, ids[l.img])
		}
	}
	t.Log("podman loaded the docker-archive, the oci-archive and the Docker 25 docker-archive")

	base := append([]string{"run", "--rm"}, fixture.PodmanRunArgs()...)
	out, code, err := p.Run(append(base, "berth.test/busybox-docker:latest", "true")...)
	if code == 125 || code == 126 {
		t.Skipf("podman loaded every format, but cannot run containers on this machine: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	out = p.Must(append(base, "--user", "nobody", "berth.test/busybox-oci:latest", "sh", "-c", "id -un; ls -ld /tmp")...)
	if !strings.HasPrefix(out, "nobody\ndrwxrwxrwt") {
		t.Errorf("busybox from the oci-archive says %q", out)
	}

	// The echoserver: up, healthy through busybox wget, exit 0 on stop.
	id := p.Must(append(append([]string{"run", "--detach", "--no-healthcheck"}, fixture.PodmanRunArgs()...), "berth.test/echoserver:latest")...)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.Must("logs", id), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("the echoserver did not start: %s", p.Must("logs", id))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := p.Must("exec", id, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/healthz"); got != "ok" {
		t.Errorf("/healthz in the container: %q", got)
	}
	p.Must("stop", "--time", "10", id)
	if code := p.Must("inspect", "--format", "{{.State.ExitCode}}", id); code != "0" {
		t.Errorf("echoserver exited %s on SIGTERM; logs:\n%s", code, p.Must("logs", id))
	}
	p.Must("rm", id)
	t.Log("podman ran busybox from both archive kinds and the echoserver")
}
