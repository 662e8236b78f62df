package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The full binary is every command, and runc's CLI when its name is
// berth-runc; the runtime-only build is runc's CLI whatever its name, with
// nothing else in it.
func TestBothBuildsDispatchAsDocumented(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "berth")
	lean := filepath.Join(dir, "lean", "berth-runc")
	for _, b := range []struct{ out, tags string }{{full, ""}, {lean, "berthrunc"}} {
		args := []string{"build", "-o", b.out}
		if b.tags != "" {
			args = append(args, "-tags", b.tags)
		}
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	link := filepath.Join(dir, "berth-runc")
	if err := os.Symlink("berth", link); err != nil {
		t.Fatal(err)
	}
	run := func(bin string, args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	for _, c := range []struct {
		bin   string
		args  []string
		want  string
		fails bool
	}{
		{full, []string{"image", "--help"}, "Manage the images", false},
		{full, []string{"runtime", "features"}, `"ociVersionMin"`, false},
		{link, []string{"features"}, `"ociVersionMin"`, false},
		{link, []string{"image", "ls"}, `unknown command "image"`, true},
		{lean, []string{"features"}, `"ociVersionMin"`, false},
		{lean, []string{"image", "ls"}, `unknown command "image"`, true},
		{lean, []string{"--version"}, "spec: ", false},
	} {
		out, err := run(c.bin, c.args...)
		if (err != nil) != c.fails || !strings.Contains(out, c.want) {
			t.Errorf("%s %s: %v\n%s\nwant %q", filepath.Base(c.bin), strings.Join(c.args, " "), err, out, c.want)
		}
	}
	st1, _ := os.Stat(full)
	st2, _ := os.Stat(lean)
	if st2.Size() >= st1.Size() {
		t.Errorf("the runtime-only build (%d bytes) is not smaller than the full one (%d)", st2.Size(), st1.Size())
	}
}
