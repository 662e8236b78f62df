package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultChunkSize is the size of the PATCH requests a large blob is
// pushed in; smaller blobs go in one PUT.
const DefaultChunkSize = 16 << 20

// PushOptions shape a push.
type PushOptions struct {
	Progress Progress
}

// PushResult says what a push did.
type PushResult struct {
	Target  ocispec.Descriptor
	Pushed  int // blobs uploaded
	Skipped int // blobs the registry had
	Mounted int // blobs mounted from another repository of the registry
}

// Push uploads an image from the store to the registry its name says (or
// dst, if given): blobs the repository lacks (mounted from another
// repository where the registry has them there, else uploaded in one PUT
// or in chunks), then the manifests, the top one by tag. What the store
// does not have of an index (other platforms never pulled) is left out.
func (c *Client) Push(ctx context.Context, s *image.Store, name, dst string, o PushOptions) (PushResult, error) {
	var res PushResult
	img, err := s.Get(name)
	if err != nil {
		return res, err
	}
	if dst == "" {
		dst = img.Name
	}
	ref, err := reference.ParseNormalized(dst)
	if err != nil {
		return res, fmt.Errorf("image name %w", err)
	}
	ref = ref.WithDefaultTag()
	if o.Progress == nil {
		o.Progress = noProgress{}
	}
	repo := c.Repository(ref, false)
	res.Target = img.Target
	var pushed []digest.Digest // configs and layers, to label with this repository
	var push func(d ocispec.Descriptor, tag string, depth int) error
	push = func(d ocispec.Descriptor, tag string, depth int) error {
		if depth > 4 {
			return errors.New("indexes nested too deep")
		}
		b, err := s.Content.ReadBlob(d.Digest, maxManifest)
		if err != nil {
			return err
		}
		mt := d.MediaType
		if mt == "" {
			if mt, err = image.DetectMediaType(b); err != nil {
				return err
			}
		}
		if image.IsIndex(mt) {
			idx, err := image.ParseIndex(b, mt)
			if err != nil {
				return err
			}
			for _, m := range idx.Manifests {
				if s.Content.Has(m.Digest) {
					if err := push(m, "", depth+1); err != nil {
						return err
					}
				}
			}
		} else {
			m, err := image.ParseManifest(b, mt)
			if err != nil {
				return err
			}
			for _, blob := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
				pushed = append(pushed, blob.Digest)
				how, err := repo.pushBlob(ctx, s, blob, s.Sources(ref.Domain, blob.Digest), o.Progress)
				if err != nil {
					return fmt.Errorf("blob %s: %w", blob.Digest, err)
				}
				switch how {
				case "pushed":
					res.Pushed++
				case "mounted":
					res.Mounted++
				default:
					res.Skipped++
				}
			}
		}
		where := d.Digest.String()
		if tag != "" {
			where = tag
		}
		return repo.putManifest(ctx, where, mt, b)
	}
	tag := ref.Tag
	top := img.Target
	if _, err := s.Reachable(top); err != nil && image.IsIndex(top.MediaType) {
		// The store has only some platforms of the index (pulled for
		// one); a registry may refuse an index whose manifests are
		// missing, so the tag names this host's manifest, as docker
		// push does then.
		_, desc, err := s.Manifest(top, "")
		if err != nil {
			return res, err
		}
		top = desc
		res.Target = desc
	}
	if err := push(top, tag, 0); err != nil {
		return res, fmt.Errorf("push %s: %w", ref.Familiar(), err)
	}
	// The next push of these blobs to another repository of this
	// registry mounts them from here.
	return res, s.AddSource(ref.Domain, ref.Path, pushed...)
}

