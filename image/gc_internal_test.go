package image

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/image/snapshot"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestLeaseHolder is not a test: TestKilledWritersLeaveNothingThatSticks
// runs the test binary as a command that takes a lease, writes a blob and
// an unpack's snapshot under it, says so, and waits to be killed.
func TestLeaseHolder(t *testing.T) {
	root := os.Getenv("BERTH_TEST_LEASE_HOLDER")
	if root == "" {
		t.Skip("helper process only")
	}
	s, err := Open(root, Options{Snapshotter: snapshot.Copy})
	if err != nil {
		t.Fatal(err)
	}
	s.withLease(func(lease string) error {
		blob := []byte("written by a command that dies")
		d := digest.FromBytes(blob)
		if err := s.leaseContent(lease, d); err != nil {
			t.Fatal(err)
		}
		if err := s.Content.WriteBlob("holder", strings.NewReader(string(blob)), ocispec.Descriptor{Digest: d, Size: int64(len(blob))}); err != nil {
			t.Fatal(err)
		}
		key := extractKey(lease, d)
		if err := s.leaseSnapshot(lease, key); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Snapshots.Prepare(key, "", nil); err != nil {
			t.Fatal(err)
		}
		dir, _ := s.Snapshots.Dir(key)
		os.WriteFile(filepath.Join(dir, "half-unpacked"), []byte("x"), 0o644)
		os.Stdout.WriteString("ready\n")
		select {} // until killed
	})
}

func TestKilledWritersLeaveNothingThatSticks(t *testing.T) {
	root := t.TempDir()
	holder := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLeaseHolder$")
		cmd.Env = append(os.Environ(), "BERTH_TEST_LEASE_HOLDER="+root)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("holder said %q", line)
		}
		return cmd
	}
	s, err := Open(root, Options{Snapshotter: snapshot.Copy})
	if err != nil {
		t.Fatal(err)
	}
	count := func() (blobs, snaps int) {
		ents, _ := filepath.Glob(filepath.Join(root, "content/blobs/*/*"))
		all, _ := s.Snapshots.List()
		return len(ents), len(all)
	}

	// While its writer lives, a lease protects what it names.
	live := holder()
	if res, err := s.Prune(); err != nil || len(res.Blobs)+len(res.Snapshots) != 0 {
		t.Fatalf("prune with a live writer removed %+v (%v)", res, err)
	}
	if b, n := count(); b != 1 || n != 1 {
		t.Fatalf("%d blobs, %d snapshots while the writer lives", b, n)
	}
	// Killed, it protects nothing: its blob and half-made layer go.
	live.Process.Kill()
	live.Wait()
	res, err := s.Prune()
	if err != nil {
		t.Fatal(err)
	}
	if res.LeasesDone != 1 || len(res.Blobs) != 1 || len(res.Snapshots) != 1 {
		t.Fatalf("prune after the writer died: %+v", res)
	}
	if b, n := count(); b != 0 || n != 0 {
		t.Fatalf("%d blobs, %d snapshots left", b, n)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "snapshots")); len(ents) != 1 { // the driver file
		t.Fatalf("snapshot directories left: %v", ents)
	}
}
