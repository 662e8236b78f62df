package image_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func readJSON[T any](t *testing.T, path string) T {
	t.Helper()
	var v T
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replaceBlob swaps the layout's manifest blob at old for b and points
// index.json at it.
func replaceBlob(t *testing.T, dir, old string, b []byte) {
	t.Helper()
	d := digest.FromBytes(b)
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(old)
	idxPath := filepath.Join(dir, "index.json")
	idx := readJSON[ocispec.Index](t, idxPath)
	idx.Manifests[0].Digest, idx.Manifests[0].Size = d, int64(len(b))
	if err := os.WriteFile(idxPath, mustJSON(t, idx), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rewriteManifest(t *testing.T, dir, old string, m ocispec.Manifest) {
	t.Helper()
	replaceBlob(t, dir, old, mustJSON(t, m))
}

// tarDir is a root file system tar of dir, as a user would make one for
// import.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	out, err := exec.Command("tar", "-C", dir, "--numeric-owner", "-cf", "-", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
