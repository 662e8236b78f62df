package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifest bounds a fetched manifest or index, as registries do.
const maxManifest = 4 << 20

// manifestAccept are the manifest types Berth reads, newest first.
var manifestAccept = []string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	image.MediaTypeDockerManifestList, image.MediaTypeDockerManifest,
}

// Manifest fetches a manifest or index by tag or digest and returns its
// bytes and descriptor, checked against the digest asked for (or the one
// the registry says, for a tag).
func (r *Repo) Manifest(ctx context.Context, ref string) ([]byte, ocispec.Descriptor, error) {
	hdr := http.Header{}
	for _, a := range manifestAccept {
		hdr.Add("Accept", a)
	}
	// A manifest is small: it comes within two minutes, body included,
	// or the pull fails rather than hang.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := r.do(ctx, http.MethodGet, "manifests/"+ref, hdr, nil)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, ocispec.Descriptor{}, fmt.Errorf("manifest %s of %s/%s: %w", ref, r.registry, r.path, ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, ocispec.Descriptor{}, fmt.Errorf("manifest %s of %s/%s: %s", ref, r.registry, r.path, resp.Status)
	}
	if resp.ContentLength > maxManifest {
		return nil, ocispec.Descriptor{}, fmt.Errorf("manifest %s is %d bytes, more than the %d allowed", ref, resp.ContentLength, maxManifest)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", ref, err)
	}
	if len(b) > maxManifest {
		return nil, ocispec.Descriptor{}, fmt.Errorf("manifest %s is more than the %d bytes allowed", ref, maxManifest)
	}
	want, err := digest.Parse(ref)
	if err != nil {
		// A tag: the digest the registry says, if it says one.
		want = digest.Digest(resp.Header.Get("Docker-Content-Digest"))
		if want.Validate() != nil {
			want = digest.FromBytes(b)
		}
	}
	if got := want.Algorithm().FromBytes(b); got != want {
		return nil, ocispec.Descriptor{}, fmt.Errorf("manifest %s: the registry sent content that hashes to %s, not %s", ref, got, want)
	}
	mt := resp.Header.Get("Content-Type")
	if !image.IsIndex(mt) && !image.IsManifest(mt) {
		if mt, err = image.DetectMediaType(b); err != nil {
			return nil, ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", ref, err)
		}
	}
	return b, ocispec.Descriptor{MediaType: mt, Digest: want, Size: int64(len(b))}, nil
}

// Progress is told how a blob's download goes.
type Progress interface {
	Start(d ocispec.Descriptor, offset int64)
	Add(d ocispec.Descriptor, n int64)
	Done(d ocispec.Descriptor, err error)
}

// DefaultStallTimeout is how long a blob's body may send nothing before
// the fetch gives up on the connection and resumes on a new one.
const DefaultStallTimeout = 30 * time.Second

// FetchBlob downloads a blob into the content store, verified, resuming
// with Range after a broken or stalled connection and retrying with
// back-off. A blob already in the store is not fetched again.
func (r *Repo) FetchBlob(ctx context.Context, cs *content.Store, ref string, d ocispec.Descriptor, p Progress) error {
	w, err := cs.Writer(ref, d.Digest, d.Size)
	if errors.Is(err, content.ErrExists) {
		return nil
	}
	if err != nil {
		return err
	}
	p.Start(d, w.Offset())
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				w.Close()
				return ctx.Err()
			case <-time.After(time.Duration(1<<attempt) * 250 * time.Millisecond):
			}
		}
		last = r.fetchOnce(ctx, w, d, p)
		if last == nil {
			break
		}
		if errors.Is(last, content.ErrDigest) || errors.Is(last, content.ErrSize) || errors.Is(last, ErrNotFound) {
			break // a registry sending other content will not mend
		}
	}
	if last != nil {
		// Kept for a later resume, unless it cannot be right.
		if errors.Is(last, content.ErrDigest) || errors.Is(last, content.ErrSize) {
			w.Abort()
		} else {
			w.Close()
		}
		p.Done(d, last)
		return fmt.Errorf("blob %s: %w", d.Digest, last)
	}
	_, err = w.Commit(d.Size, d.Digest)
	if errors.Is(err, content.ErrExists) {
		err = nil
	}
	p.Done(d, err)
	return err
}

func (r *Repo) fetchOnce(ctx context.Context, w *content.Writer, d ocispec.Descriptor, p Progress) error {
	if w.Offset() == d.Size && d.Size > 0 {
		return nil
	}
	hdr := http.Header{}
	if off := w.Offset(); off > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := r.do(ctx, http.MethodGet, "blobs/"+d.Digest.String(), hdr, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if w.Offset() > 0 {
			// The registry ignored the Range: start over.
			if err := w.Truncate(0); err != nil {
				return err
			}
		}
	case http.StatusPartialContent:
		// The part must start where the ingest stops.
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != w.Offset() {
			if err := w.Truncate(0); err != nil {
				return err
			}
			return fmt.Errorf("the registry answered a resume at %d with %q", w.Offset(), resp.Header.Get("Content-Range"))
		}
	case http.StatusNotFound:
		return fmt.Errorf("%w", ErrNotFound)
	default:
		return fmt.Errorf("GET blob: %s", resp.Status)
	}
	// A body that stops moving is cut, and the loop resumes it.
	stall := r.c.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	timer := time.AfterFunc(stall, cancel)
	defer timer.Stop()
	buf := make([]byte, 256<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && w.Offset()+int64(n) > d.Size {
			// The descriptor's size is exact (a size of 0 is the empty
			// blob), whatever the registry sends.
			return fmt.Errorf("the registry sent more than the %d bytes the manifest says: %w", d.Size, content.ErrSize)
		}
		if n > 0 {
			timer.Reset(stall)
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			p.Add(d, int64(n))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("no data for %s: %w", stall, err)
			}
			return err
		}
	}
	if w.Offset() != d.Size {
		return fmt.Errorf("connection closed at %d of %d bytes", w.Offset(), d.Size)
	}
	if got := w.Digest(); got != d.Digest {
		return fmt.Errorf("the registry sent content that hashes to %s: %w", got, content.ErrDigest)
	}
	return nil
}
