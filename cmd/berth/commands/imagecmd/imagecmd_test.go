package imagecmd_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/fixture"
	"github.com/berth-dev/berth/internal/testimage"
	"sigs.k8s.io/yaml"
)

// These tests drive `berth image` as a user would, against a store of
// their own, and run what unpack makes with Berth's runtime.

var berthBin string

func TestMain(m *testing.M) {
	// They mount snapshots and run containers.
	os.Exit(fixture.RunAsRoot(m, "berth image", &berthBin))
}

type store struct {
	t    *testing.T
	root string
}

func newStore(t *testing.T) *store {
	return &store{t: t, root: t.TempDir()}
}

// berth runs a berth command on the store, with stdin, returning its
// output and error.
func (s *store) berth(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(berthBin, append([]string{"--root", s.root}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *store) must(args ...string) string {
	s.t.Helper()
	out, err := s.berth(nil, args...)
	if err != nil {
		s.t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func writeArchive(t *testing.T, img testimage.Image, format string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), format+".tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	switch format {
	case "docker-archive":
		err = img.WriteDockerArchive(f)
	default:
		err = img.WriteOCIArchive(f)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func busybox(t *testing.T) testimage.Image {
	t.Helper()
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// run unpacks an image into a bundle, runs it with the runtime, removes
// the bundle, and returns the container's output.
func (s *store) run(name string, opts []string, command ...string) string {
	s.t.Helper()
	bundle := filepath.Join(s.t.TempDir(), "bundle")
	args := append([]string{"image", "unpack"}, opts...)
	args = append(args, name, bundle)
	if len(command) > 0 {
		args = append(append(args, "--"), command...)
	}
	s.must(args...)
	id := fmt.Sprintf("img-cli-%d", os.Getpid())
	out, err := exec.Command(berthBin, "runtime", "--root", filepath.Join(s.root, "rt"), "run", "--bundle", bundle, id).CombinedOutput()
	exec.Command(berthBin, "runtime", "--root", filepath.Join(s.root, "rt"), "delete", "--force", id).Run()
	s.must("image", "unpack", "--remove", bundle)
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), bundle) {
		s.t.Fatalf("unpack --remove left a mount under %s", bundle)
	}
	if _, err := os.Stat(bundle); !os.IsNotExist(err) {
		s.t.Fatalf("unpack --remove left %s", bundle)
	}
	if err != nil {
		s.t.Fatalf("run: %v\n%s", err, out)
	}
	return string(out)
}

func TestLoadListInspectUnpackRunRemovePrune(t *testing.T) {
	s := newStore(t)
	img := busybox(t)
	img.Config.Env = append(img.Config.Env, "FROM_IMAGE=yes")
	img.Config.WorkingDir = "/tmp"
	out := s.must("image", "load", "-i", writeArchive(t, img, "docker-archive"))
	if !strings.Contains(out, "Loaded image: berth.test/busybox:latest") {
		t.Fatalf("load said %q", out)
	}

	table := s.must("image", "ls")
	if !strings.HasPrefix(table, "REPOSITORY") || !strings.Contains(table, "berth.test/busybox   latest") {
		t.Fatalf("ls table:\n%s", table)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(s.must("image", "ls", "-o", "json")), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("ls -o json: %v %v", rows, err)
	}
	if err := yaml.Unmarshal([]byte(s.must("image", "ls", "-o", "yaml")), &rows); err != nil || rows[0]["name"] != "berth.test/busybox:latest" {
		t.Fatalf("ls -o yaml: %v %v", rows, err)
	}
	id := strings.TrimSpace(s.must("image", "ls", "-q"))
	if len(id) != 12 {
		t.Fatalf("ls -q: %q", id)
	}
	var desc []struct {
		Name   string
		Config struct{ Config struct{ WorkingDir string } }
	}
	if err := json.Unmarshal([]byte(s.must("image", "inspect", id)), &desc); err != nil || desc[0].Config.Config.WorkingDir != "/tmp" {
		t.Fatalf("inspect by ID: %+v %v", desc, err)
	}

	got := s.run("berth.test/busybox", []string{"-u", "nobody", "-e", "EXTRA=1"}, "sh", "-c", `id -u; pwd; echo $FROM_IMAGE $EXTRA; grep -c . /etc/hosts`)
	if want := "65534\n/tmp\nyes 1\n"; !strings.HasPrefix(got, want) {
		t.Fatalf("container said %q, want it to start with %q", got, want)
	}

	s.must("image", "tag", "berth.test/busybox", "mine:1")
	if out, err := s.berth(nil, "image", "rm", id); err == nil || !strings.Contains(out, "2 names") {
		t.Fatalf("rm of an ID with two names: %v\n%s", err, out)
	}
	s.must("image", "rm", "mine:1", "berth.test/busybox")
	pruned := s.must("image", "prune")
	if !strings.Contains(pruned, "Total reclaimed space") || strings.Count(pruned, "deleted:") < 3 {
		t.Fatalf("prune:\n%s", pruned)
	}
	blobs, _ := filepath.Glob(filepath.Join(s.root, "content", "blobs", "*", "*"))
	snaps, _ := filepath.Glob(filepath.Join(s.root, "snapshots", "[0-9]*"))
	if len(blobs)+len(snaps) != 0 {
		t.Fatalf("left after prune: %v %v", blobs, snaps)
	}
}

func TestImportARootfsTarFromStdin(t *testing.T) {
	s := newStore(t)
	rootfs := t.TempDir()
	if err := fixture.BusyboxRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	tarball, err := exec.Command("tar", "-C", rootfs, "-czf", "-", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.berth(tarball, "image", "import", "--change", `CMD ["echo", "imported"]`, "-", "imported:1")
	if err != nil || !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if got := s.run("imported:1", nil); got != "imported\n" {
		t.Fatalf("ran %q", got)
	}
}

func TestBadInputGivesClearErrors(t *testing.T) {
	s := newStore(t)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "load", "-i", empty}, "archive"},
		{[]string{"image", "load", "-i", "/nonexistent.tar"}, "no such file"},
		{[]string{"image", "unpack", "nothere", filepath.Join(t.TempDir(), "b")}, "no such image"},
		{[]string{"image", "tag", "nothere", "x"}, "no such image"},
		{[]string{"image", "ls", "-o", "xml"}, "want table, json or yaml"},
		{[]string{"image", "import", empty, "BAD NAME"}, "invalid reference format"},
		{[]string{"image", "save", "-o", filepath.Join(t.TempDir(), "x.tar"), "--format", "zip", "x"}, "archive format"},
		{[]string{"--snapshotter", "zfs", "image", "ls"}, "snapshot driver"},
	} {
		out, err := s.berth(nil, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("berth %s: %v, want an error saying %q:\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
		if code := exitCode(err); code != 1 {
			t.Errorf("berth %s exited %d, want 1", strings.Join(c.args, " "), code)
		}
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// Berth's archives load and run in podman, and podman's in Berth.
func TestArchivesInterchangeWithPodman(t *testing.T) {
	p := fixture.NewPodman(t)
	s := newStore(t)
	s.must("image", "load", "-i", writeArchive(t, busybox(t), "oci-archive"))
	for _, format := range []string{"docker-archive", "oci-archive"} {
		out := filepath.Join(t.TempDir(), format+".tar")
		s.must("image", "save", "--format", format, "-o", out, "berth.test/busybox")
		loaded := p.Must("load", "-i", out)
		if !strings.Contains(loaded, "berth.test/busybox") {
			t.Fatalf("podman load of berth's %s: %q", format, loaded)
		}
		args := append([]string{"run", "--rm"}, fixture.PodmanRunArgs()...)
		got, code, err := p.Run(append(args, "berth.test/busybox:latest", "echo", "from podman")...)
		if code == 125 || code == 126 {
			t.Logf("podman cannot run containers here (%v); the load alone was checked", err)
		} else if err != nil || strings.TrimSpace(got) != "from podman" {
			t.Fatalf("podman run of berth's %s: %q %v", format, got, err)
		}
		p.Must("rmi", "berth.test/busybox:latest")
	}
	// And back: podman's archives of an image it has.
	for _, format := range []string{"docker-archive", "oci-archive"} {
		p.Must("load", "-i", writeArchive(t, busybox(t), "docker-archive"))
		out := filepath.Join(t.TempDir(), "podman-"+format+".tar")
		p.Must("save", "--format", format, "-o", out, "berth.test/busybox:latest")
		p.Must("rmi", "berth.test/busybox:latest")
		b := newStore(t)
		loaded := b.must("image", "load", "-i", out)
		if !strings.Contains(loaded, "Loaded image:") {
			t.Fatalf("berth load of podman's %s: %q", format, loaded)
		}
		name := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(loaded), "Loaded image:"))
		if got := b.run(name, nil, "echo", "from berth"); got != "from berth\n" {
			t.Fatalf("run of podman's %s (%s): %q", format, name, got)
		}
	}
}

// skopeo converts between the archive formats with containers/image, the
// library podman, CRI-O and buildah share: Berth's archives must read
// there, and skopeo's here.
func TestArchivesInterchangeWithSkopeo(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed (apt-get install skopeo)")
	}
	s := newStore(t)
	s.must("image", "load", "-i", writeArchive(t, busybox(t), "docker-archive"))
	dir := t.TempDir()
	for _, c := range []struct{ from, to string }{
		{"docker-archive", "oci-archive"},
		{"oci-archive", "docker-archive"},
	} {
		ours := filepath.Join(dir, "berth-"+c.from+".tar")
		s.must("image", "save", "--format", c.from, "-o", ours, "berth.test/busybox")
		theirs := filepath.Join(dir, "skopeo-"+c.to+".tar")
		dest := c.to + ":" + theirs
		if c.to == "docker-archive" {
			dest += ":berth.test/busybox:skopeo"
		} else {
			dest += ":skopeo"
		}
		src := c.from + ":" + ours
		if out, err := exec.Command(skopeo, "--insecure-policy", "copy", "--quiet", src, dest).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy %s %s: %v\n%s", src, dest, err, out)
		}
		b := newStore(t)
		loaded := b.must("image", "load", "-i", theirs)
		name := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(loaded), "Loaded image:"))
		if c.to == "docker-archive" && name != "berth.test/busybox:skopeo" {
			t.Fatalf("loaded %q", loaded)
		}
		// skopeo's oci-archive names its image by a tag alone, which
		// is no reference: Berth keeps it by digest.
		if got := b.run(name, nil, "echo", "via skopeo"); got != "via skopeo\n" {
			t.Fatalf("%s from skopeo (%s) ran: %q", c.to, name, got)
		}
	}
}