// pushBlob uploads one blob unless the repository has it or can mount it
// from one of the repositories in from (of the same registry).
func (r *Repo) pushBlob(ctx context.Context, s *image.Store, d ocispec.Descriptor, from []string, p Progress) (string, error) {
	resp, err := r.do(ctx, http.MethodHead, "blobs/"+d.Digest.String(), nil, nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return "skipped", nil
	}
	// Start an upload, asking for a mount first: from the repository
	// the blob was pulled from or pushed to, else anonymous (a registry
	// may look for it in any repository the client can read). One that
	// cannot mount answers with an upload session.
	q := url.Values{"mount": {d.Digest.String()}}
	for _, repo := range from {
		if repo != r.path {
			q.Set("from", repo)
			break
		}
	}
	resp, err = r.do(ctx, http.MethodPost, "blobs/uploads/?"+q.Encode(), nil, nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return "mounted", nil
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start upload: %s", resp.Status)
	}
	loc, err := location(resp)
	if err != nil {
		return "", err
	}
	f, err := s.Content.Open(d.Digest)
	if err != nil {
		return "", err
	}
	defer f.Close()
	p.Start(d, 0)
	chunkSize := r.c.ChunkSize
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	var offset int64
	// Large blobs go in chunks, each a PATCH with its Content-Range.
	for d.Size > chunkSize && offset < d.Size {
		n := min(chunkSize, d.Size-offset)
		chunk := io.NewSectionReader(f, offset, n)
		hdr := http.Header{}
		hdr.Set("Content-Type", "application/octet-stream")
		hdr.Set("Content-Range", fmt.Sprintf("%d-%d", offset, offset+n-1))
		hdr.Set("Content-Length", strconv.FormatInt(n, 10))
		resp, err := r.doURL(ctx, http.MethodPatch, loc, hdr, func() io.Reader { chunk.Seek(0, io.SeekStart); return chunk }, n)
		if err != nil {
			p.Done(d, err)
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			err := fmt.Errorf("upload chunk at %d: %s", offset, resp.Status)
			p.Done(d, err)
			return "", err
		}
		if loc, err = location(resp); err != nil {
			return "", err
		}
		offset += n
		p.Add(d, n)
	}
	rest := io.NewSectionReader(f, offset, d.Size-offset)
	q = loc.Query()
	q.Set("digest", d.Digest.String())
	loc.RawQuery = q.Encode()
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/octet-stream")
	resp, err = r.doURL(ctx, http.MethodPut, loc, hdr, func() io.Reader { rest.Seek(0, io.SeekStart); return rest }, d.Size-offset)
	if err != nil {
		p.Done(d, err)
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		err := fmt.Errorf("finish upload: %s", resp.Status)
		p.Done(d, err)
		return "", err
	}
	p.Add(d, d.Size-offset)
	p.Done(d, nil)
	return "pushed", nil
}

func location(resp *http.Response) (*url.URL, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return nil, errors.New("the registry gave no upload Location")
	}
	u, err := resp.Request.URL.Parse(l)
	if err != nil {
		return nil, fmt.Errorf("upload Location %q: %w", l, err)
	}
	// An HTTPS registry behind a proxy that forgot X-Forwarded-Proto
	// says http://: the upload (and its credentials) would go in clear
	// text.
	if resp.Request.URL.Scheme == "https" && u.Scheme != "https" {
		return nil, fmt.Errorf("the registry on HTTPS gave an upload Location over plain HTTP (%s): refused", l)
	}
	return u, nil
}

func (r *Repo) putManifest(ctx context.Context, ref, mediaType string, b []byte) error {
	hdr := http.Header{}
	hdr.Set("Content-Type", mediaType)
	resp, err := r.do(ctx, http.MethodPut, "manifests/"+ref, hdr, func() io.Reader { return bytes.NewReader(b) })
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("put manifest %s: %s: %s", ref, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// doURL sends a request to an absolute URL the registry gave (an upload
// Location), with the same authentication as the repository's requests.
func (r *Repo) doURL(ctx context.Context, method string, u *url.URL, hdr http.Header, body func() io.Reader, size int64) (*http.Response, error) {
	insecure := r.c.insecure(r.registry) || r.c.insecure(u.Host) || u.Scheme == "http"
	resp, err := r.send(ctx, u.Host, method, u.String(), hdr, body, insecure, size)
	return resp, err
}
