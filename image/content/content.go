// Package content is Berth's content-addressed blob store: every blob is
// kept under its digest, written through a resumable ingest that checks
// size and digest before the blob appears, and verified again as it is
// read.
//
// Layout under the store's root:
//
//	blobs/<algorithm>/<encoded>   committed blobs, read-only
//	ingest/<sha256 of the ref>/   one directory per write in progress:
//	    data, ref, lock
package content

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

var (
	// ErrNotFound: no blob with that digest.
	ErrNotFound = errors.New("blob not found")
	// ErrExists: Commit found the blob already there (written by another
	// writer meanwhile); the content is the same, the caller carries on.
	ErrExists = errors.New("blob already exists")
	// ErrDigest: what was written or read does not hash to its digest.
	ErrDigest = errors.New("digest mismatch")
	// ErrSize: what was written is not the size it was announced as.
	ErrSize = errors.New("size mismatch")
)

// Store is a content store rooted at one directory.
type Store struct {
	root string
}

// Info describes a committed blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// Open opens (creating if needed) the store under root.
func Open(root string) (*Store, error) {
	for _, d := range []string{"blobs", "ingest"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
	}
	return &Store{root: root}, nil
}

func (s *Store) blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %w", d, err)
	}
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded()), nil
}

// Info returns a blob's size and time, or ErrNotFound.
func (s *Store) Info(d digest.Digest) (Info, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return Info{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%s: %w", d, ErrNotFound)
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Digest: d, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Has reports whether the blob is committed.
func (s *Store) Has(d digest.Digest) bool {
	_, err := s.Info(d)
	return err == nil
}

// Delete removes a blob. Deleting a missing blob is not an error: garbage
// collection and a user's rm may race.
func (s *Store) Delete(d digest.Digest) error {
	p, err := s.blobPath(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Walk calls fn for every committed blob.
func (s *Store) Walk(fn func(Info) error) error {
	algs, err := os.ReadDir(filepath.Join(s.root, "blobs"))
	if err != nil {
		return err
	}
	for _, a := range algs {
		alg := digest.Algorithm(a.Name())
		if !alg.Available() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(s.root, "blobs", a.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			d := digest.NewDigestFromEncoded(alg, e.Name())
			if d.Validate() != nil {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // deleted meanwhile
			}
			if err := fn(Info{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Reader reads one blob and checks its digest when the end is reached: a
// reader that reads to io.EOF has read verified content, or gets ErrDigest
// instead of io.EOF. (A blob on disk can rot or be tampered with after it
// was committed.)
type Reader struct {
	f        *os.File
	d        digest.Digest
	size     int64
	h        hash.Hash
	n        int64
	verified bool
}

// Open opens a blob for reading.
func (s *Store) Open(d digest.Digest) (*Reader, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Reader{f: f, d: d, size: st.Size(), h: d.Algorithm().Hash()}, nil
}

// Size is the blob's size.
func (r *Reader) Size() int64 { return r.size }

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if err == io.EOF && !r.verified {
		if got := digest.NewDigest(r.d.Algorithm(), r.h); got != r.d || r.n != r.size {
			return n, fmt.Errorf("blob %s: content on disk hashes to %s: %w", r.d, got, ErrDigest)
		}
		r.verified = true
	}
	return n, err
}

// ReadAt reads without verification, for the few readers that need random
// access (a tar index); they verify with Verify first.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }

func (r *Reader) Close() error { return r.f.Close() }

// ReadBlob reads a whole blob, verified, refusing blobs larger than max
// (manifests and configs are small; a huge one is an attack or a mistake).
func (s *Store) ReadBlob(d digest.Digest, max int64) ([]byte, error) {
	r, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Size() > max {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d allowed for it", d, r.Size(), max)
	}
	return io.ReadAll(r)
}

// Verify reads a blob through and checks its digest.
func (s *Store) Verify(d digest.Digest) error {
	r, err := s.Open(d)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	return err
}

// Writer is an ingest in progress. It is resumable: closing it without
// Commit keeps what was written, and a later Writer with the same ref
// continues at Offset.
type Writer struct {
	s        *Store
	dir      string
	ref      string
	f        *os.File
	lock     *os.File
	h        hash.Hash
	offset   int64
	expected digest.Digest
	size     int64
	done     bool
}

// Writer opens the ingest called ref (any string naming the write, e.g.
// "pull-docker.io/library/busybox-layer-sha256:..."), for a blob that is
// expected to have the given digest and size (either may be zero:
// unknown). Only one Writer holds a ref at a time; a second one waits for
// the first to finish. If the expected blob is already committed it
// returns ErrExists and nothing needs writing.
func (s *Store) Writer(ref string, expected digest.Digest, size int64) (*Writer, error) {
	if expected != "" {
		if err := expected.Validate(); err != nil {
			return nil, fmt.Errorf("expected digest %q: %w", expected, err)
		}
		if s.Has(expected) {
			return nil, fmt.Errorf("%s: %w", expected, ErrExists)
		}
	}
	sum := sha256.Sum256([]byte(ref))
	dir := filepath.Join(s.root, "ingest", hex.EncodeToString(sum[:]))
	lock, err := lockIngest(dir, ref)
	if err != nil {
		return nil, err
	}
	// The previous holder may have committed meanwhile.
	if expected != "" && s.Has(expected) {
		lock.Close()
		return nil, fmt.Errorf("%s: %w", expected, ErrExists)
	}
	if err := os.WriteFile(filepath.Join(dir, "ref"), []byte(ref), 0o600); err != nil {
		lock.Close()
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		lock.Close()
		return nil, err
	}
	alg := digest.Canonical
	if expected != "" {
		alg = expected.Algorithm()
	}
	w := &Writer{s: s, dir: dir, ref: ref, f: f, lock: lock, h: alg.Hash(), expected: expected, size: size}
	// Resuming: the hash state is rebuilt from what is on disk, which also
	// re-reads it rather than trusting it.
	n, err := io.Copy(w.h, f)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("resume ingest %s: %w", ref, err)
	}
	w.offset = n
	if size > 0 && n > size {
		// Longer than the blob can be: start over.
		if err := w.Truncate(0); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// lockIngest takes the ingest's lock, waiting for another holder. A holder
// that finished removes the directory while it still holds the lock; a
// waiter that then gets a lock on the removed file starts over.
func lockIngest(dir, ref string) (*os.File, error) {
	for {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		for {
			err = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			lock.Close()
			return nil, fmt.Errorf("lock ingest %s: %w", ref, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(lock.Fd()), &st); err != nil {
			lock.Close()
			return nil, err
		}
		if st.Nlink > 0 {
			return lock, nil
		}
		lock.Close()
	}
}

// Offset is how many bytes the ingest holds: where a resumed write
// continues (e.g. an HTTP Range request).
func (w *Writer) Offset() int64 { return w.offset }

// Ref is the ingest's name.
func (w *Writer) Ref() string { return w.ref }

// Truncate drops what was written past n (only n == 0 is supported: the
// hash cannot be rewound).
func (w *Writer) Truncate(n int64) error {
	if n != 0 {
		return errors.New("ingest can only be truncated to 0")
	}
	if err := w.f.Truncate(0); err != nil {
		return err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w.h.Reset()
	w.offset = 0
	return nil
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.size > 0 && w.offset+int64(len(p)) > w.size {
		return 0, fmt.Errorf("ingest %s: more than the expected %d bytes: %w", w.ref, w.size, ErrSize)
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.offset += int64(n)
	return n, err
}

// Digest is the digest of what was written so far.
func (w *Writer) Digest() digest.Digest {
	alg := digest.Canonical
	if w.expected != "" {
		alg = w.expected.Algorithm()
	}
	return digest.NewDigest(alg, w.h)
}

// Commit checks size and digest (those given to Writer, or here if they
// were unknown then) and makes the blob visible, atomically: readers see
// all of it or nothing. The ingest is gone afterwards, whatever the result
// of the checks: content that failed them is not worth resuming.
func (w *Writer) Commit(size int64, expected digest.Digest) (digest.Digest, error) {
	if w.done {
		return "", errors.New("ingest already closed")
	}
	defer w.discard()
	if size == 0 {
		size = w.size
	}
	if expected == "" {
		expected = w.expected
	}
	alg := digest.Canonical
	if expected != "" {
		alg = expected.Algorithm()
	}
	got := digest.NewDigest(alg, w.h)
	if w.expected != "" && w.expected.Algorithm() != alg {
		return "", fmt.Errorf("commit %s with %s, opened for %s", w.ref, expected, w.expected)
	}
	if size > 0 && w.offset != size {
		return "", fmt.Errorf("blob %s: got %d bytes, expected %d: %w", orDigest(expected, got), w.offset, size, ErrSize)
	}
	if expected != "" && got != expected {
		return "", fmt.Errorf("blob %s: content hashes to %s: %w", expected, got, ErrDigest)
	}
	if err := w.f.Sync(); err != nil {
		return "", err
	}
	if err := w.s.place(w.f.Name(), got); err != nil {
		if errors.Is(err, ErrExists) {
			return got, err
		}
		return "", err
	}
	return got, nil
}

// place renames a verified, synced file into the blob it is, read-only.
// RENAME_NOREPLACE: a blob committed by a concurrent writer is left as it
// is (same content, by its digest), and ErrExists says so.
func (s *Store) place(path string, d digest.Digest) error {
	p, err := s.blobPath(d)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o400); err != nil {
		return err
	}
	err = unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, p, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("%s: %w", d, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	return nil
}

func orDigest(d, alt digest.Digest) digest.Digest {
	if d != "" {
		return d
	}
	return alt
}

// Close ends this Writer and keeps the ingest for a later resume.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return w.lock.Close()
}

// Abort ends this Writer and throws the ingest away.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.discard()
	return nil
}

func (w *Writer) discard() {
	w.done = true
	w.f.Close()
	// Removed while still locked, so no other writer opens a
	// half-removed ingest; one waiting on the lock finds its directory
	// gone and makes a new one.
	os.RemoveAll(w.dir)
	w.lock.Close()
}

// CommitFile makes the file at path (on the store's file system) the blob
// it is, if it hashes to expected and has size bytes (size < 0: any): the
// file is renamed into place, not copied. A registry's upload, written
// before its digest is known (even its algorithm: sha512 content is
// named only at the end), is committed this way. The file is gone
// afterwards either way; ErrExists if the blob was there already.
func (s *Store) CommitFile(path string, expected digest.Digest, size int64) error {
	defer os.Remove(path)
	if err := expected.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", expected, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	h := expected.Algorithm().Hash()
	n, err := io.Copy(h, f)
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("blob %s: got %d bytes, expected %d: %w", expected, n, size, ErrSize)
	}
	if got := digest.NewDigest(expected.Algorithm(), h); got != expected {
		return fmt.Errorf("blob %s: content hashes to %s: %w", expected, got, ErrDigest)
	}
	return s.place(path, expected)
}

// Ingests lists the refs of the writes in progress, for resumption and for
// clean-up of abandoned ones.
func (s *Store) Ingests() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.root, "ingest", e.Name(), "ref"))
		if err == nil {
			refs = append(refs, string(b))
		}
	}
	return refs, nil
}

// WriteBlob writes r as one blob described by desc (digest and size
// checked), returning nil if it was already there.
func (s *Store) WriteBlob(ref string, r io.Reader, desc ocispec.Descriptor) error {
	w, err := s.Writer(ref, desc.Digest, desc.Size)
	if errors.Is(err, ErrExists) {
		return nil
	}
	if err != nil {
		return err
	}
	if w.Offset() > 0 {
		// A resumable source would skip ahead; a plain reader starts over.
		if err := w.Truncate(0); err != nil {
			w.Close()
			return err
		}
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	_, err = w.Commit(desc.Size, desc.Digest)
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

// RemoveAbandoned removes the ingests no writer holds (left by commands
// that died), returning how many.
func (s *Store) RemoveAbandoned() (int, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "ingest"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		dir := filepath.Join(s.root, "ingest", e.Name())
		lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err != nil {
			continue // being made or removed right now
		}
		if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(dir)
			n++
		}
		lock.Close()
	}
	return n, nil
}