// unpack and --remove touch only bundles they made: never a user's
// directory, never a rootfs still in use; and a bundle is private.
func TestUnpackAndRemoveTouchOnlyTheirOwnBundle(t *testing.T) {
	s := newStore(t)
	img := busybox(t)
	img.RepoTags = []string{"vol:1"}
	img.Config.Volumes = map[string]struct{}{"/": {}}
	s.must("image", "load", "-i", writeArchive(t, busybox(t), "docker-archive"))
	s.must("image", "load", "-i", writeArchive(t, img, "docker-archive"))

	user := t.TempDir()
	precious := filepath.Join(user, "volumes", "project", "data")
	os.MkdirAll(filepath.Dir(precious), 0o755)
	os.WriteFile(precious, []byte("mine"), 0o644)
	os.Mkdir(filepath.Join(user, "rootfs"), 0o755)
	if out, err := s.berth(nil, "image", "unpack", "--remove", user); err == nil || !strings.Contains(out, "not a bundle") {
		t.Fatalf("--remove of a user's directory: %v\n%s", err, out)
	}
	if out, err := s.berth(nil, "image", "unpack", "berth.test/busybox", user); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("unpack into a user's directory: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "mine" {
		t.Fatalf("the user's file: %q, %v", b, err)
	}

	// A failed unpack (a volume at /) leaves nothing.
	failed := filepath.Join(t.TempDir(), "b")
	if out, err := s.berth(nil, "image", "unpack", "vol:1", failed); err == nil || !strings.Contains(out, "absolute path other than /") {
		t.Fatalf("unpack of VOLUME /: %v\n%s", err, out)
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Fatalf("a failed unpack left %s", failed)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), failed) {
		t.Fatal("a failed unpack left a mount")
	}

	bundle := filepath.Join(t.TempDir(), "b")
	s.must("image", "unpack", "berth.test/busybox", bundle)
	if st, _ := os.Stat(bundle); st.Mode().Perm() != 0o700 {
		t.Fatalf("bundle is %v: others reach its rootfs", st.Mode())
	}
	if out, err := s.berth(nil, "image", "unpack", "berth.test/busybox", bundle); err == nil || !strings.Contains(out, "--remove") {
		t.Fatalf("unpacking twice: %v\n%s", err, out)
	}
	// A process with its working directory in the rootfs keeps it busy.
	busy := exec.Command("sleep", "60")
	busy.Dir = filepath.Join(bundle, "rootfs", "tmp")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	out, err := s.berth(nil, "image", "unpack", "--remove", bundle)
	busy.Process.Kill()
	busy.Wait()
	if err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("--remove of a busy rootfs: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(bundle, "rootfs", "bin", "sh")); err != nil {
		t.Fatalf("the busy bundle lost its rootfs: %v", err)
	}
	s.must("image", "unpack", "--remove", bundle)
	if _, err := os.Stat(bundle); !os.IsNotExist(err) {
		t.Fatalf("--remove left %s", bundle)
	}
}

