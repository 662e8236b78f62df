package layer

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

func compress(t testing.TB, c Compression, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case Uncompressed:
		return data
	case Gzip:
		w = gzip.NewWriter(&buf)
	case Zstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// randomLayer is a layer whose content does not compress, so that the
// compressed stream is long and spans many blocks.
func randomLayer(t testing.TB) ([]byte, string) {
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	content := make([]byte, 3<<20)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	return layerTar(t, directory("d"), reg("d/big", string(content)), reg("d/small", "small")), string(content)
}

func TestCompressionString(t *testing.T) {
	for c, want := range map[Compression]string{Uncompressed: "uncompressed", Gzip: "gzip", Zstd: "zstd", 7: "Compression(7)"} {
		if c.String() != want {
			t.Errorf("%d: %q, want %q", int(c), c.String(), want)
		}
	}
}

func TestDecompress(t *testing.T) {
	layer, content := randomLayer(t)
	// A skippable frame may start a zstd stream.
	skippable := binary.LittleEndian.AppendUint32(nil, 0x184d2a53)
	skippable = binary.LittleEndian.AppendUint32(skippable, 3)
	skippable = append(skippable, "abc"...)
	for name, tc := range map[string]struct {
		c    Compression
		blob []byte
	}{
		"uncompressed":        {Uncompressed, layer},
		"gzip":                {Gzip, compress(t, Gzip, layer)},
		"zstd":                {Zstd, compress(t, Zstd, layer)},
		"zstd with skippable": {Zstd, append(skippable, compress(t, Zstd, layer)...)},
	} {
		t.Run(name, func(t *testing.T) {
			rc, c, err := Decompress(bytes.NewReader(tc.blob))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			if c != tc.c || !bytes.Equal(got, layer) {
				t.Errorf("compression %v (want %v), %d bytes (want %d), equal %v", c, tc.c, len(got), len(layer), bytes.Equal(got, layer))
			}

			dir := t.TempDir()
			st, diffID, err := ApplyCompressed(dir, bytes.NewReader(tc.blob), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if want := digest.FromBytes(layer); diffID != want {
				t.Errorf("diffID %s, want %s", diffID, want)
			}
			if st.Entries != 3 || readFile(t, filepath.Join(dir, "d/big")) != content {
				t.Errorf("layer not applied: %+v", st)
			}
		})
	}
}

// TestDiffIDCoversTrailingData checks that the diffID is the digest of the
// whole uncompressed stream, with the padding some writers add after the
// end-of-archive marker.
func TestDiffIDCoversTrailingData(t *testing.T) {
	layer := append(layerTar(t, reg("f", "x")), make([]byte, 10240)...)
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		_, diffID, err := ApplyCompressed(t.TempDir(), bytes.NewReader(compress(t, c, layer)), Options{})
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if want := digest.NewDigestFromBytes(digest.SHA256, sha256Sum(layer)); diffID != want {
			t.Errorf("%v: diffID %s, want %s", c, diffID, want)
		}
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// TestTruncated checks that a compressed layer cut short is an error, not
// a shorter layer, wherever the cut is: in the header, in the data, in the
// tar's end-of-archive marker, or in the compressor's trailer after it.
func TestTruncated(t *testing.T) {
	layer, _ := randomLayer(t)
	for _, c := range []Compression{Gzip, Zstd} {
		blob := compress(t, c, layer)
		for _, cut := range []int{2, 5, 100, len(blob) / 2, len(blob) - 100, len(blob) - 8, len(blob) - 4, len(blob) - 1} {
			_, _, err := ApplyCompressed(t.TempDir(), bytes.NewReader(blob[:cut]), Options{})
			if err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
				t.Errorf("%v cut to %d of %d bytes: %v, want an unexpected EOF", c, cut, len(blob), err)
			}
		}
		// Decompress alone: the error shows in Read.
		rc, _, err := Decompress(bytes.NewReader(blob[:len(blob)-1]))
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != io.ErrUnexpectedEOF {
			t.Errorf("%v: reading a truncated stream: %v", c, err)
		}
	}

	corrupt := compress(t, Gzip, layer)
	corrupt[len(corrupt)-6] ^= 0xff // the CRC-32
	if _, _, err := ApplyCompressed(t.TempDir(), bytes.NewReader(corrupt), Options{}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("gzip with a bad CRC: %v", err)
	}
}
