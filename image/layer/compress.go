package layer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	digest "github.com/opencontainers/go-digest"
)

// Compression is how a layer blob is compressed.
type Compression int

// The compressions OCI layer media types name (tar, tar+gzip, tar+zstd).
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// zstdSkippable says whether b starts a zstd skippable frame (magic
// 0x184D2A50 to 0x184D2A5F, little endian), which a stream may begin with.
func zstdSkippable(b []byte) bool {
	return len(b) >= 4 && binary.LittleEndian.Uint32(b)&^0xf == 0x184d2a50
}

// Detect tells a layer's compression from its first four bytes (fewer if
// the layer is shorter): gzip, zstd (a skippable frame included), or
// plain.
func Detect(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip
	case bytes.HasPrefix(head, zstdMagic) || zstdSkippable(head):
		return Zstd
	}
	return Uncompressed
}

// Decompress recognizes the compression of r by its first bytes (gzip
// 1f 8b, zstd 28 b5 2f fd, anything else is taken for a plain tar) and
// returns the uncompressed stream, which the caller closes.
//
// The media type in a manifest says the same, but the bytes are what gets
// decompressed, and blobs whose media type is wrong exist in the wild
// (plain tars labelled gzip).
//
// A stream that ends early, or whose checksum does not match, makes Read
// fail (io.ErrUnexpectedEOF, or a checksum error) instead of ending short.
// gzip is decompressed by pgzip, which inflates ahead in its own
// goroutine while the caller writes files, and zstd by klauspost's
// decoder with asynchronous block decoding.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	// Both decompressors read through an io.ByteReader; this one serves
	// for the magic too, and is passed to them as it is.
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, Uncompressed, fmt.Errorf("read layer: %w", err)
	}
	switch Detect(magic) {
	case Gzip:
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, Gzip, fmt.Errorf("gzip layer: %w", unexpectedEOF(err))
		}
		return zr, Gzip, nil
	case Zstd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, Zstd, fmt.Errorf("zstd layer: %w", err)
		}
		return zr.IOReadCloser(), Zstd, nil
	}
	return io.NopCloser(br), Uncompressed, nil
}

// unexpectedEOF turns the io.EOF of a stream cut inside its gzip header
// into what it is.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ApplyCompressed decompresses r (see Decompress) and applies the layer to
// dir (see Apply). It returns the layer's diffID: the sha256 digest of the
// whole uncompressed stream, including what follows the tar's end, which
// the caller compares with the image config's rootfs.diff_ids. The digest
// of the compressed blob, which the manifest names, is the caller's to
// compute by wrapping r.
func ApplyCompressed(dir string, r io.Reader, o Options) (Stats, digest.Digest, error) {
	rc, _, err := Decompress(r)
	if err != nil {
		return Stats{}, "", err
	}
	defer rc.Close()
	h := sha256.New()
	st, err := Apply(dir, io.TeeReader(rc, h), o)
	if err != nil {
		return st, "", err
	}
	return st, digest.NewDigest(digest.SHA256, h), nil
}
