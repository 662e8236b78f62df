package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1024": 1024, "64k": 64 << 10, "512M": 512 << 20, "1G": 1 << 30, "1GiB": 1 << 30, "1.5K": 1536, "2MB": 2 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "ten"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "large.tar")
	if err := run([]string{"-large", "256K", "-layers", "2", "-format", "docker-archive", "-o", archive}, io.Discard); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
	if !slices.Contains(names, "manifest.json") {
		t.Errorf("docker archive holds %q", names)
	}

	var out bytes.Buffer
	if err := run([]string{"-large", "64K", "-compression", "zstd", "-name", "x/y:z", "-o", filepath.Join(dir, "layout")}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "sha256:") {
		t.Errorf("printed %q", out.String())
	}
	index, err := os.ReadFile(filepath.Join(dir, "layout", "index.json"))
	if err != nil || !strings.Contains(string(index), `"x/y:z"`) {
		t.Errorf("index.json %s %v", index, err)
	}

	for _, args := range [][]string{
		{"-o", dir},
		{"-busybox", "-large", "1M", "-o", dir},
		{"-busybox"},
		{"-busybox", "-format", "tarball", "-o", filepath.Join(dir, "x")},
	} {
		if err := run(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed run left its output: %v", err)
	}
}
