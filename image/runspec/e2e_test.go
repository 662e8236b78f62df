package runspec

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/fixture"
	"github.com/berth-dev/berth/runtime/caps"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupParent holds the test containers' cgroups, apart from those of
// other packages' tests, which may run at the same time.
const cgroupParent = "berth-runspec-test"

// TestRunWithBerth runs generated specs with Berth's runtime and checks,
// from inside, that the container got what the spec promised.
func TestRunWithBerth(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: running a container with berth's runtime needs root")
	}
	bin, err := fixture.BuildBerth(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	t.Cleanup(func() {
		if err := fixture.RemoveCgroups(cgroupParent); err != nil {
			t.Errorf("cgroups left behind: %v", err)
		}
	})
	outDir := t.TempDir()
	berth := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"runtime", "--root", state}, args...)...)
		// A file, not a pipe, as the runtime's own tests do: whatever
		// the container leaves behind holding it cannot hang the test.
		out, err := os.CreateTemp(outDir, "out")
		if err != nil {
			return "", err
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		err = cmd.Run()
		b, _ := os.ReadFile(out.Name())
		return string(b), err
	}
	// run generates a spec for img into a new busybox bundle, lets edit
	// change it, runs it and returns the container's output.
	run := func(t *testing.T, img ocispec.Image, o Options, edit func(*specs.Spec)) string {
		t.Helper()
		bundle := t.TempDir()
		rootfs := filepath.Join(bundle, "rootfs")
		if err := fixture.BusyboxRootfs(rootfs); err != nil {
			t.Fatal(err)
		}
		o.Rootfs, o.RootfsDir = "rootfs", rootfs
		spec, err := Generate(img, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := EtcFiles(spec, filepath.Join(bundle, "etc")); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("runspec-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), os.Getpid())
		spec.Linux.CgroupsPath = "/" + cgroupParent + "/" + id
		if edit != nil {
			edit(spec)
		}
		data, err := json.MarshalIndent(spec, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { berth("delete", "--force", id) })
		out, err := berth("run", "--bundle", bundle, id)
		if err != nil {
			t.Fatalf("berth runtime run: %v\n%s", err, out)
		}
		return out
	}
	// field returns the value of "Name:" in /proc/self/status output.
	field := func(t *testing.T, out, name string) string {
		t.Helper()
		for l := range strings.Lines(out) {
			if v, ok := strings.CutPrefix(l, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("no %s in the output:\n%s", name, out)
		return ""
	}

	t.Run("default", func(t *testing.T) {
		img := ocispec.Image{Config: ocispec.ImageConfig{
			User:       "nobody",
			Env:        []string{"PATH=/bin", "FOO=from-image"},
			WorkingDir: "/srv/app",
			Cmd: []string{"sh", "-c", `id -u; id -G; pwd; echo $FOO; cat /etc/hostname; ` +
				`grep -E "^(Seccomp|CapEff|CapBnd):" /proc/self/status; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; ` +
				`wc -c < /proc/interrupts`},
		}}
		out := run(t, img, Options{Env: []string{"FOO=bar"}, Hostname: "runspec-box"}, nil)
		l := strings.Split(out, "\n")
		if len(l) < 10 {
			t.Fatalf("output:\n%s", out)
		}
		want := []string{"65534", "65534", "/srv/app", "bar", "runspec-box"}
		if !slices.Equal(l[:5], want) {
			t.Fatalf("uid, groups, cwd, $FOO, hostname: %q, want %q\n%s", l[:5], want, out)
		}
		// Docker's default profile, in filter mode.
		if v := field(t, out, "Seccomp"); v != "2" {
			t.Errorf("Seccomp: %s, want 2 (filter)", v)
		}
		// As in Docker: nobody has no capabilities; the bounding set is
		// Docker's 14.
		if v := field(t, out, "CapEff"); v != "0000000000000000" {
			t.Errorf("CapEff: %s, want none for a user other than root", v)
		}
		if v := field(t, out, "CapBnd"); v != fmt.Sprintf("%016x", dockerCapBnd) {
			t.Errorf("CapBnd: %s, want Docker's %016x", v, dockerCapBnd)
		}
		if strings.TrimSpace(l[8]) != "0" {
			t.Errorf("ip_unprivileged_port_start %q, want 0", l[8])
		}
		// Masked: reads as empty (Docker added it for GHSA-6fw5-f8r9-fgfm).
		if strings.TrimSpace(l[9]) != "0" {
			t.Errorf("/proc/interrupts gave %s bytes, want it masked", l[9])
		}
	})

	t.Run("privileged", func(t *testing.T) {
		img := ocispec.Image{Config: ocispec.ImageConfig{Env: []string{"PATH=/bin"}, Cmd: []string{"true"}}}
		var dev specs.LinuxDevice
		probe := func(s *specs.Spec) {
			// A host device the runtime would not make by itself.
			for _, d := range s.Linux.Devices {
				if !slices.Contains([]string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}, d.Path) {
					dev = d
					break
				}
			}
			if dev.Path == "" {
				t.Skip("the host has no device beyond the defaults to look for")
			}
			s.Process.Args = []string{"sh", "-c", `grep -E "^(Seccomp|CapEff):" /proc/self/status; ` +
				`stat -c "%F %t:%T" ` + dev.Path + `; grep " /sys sysfs " /proc/mounts`}
		}
		out := run(t, img, Options{Privileged: true, Hostname: "runspec-priv"}, probe)
		if v := field(t, out, "Seccomp"); v != "0" {
			t.Errorf("Seccomp: %s, want 0 (none)", v)
		}
		// Every capability there is to give: this process's bounding set.
		all := caps.Mask(caps.Bounding())
		if v := field(t, out, "CapEff"); v != fmt.Sprintf("%016x", all) {
			t.Errorf("CapEff: %s, want every capability, %016x", v, all)
		}
		kind := "character special file"
		if dev.Type == "b" {
			kind = "block special file"
		}
		want := kind + " " + strconv.FormatInt(dev.Major, 16) + ":" + strconv.FormatInt(dev.Minor, 16)
		if !strings.Contains(out, want) {
			t.Errorf("host device %s: want %q in\n%s", dev.Path, want, out)
		}
		if !strings.Contains(out, " /sys sysfs rw,") {
			t.Errorf("/sys is not read-write:\n%s", out)
		}
	})
}