// The real thing: Docker's own daemon (Debian's docker.io) loads and runs
// what berth image save writes, and Berth loads and runs what docker save
// writes.
func TestArchivesInterchangeWithDocker(t *testing.T) {
	d := fixture.NewDockerd(t)
	s := newStore(t)
	s.must("image", "load", "-i", writeArchive(t, busybox(t), "oci-archive"))
	out := filepath.Join(t.TempDir(), "berth.tar")
	s.must("image", "save", "-o", out, "berth.test/busybox")
	if loaded := d.Must("load", "-i", out); !strings.Contains(loaded, "Loaded image: berth.test/busybox:latest") {
		t.Fatalf("docker load said %q", loaded)
	}
	if got := d.Must("run", "--rm", "--network", "none", "berth.test/busybox", "echo", "from docker"); got != "from docker" {
		t.Fatalf("docker run: %q", got)
	}
	d.Must("tag", "berth.test/busybox", "example.com/from-docker:1")
	saved := filepath.Join(t.TempDir(), "docker.tar")
	d.Must("save", "-o", saved, "example.com/from-docker:1")
	b := newStore(t)
	if loaded := b.must("image", "load", "-i", saved); !strings.Contains(loaded, "Loaded image: example.com/from-docker:1") {
		t.Fatalf("berth load of docker save: %q", loaded)
	}
	if got := b.run("example.com/from-docker:1", nil, "echo", "from berth"); got != "from berth\n" {
		t.Fatalf("run of docker's image: %q", got)
	}
}
