package testimage

import (
	"archive/tar"
	"bufio"
	_ "crypto/sha256" // go-digest's SHA256 needs it registered
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobWriter stages one blob of an OCI layout in a temporary file and
// names it by its digest when committed, so blobs of any size stream to
// disk and a half-written blob never carries a digest name.
type blobWriter struct {
	root string
	f    *os.File
	bw   *bufio.Writer
	d    digest.Digester
	n    int64
}

func newBlobWriter(root string) (*blobWriter, error) {
	f, err := os.CreateTemp(filepath.Join(root, "blobs", "sha256"), ".tmp-")
	if err != nil {
		return nil, err
	}
	b := &blobWriter{root: root, f: f, d: digest.SHA256.Digester()}
	b.bw = bufio.NewWriterSize(io.MultiWriter(f, b.d.Hash()), 1<<16)
	return b, nil
}

func (b *blobWriter) Write(p []byte) (int, error) {
	n, err := b.bw.Write(p)
	b.n += int64(n)
	return n, err
}

func (b *blobWriter) commit(mediaType string) (ocispec.Descriptor, error) {
	err := b.bw.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(b.f.Name())
		return ocispec.Descriptor{}, err
	}
	if err := os.Chmod(b.f.Name(), 0o644); err != nil {
		return ocispec.Descriptor{}, err
	}
	dgst := b.d.Digest()
	if err := os.Rename(b.f.Name(), blobPath(b.root, dgst)); err != nil {
		os.Remove(b.f.Name())
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: dgst, Size: b.n}, nil
}

func (b *blobWriter) abort() {
	b.f.Close()
	os.Remove(b.f.Name())
}

func blobPath(root string, d digest.Digest) string {
	return filepath.Join(root, "blobs", d.Algorithm().String(), d.Encoded())
}

func putBlob(root, mediaType string, data []byte) (ocispec.Descriptor, error) {
	b, err := newBlobWriter(root)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := b.Write(data); err != nil {
		b.abort()
		return ocispec.Descriptor{}, err
	}
	return b.commit(mediaType)
}

// writeLayer streams l into w as a tar compressed with compression, and
// returns the digest of the uncompressed tar: the layer's diff ID.
func writeLayer(w io.Writer, l Layer, compression string) (digest.Digest, error) {
	var cw io.WriteCloser
	switch compression {
	case Gzip:
		cw = gzip.NewWriter(w)
	case Zstd:
		// One encoder goroutine keeps the frames, and so the digest,
		// the same from run to run and machine to machine.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return "", err
		}
		cw = zw
	case Uncompressed:
		cw = nopCloser{w}
	default:
		return "", fmt.Errorf("testimage: unknown layer compression %q", compression)
	}
	diff := digest.SHA256.Digester()
	bw := bufio.NewWriterSize(io.MultiWriter(diff.Hash(), cw), 1<<16)
	tw := tar.NewWriter(bw)
	var err error
	if l.gen != nil {
		err = l.gen(tw)
	} else {
		err = writeFiles(tw, l.Files, l.AsIs)
	}
	err = errors.Join(err, tw.Close(), bw.Flush(), cw.Close())
	if err != nil {
		return "", err
	}
	return diff.Digest(), nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// ArchiveLayout writes the directory tree under dir to w as a tar, the way
// an oci-archive holds an OCI layout: relative names, directories before
// their contents, sorted, owned by root, every time Epoch.
func ArchiveLayout(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: Epoch}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			return tw.WriteHeader(hdr)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, info.Size()
		default:
			return fmt.Errorf("testimage: %s is not a regular file or directory", p)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	return errors.Join(err, tw.Close())
}
