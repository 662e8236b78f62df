package layer

import (
	"archive/tar"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// fuzzVictim is a directory at a fixed place outside every target, which
// seed layers name by absolute path (the sandboxes' paths are random, so
// fuzzed input cannot name them). It is made once and only read
// afterwards: fuzzing runs several processes at once.
var fuzzVictim = filepath.Join(os.TempDir(), "berth-layer-fuzz-victim")

func setupFuzzVictim(f *testing.F) {
	f.Helper()
	file := filepath.Join(fuzzVictim, "victim")
	if b, err := os.ReadFile(file); err == nil && string(b) == "victim" {
		return
	}
	if err := os.MkdirAll(fuzzVictim, 0o755); err != nil {
		f.Fatal(err)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte("victim"), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		f.Fatal(err)
	}
	// With -fuzz, worker processes check the victim until they are
	// stopped; it stays for the next run. A plain test run removes it.
	if v := flag.Lookup("test.fuzz"); v == nil || v.Value.String() == "" {
		f.Cleanup(func() { os.RemoveAll(fuzzVictim) })
	}
}

func fuzzSeeds(f *testing.F) [][]byte {
	v := fuzzVictim
	seeds := [][]entry{
		{directory("./"), directory("etc"), reg("etc/passwd", "root:x:0:0"), sym("bin", "usr/bin"), reg("usr/bin/sh", "#!"),
			hard("usr/bin/bash", "usr/bin/sh"), node("dev/null", tar.TypeChar, 1, 3), node("run/fifo", tar.TypeFifo, 0, 0),
			whiteout("etc/shadow"), opaque("var"), reg("var/x", "x").with(func(h *tar.Header) {
				h.Format = tar.FormatPAX
				h.PAXRecords = map[string]string{"SCHILY.xattr.user.a": "b", "SCHILY.xattr.security.capability": capNetBindService()}
			})},
		{reg("../sentinel", "pwned"), reg("a/../../sentinel", "pwned")},
		{reg(v+"/victim", "pwned"), directory(v)},
		{sym("a", "/"), reg("a"+v+"/victim", "pwned"), hostile(directory("a" + v))},
		{sym("a", v), reg("a/victim", "pwned"), hostile(directory("a")), reg("a/new", "pwned")},
		{sym("up", "../../.."), reg("up/sentinel", "pwned"), reg("up/"+rel(v)+"/victim", "pwned")},
		{sym("s", v+"/victim"), hostile(reg("s", "pwned")), sym("r", "../sentinel"), hostile(node("r", tar.TypeFifo, 0, 0))},
		{hard("h", v+"/victim"), hard("h2", "../sentinel"), sym("a", "/"), hard("h3", "a"+v+"/victim")},
		{whiteout("lower-abs/sentinel"), whiteout("lower-victim/victim"), opaque("lower-rel"), opaque("lower-victim"),
			sym("a", v), whiteout("a/victim"), opaque("a"), reg(".wh...", ""), reg("../.wh.sentinel", "")},
		{reg("lower-abs/sentinel", "pwned"), reg("lower-victim/victim", "pwned"), hostile(directory("lower-rel/victim")), hard("h", "lower-file")},
	}
	var out [][]byte
	for _, s := range seeds {
		out = append(out, layerTar(f, s...))
	}
	return out
}

// fuzzOnce applies data in both modes, over lower layers whose symlinks
// point out, and fails if anything outside the target changed.
func fuzzOnce(t *testing.T, data []byte, compressed bool) {
	for _, overlay := range []bool{false, true} {
		s := newSandbox(t)
		if !overlay {
			lowerLinks(t, s)
			if err := os.Symlink(fuzzVictim, filepath.Join(s.dir, "lower-victim")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(s.dir, "lower-dir/file"), "lower")
		}
		before := snapshot(t, s.dir, s.parent, s.outside, fuzzVictim)
		o := Options{Overlay: overlay, MaxBytes: 1 << 20, MaxEntries: 200}
		if compressed {
			ApplyCompressed(s.dir, bytes.NewReader(data), o)
		} else {
			Apply(s.dir, bytes.NewReader(data), o)
		}
		sameOutside(t, before, snapshot(t, s.dir, s.parent, s.outside, fuzzVictim))
	}
}

// FuzzApply feeds arbitrary bytes to Apply, in both modes. Run it with a
// short minimization budget, or the fuzzer spends up to a minute shrinking
// each new input without reporting progress:
//
//	go test -run XXX -fuzz '^FuzzApply$' -fuzzminimizetime 10x ./image/layer/
func FuzzApply(f *testing.F) {
	setupFuzzVictim(f)
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzOnce(t, data, false) })
}

// FuzzApplyCompressed is FuzzApply through Decompress, from gzip and zstd
// seeds.
func FuzzApplyCompressed(f *testing.F) {
	setupFuzzVictim(f)
	for i, s := range fuzzSeeds(f) {
		f.Add(compress(f, []Compression{Gzip, Zstd}[i%2], s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzOnce(t, data, true) })
}
