package content

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func desc(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func TestCommittedBlobReadsBackVerified(t *testing.T) {
	s := newStore(t)
	data := []byte("hello, blob")
	if err := s.WriteBlob("ref", bytes.NewReader(data), desc(data)); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadBlob(digest.FromBytes(data), 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q, %v", got, err)
	}
	if refs, _ := s.Ingests(); len(refs) != 0 {
		t.Fatalf("ingests left after commit: %v", refs)
	}
}

func TestCommitRefusesWrongDigestOrSizeAndKeepsNothing(t *testing.T) {
	s := newStore(t)
	data := []byte("the real content")
	wrong := desc([]byte("something else"))
	wrong.Size = int64(len(data))
	err := s.WriteBlob("ref", bytes.NewReader(data), wrong)
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("wrong digest: got %v, want ErrDigest", err)
	}
	d := desc(data)
	d.Size++
	if err := s.WriteBlob("ref", bytes.NewReader(data), d); !errors.Is(err, ErrSize) {
		t.Fatalf("short blob: got %v, want ErrSize", err)
	}
	d.Size -= 2
	if err := s.WriteBlob("ref", bytes.NewReader(data), d); !errors.Is(err, ErrSize) {
		t.Fatalf("long blob: got %v, want ErrSize", err)
	}
	if s.Has(wrong.Digest) || s.Has(d.Digest) {
		t.Fatal("a blob that failed its checks was committed")
	}
	if refs, _ := s.Ingests(); len(refs) != 0 {
		t.Fatalf("failed ingests left behind: %v", refs)
	}
	// And a retry with the right description succeeds.
	if err := s.WriteBlob("ref", bytes.NewReader(data), desc(data)); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptBlobOnDiskFailsItsRead(t *testing.T) {
	s := newStore(t)
	data := []byte(strings.Repeat("layer data ", 1000))
	d := desc(data)
	if err := s.WriteBlob("ref", bytes.NewReader(data), d); err != nil {
		t.Fatal(err)
	}
	p, _ := s.blobPath(d.Digest)
	os.Chmod(p, 0o600)
	corrupt := bytes.Clone(data)
	corrupt[500] ^= 1
	if err := os.WriteFile(p, corrupt, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBlob(d.Digest, 1<<20); !errors.Is(err, ErrDigest) {
		t.Fatalf("ReadBlob of a corrupt blob: %v, want ErrDigest", err)
	}
	r, err := s.Open(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, ErrDigest) {
		t.Fatalf("streaming read of a corrupt blob: %v, want ErrDigest", err)
	}
	if err := s.Verify(d.Digest); !errors.Is(err, ErrDigest) {
		t.Fatalf("Verify: %v", err)
	}
}

func TestIngestResumesWhereItStopped(t *testing.T) {
	s := newStore(t)
	data := []byte(strings.Repeat("0123456789", 10000))
	d := desc(data)
	w, err := s.Writer("pull-layer", d.Digest, d.Size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:33333]); err != nil {
		t.Fatal(err)
	}
	w.Close() // the connection broke

	w, err = s.Writer("pull-layer", d.Digest, d.Size)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 33333 {
		t.Fatalf("resumed at %d, want 33333", w.Offset())
	}
	if _, err := w.Write(data[w.Offset():]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(d.Size, d.Digest); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(d.Digest); err != nil {
		t.Fatal(err)
	}
}

func TestWriterForPresentBlobSaysExists(t *testing.T) {
	s := newStore(t)
	data := []byte("x")
	if err := s.WriteBlob("a", bytes.NewReader(data), desc(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer("b", digest.FromBytes(data), 1); !errors.Is(err, ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
}

func TestConcurrentWritersOfOneDigestAllSucceed(t *testing.T) {
	s := newStore(t)
	data := bytes.Repeat([]byte("concurrent"), 50000)
	d := desc(data)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half share one ref (they take turns), half have their own.
			ref := "shared"
			if i%2 == 1 {
				ref = "own-" + string(rune('a'+i))
			}
			errs <- s.WriteBlob(ref, bytes.NewReader(data), d)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Verify(d.Digest); err != nil {
		t.Fatal(err)
	}
	if refs, _ := s.Ingests(); len(refs) != 0 {
		t.Fatalf("ingests left: %v", refs)
	}
}

func TestWritersOfOneRefWithoutDigestTakeTurns(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Writer("same", "", 0)
			if err != nil {
				errs <- err
				return
			}
			if w.Offset() != 0 {
				w.Truncate(0)
			}
			body := []byte(strings.Repeat(string(rune('a'+i)), 1000))
			w.Write(body)
			_, err = w.Commit(0, "")
			if errors.Is(err, ErrExists) {
				err = nil
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	s.Walk(func(Info) error { n++; return nil })
	if n != 8 {
		t.Fatalf("%d blobs, want 8", n)
	}
}

func TestWalkAndDelete(t *testing.T) {
	s := newStore(t)
	var want []digest.Digest
	for _, b := range []string{"a", "b", "c"} {
		if err := s.WriteBlob(b, strings.NewReader(b), desc([]byte(b))); err != nil {
			t.Fatal(err)
		}
		want = append(want, digest.FromString(b))
	}
	seen := map[digest.Digest]bool{}
	if err := s.Walk(func(i Info) error { seen[i.Digest] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, d := range want {
		if !seen[d] {
			t.Fatalf("Walk missed %s", d)
		}
	}
	if err := s.Delete(want[0]); err != nil {
		t.Fatal(err)
	}
	if s.Has(want[0]) {
		t.Fatal("deleted blob still there")
	}
	if err := s.Delete(want[0]); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, err := s.Open(want[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open deleted: %v", err)
	}
}

func TestAbandonedIngestsAreRemovedButHeldOnesStay(t *testing.T) {
	s := newStore(t)
	held, err := s.Writer("held", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Abort()
	left, err := s.Writer("left", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	left.Write([]byte("partial"))
	left.Close()
	n, err := s.RemoveAbandoned()
	if err != nil || n != 1 {
		t.Fatalf("removed %d, %v; want 1", n, err)
	}
	refs, _ := s.Ingests()
	if len(refs) != 1 || refs[0] != "held" {
		t.Fatalf("ingests after: %v", refs)
	}
}

func TestBadDigestsAreRefused(t *testing.T) {
	s := newStore(t)
	for _, d := range []digest.Digest{"", "sha256:../../etc/passwd", "md5:abc", "sha256:xyz"} {
		if _, err := s.Open(d); err == nil {
			t.Errorf("Open(%q) succeeded", d)
		}
		if d != "" {
			if _, err := s.Writer("r", d, 0); err == nil {
				t.Errorf("Writer(%q) succeeded", d)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(s.root, "..", "etc")); err == nil {
		t.Fatal("something was made outside the store")
	}
}
