// Package server is Berth's registry: the OCI Distribution Spec 1.1 over
// a content store of its own (pull, push monolithic and chunked, cross-
// repository mount, tags with pagination, the referrers API, deletion),
// with optional htpasswd Basic auth.
package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// maxManifestSize is what a manifest may weigh, as distribution's 4 MiB.
const maxManifestSize = 4 << 20

// Registry serves one root directory.
type Registry struct {
	root    string
	content *content.Store
	db      *bolt.DB
	log     *slog.Logger
	auth    func(user, pass string) bool
	token   *TokenAuth
	maxBlob int64
	// maxUploads bounds the open upload sessions.
	maxUploads int

	mu      sync.Mutex
	uploads map[string]*sync.Mutex
}

// Options configure New.
type Options struct {
	Logger *slog.Logger
	// Auth, if set, checks Basic credentials; requests without valid ones
	// get 401 with a Basic challenge.
	Auth func(user, pass string) bool
	// Token, if set, requires Bearer tokens from a token service instead.
	Token *TokenAuth
	// MaxBlobSize bounds one blob upload (0: DefaultMaxBlobSize).
	MaxBlobSize int64
	// MaxUploads bounds the upload sessions open at once (0:
	// DefaultMaxUploads): each holds a file, and clients that start
	// sessions and never finish them must not fill the disk's inodes.
	MaxUploads int
}

// DefaultMaxUploads is how many upload sessions may be open at once.
const DefaultMaxUploads = 1024

// DefaultMaxBlobSize is the largest blob an upload may make: far above
// real layers, well below a disk.
const DefaultMaxBlobSize = 32 << 30

// New opens (creating) a registry's storage under root.
func New(root string, o Options) (*Registry, error) {
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "content", "uploads"), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(root, "registry.db"), 0o600, nil)
	if err != nil {
		return nil, fmt.Errorf("registry database: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	purgeUploads(filepath.Join(root, "content", "uploads"), uploadMaxAge)
	maxBlob := o.MaxBlobSize
	if maxBlob <= 0 {
		maxBlob = DefaultMaxBlobSize
	}
	maxUploads := o.MaxUploads
	if maxUploads <= 0 {
		maxUploads = DefaultMaxUploads
	}
	return &Registry{root: root, content: cs, db: db, log: log, auth: o.Auth, token: o.Token, maxBlob: maxBlob, maxUploads: maxUploads, uploads: map[string]*sync.Mutex{}}, nil
}

// Close releases the database.
func (r *Registry) Close() error { return r.db.Close() }

// route is one request's parsed path.
type route struct {
	repo, kind, ref string // kind: blobs, uploads, manifests, tags, referrers
}

// parse splits /v2/<name>/<kind>/<ref>: the name may have slashes, so the
// kind is found from the right.
func parse(p string) (route, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return route{}, false
	}
	for _, k := range []struct{ sep, kind string }{
		{"/blobs/uploads/", "uploads"}, {"/blobs/", "blobs"}, {"/manifests/", "manifests"},
		{"/tags/list", "tags"}, {"/referrers/", "referrers"},
	} {
		if i := strings.LastIndex(rest, k.sep); i > 0 {
			ref := rest[i+len(k.sep):]
			if k.kind == "tags" && ref != "" {
				continue
			}
			if k.kind != "uploads" && k.kind != "tags" && ref == "" {
				continue
			}
			return route{repo: rest[:i], kind: k.kind, ref: ref}, true
		}
	}
	return route{}, false
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	// Content is served with the type it was pushed with: a browser
	// must never sniff it into something it runs.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.auth != nil {
		user, pass, ok := req.BasicAuth()
		if !ok || !r.auth(user, pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth registry"`)
			writeError(w, http.StatusUnauthorized, codeUnauthorized, "authentication required")
			return
		}
	}
	if req.URL.Path == "/v2/" || req.URL.Path == "/v2" {
		if r.token != nil && !r.token.authorize(w, req, "", nil) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
		return
	}
	rt, ok := parse(req.URL.EscapedPath())
	if !ok {
		writeError(w, http.StatusNotFound, codeUnsupported, "no such endpoint")
		return
	}
	if !reference.ValidRepository(rt.repo) {
		writeError(w, http.StatusBadRequest, codeNameInvalid, fmt.Sprintf("invalid repository name %q", rt.repo))
		return
	}
	if r.token != nil && !r.token.authorize(w, req, rt.repo, actionsFor(req.Method)) {
		return
	}
	switch rt.kind {
	case "blobs":
		r.blob(w, req, rt)
	case "uploads":
		r.upload(w, req, rt)
	case "manifests":
		r.manifest(w, req, rt)
	case "tags":
		r.tags(w, req, rt)
	case "referrers":
		r.referrers(w, req, rt)
	}
}

func methodNotAllowed(w http.ResponseWriter) {
	writeError(w, http.StatusMethodNotAllowed, codeUnsupported, "method not allowed")
}

func parseDigest(w http.ResponseWriter, s string) (digest.Digest, bool) {
	d, err := digest.Parse(s)
	if err != nil || !d.Algorithm().Available() {
		writeError(w, http.StatusBadRequest, codeDigestInvalid, fmt.Sprintf("invalid digest %q", s))
		return "", false
	}
	return d, true
}

func (r *Registry) view(fn func(*bolt.Tx) error) error   { return r.db.View(fn) }
func (r *Registry) update(fn func(*bolt.Tx) error) error { return r.db.Update(fn) }

// blob serves GET, HEAD and DELETE of /v2/<name>/blobs/<digest>.
func (r *Registry) blob(w http.ResponseWriter, req *http.Request, rt route) {
	d, ok := parseDigest(w, rt.ref)
	if !ok {
		return
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		var linked bool
		r.view(func(tx *bolt.Tx) error { linked = hasBlob(tx, rt.repo, d); return nil })
		f, err := r.content.Open(d)
		if !linked || err != nil {
			if err == nil {
				f.Close()
			}
			writeError(w, http.StatusNotFound, codeBlobUnknown, "blob unknown to registry")
			return
		}
		defer f.Close()
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("Etag", `"`+d.String()+`"`)
		// ServeContent answers Range requests (206, Content-Range) and
		// HEAD; it reads through ReadAt, unverified, which the blob's
		// commit verified.
		http.ServeContent(w, req, "", modTimeZero, io.NewSectionReader(f, 0, f.Size()))
	case http.MethodDelete:
		err := r.update(func(tx *bolt.Tx) error { return unlinkBlob(tx, rt.repo, d) })
		if err != nil {
			writeError(w, http.StatusNotFound, codeBlobUnknown, "blob unknown to registry")
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(w)
	}
}

// uploadLock serializes the requests of one upload session.
func (r *Registry) uploadLock(id string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.uploads[id]
	if m == nil {
		m = &sync.Mutex{}
		r.uploads[id] = m
	}
	return m
}

// forgetLock drops a finished session's lock (one whose files are gone).
func (r *Registry) forgetLock(id string) {
	if _, err := os.Stat(r.uploadPath(id) + ".repo"); err == nil {
		return
	}
	r.mu.Lock()
	delete(r.uploads, id)
	r.mu.Unlock()
}

func (r *Registry) uploadPath(id string) string {
	return filepath.Join(r.root, "content", "uploads", id)
}

func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// upload serves the blob upload endpoints.
func (r *Registry) upload(w http.ResponseWriter, req *http.Request, rt route) {
	if rt.ref == "" {
		if req.Method != http.MethodPost {
			methodNotAllowed(w)
			return
		}
		r.startUpload(w, req, rt)
		return
	}
	id := rt.ref
	if !validUploadID(id) {
		writeError(w, http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
		return
	}
	p := r.uploadPath(id)
	// The session must exist before a lock is made for it: a lock per
	// made-up ID would grow the map without end.
	if repo, err := os.ReadFile(p + ".repo"); err != nil || string(repo) != rt.repo {
		writeError(w, http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
		return
	}
	l := r.uploadLock(id)
	l.Lock()
	defer l.Unlock()
	defer r.forgetLock(id)
	if repo, err := os.ReadFile(p + ".repo"); err != nil || string(repo) != rt.repo {
		writeError(w, http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
		return
	}
	st, err := os.Stat(p)
	if err != nil {
		writeError(w, http.StatusNotFound, codeBlobUploadUnknown, "upload unknown")
		return
	}
	offset := st.Size()
	switch req.Method {
	case http.MethodGet:
		r.uploadStatus(w, rt.repo, id, offset, http.StatusNoContent)
	case http.MethodPatch:
		if cr := req.Header.Get("Content-Range"); cr != "" {
			start, end, ok := parseRange(cr)
			if ok && req.ContentLength >= 0 && end-start+1 != req.ContentLength {
				writeError(w, http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
					fmt.Sprintf("Content-Range %s is not the %d bytes sent", cr, req.ContentLength))
				return
			}
			if !ok || start != offset {
				w.Header().Set("Range", rangeHeader(offset))
				writeError(w, http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
					fmt.Sprintf("chunk starts at %s, but the upload has %d bytes", cr, offset))
				return
			}
		}
		n, err := appendTo(p, req.Body, r.maxBlob)
		if err != nil {
			uploadError(w, err)
			return
		}
		r.uploadStatus(w, rt.repo, id, offset+n, http.StatusAccepted)
	case http.MethodPut:
		d, ok := parseDigest(w, req.URL.Query().Get("digest"))
		if !ok {
			return
		}
		if cr := req.Header.Get("Content-Range"); cr != "" {
			if start, _, ok := parseRange(cr); !ok || start != offset {
				w.Header().Set("Range", rangeHeader(offset))
				writeError(w, http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, "chunk out of order")
				return
			}
		}
		if _, err := appendTo(p, req.Body, r.maxBlob); err != nil {
			uploadError(w, err)
			return
		}
		r.finishUpload(w, rt.repo, id, d)
	case http.MethodDelete:
		os.Remove(p)
		os.Remove(p + ".repo")
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w)
	}
}

func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, rt route) {
	q := req.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		d, err := digest.Parse(mount)
		from := q.Get("from")
		// With token auth, mounting needs the right to pull from the
		// repository named; an anonymous mount (no from) would let a
		// digest alone reach another user's repository, so there is
		// none.
		mayRead := r.token == nil || (from != "" && r.token.allowed(req, from, []string{"pull"}) == nil)
		if err == nil && mayRead && r.mount(rt.repo, from, d) {
			w.Header().Set("Location", "/v2/"+rt.repo+"/blobs/"+d.String())
			w.Header().Set("Docker-Content-Digest", d.String())
			w.WriteHeader(http.StatusCreated)
			return
		}
		// Not mountable: an upload session instead, as the spec says.
	}
	b := make([]byte, 16)
	rand.Read(b)
	id := hex.EncodeToString(b)
	p := r.uploadPath(id)
	if !r.reserveUpload(p) {
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, codeTooManyRequests,
			fmt.Sprintf("%d upload sessions are open: finish or cancel some first", r.maxUploads))
		return
	}
	err := os.WriteFile(p, nil, 0o600)
	if err == nil {
		err = os.WriteFile(p+".repo", []byte(rt.repo), 0o600)
	}
	if err != nil {
		os.Remove(p)
		os.Remove(p + ".repo")
		writeError(w, http.StatusInternalServerError, codeBlobUploadInvalid, err.Error())
		return
	}
	if ds := q.Get("digest"); ds != "" {
		// Monolithic: the blob is the body.
		d, ok := parseDigest(w, ds)
		if !ok {
			os.Remove(p)
			os.Remove(p + ".repo")
			return
		}
		if _, err := appendTo(p, req.Body, r.maxBlob); err != nil {
			// A monolithic upload that failed leaves no session.
			os.Remove(p)
			os.Remove(p + ".repo")
			uploadError(w, err)
			return
		}
		r.finishUpload(w, rt.repo, id, d)
		return
	}
	r.uploadStatus(w, rt.repo, id, 0, http.StatusAccepted)
}

// mount links a blob another repository has (or, with no from, that the
// registry has at all) into repo.
func (r *Registry) mount(repo, from string, d digest.Digest) bool {
	if !r.content.Has(d) {
		return false
	}
	err := r.update(func(tx *bolt.Tx) error {
		if from != "" && !hasBlob(tx, from, d) {
			return errNotFound
		}
		// Without a source, only a blob some repository still has: one
		// deleted everywhere must not come back by its digest.
		if from == "" && !linkedAnywhere(tx, d) {
			return errNotFound
		}
		info, err := r.content.Info(d)
		if err != nil {
			return err
		}
		return linkBlob(tx, repo, d, info.Size)
	})
	return err == nil
}

func (r *Registry) finishUpload(w http.ResponseWriter, repo, id string, d digest.Digest) {
	p := r.uploadPath(id)
	defer os.Remove(p + ".repo")
	err := r.content.CommitFile(p, d, -1)
	if err != nil && !errors.Is(err, content.ErrExists) {
		if errors.Is(err, content.ErrDigest) {
			writeError(w, http.StatusBadRequest, codeDigestInvalid, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, codeBlobUploadInvalid, err.Error())
		return
	}
	info, err := r.content.Info(d)
	if err == nil {
		err = r.update(func(tx *bolt.Tx) error { return linkBlob(tx, repo, d, info.Size) })
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeBlobUploadInvalid, err.Error())
		return
	}
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.WriteHeader(http.StatusCreated)
}

func (r *Registry) uploadStatus(w http.ResponseWriter, repo, id string, offset int64, status int) {
	w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
	w.Header().Set("Range", rangeHeader(offset))
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// rangeHeader is the Range an upload reports: the bytes it has, inclusive.
func rangeHeader(offset int64) string {
	if offset == 0 {
		return "0-0"
	}
	return fmt.Sprintf("0-%d", offset-1)
}

// parseRange reads a chunk's Content-Range, "start-end" (inclusive).
func parseRange(s string) (start, end int64, ok bool) {
	s = strings.TrimPrefix(s, "bytes ")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(strings.Split(b, "/")[0], 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// errTooLarge: an upload grew past the registry's blob size limit.
var errTooLarge = errors.New("blob too large")

// appendTo adds a request body to an upload, which may not grow past max
// bytes in all (what is over is not kept: the session is dropped).
func appendTo(p string, body io.Reader, max int64) (int64, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	room := max - st.Size()
	n, err := io.Copy(f, io.LimitReader(body, room+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > room {
		os.Remove(p)
		os.Remove(p + ".repo")
		return n, fmt.Errorf("%w: more than %d bytes", errTooLarge, max)
	}
	return n, err
}

// uploadError answers a failed append.
func uploadError(w http.ResponseWriter, err error) {
	if errors.Is(err, errTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, codeSizeInvalid, err.Error())
		return
	}
	writeError(w, http.StatusInternalServerError, codeBlobUploadInvalid, err.Error())
}

// manifest serves /v2/<name>/manifests/<reference>.
func (r *Registry) manifest(w http.ResponseWriter, req *http.Request, rt route) {
	isDigest := strings.Contains(rt.ref, ":")
	if !isDigest && !validTag(rt.ref) {
		writeError(w, http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("invalid tag %q", rt.ref))
		return
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		d, rec, ok := r.resolve(w, rt, isDigest)
		if !ok {
			return
		}
		b, err := r.content.ReadBlob(d, maxManifestSize)
		if err != nil {
			writeError(w, http.StatusNotFound, codeManifestUnknown, "manifest unknown")
			return
		}
		w.Header().Set("Content-Type", rec.MediaType)
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Header().Set("Etag", `"`+d.String()+`"`)
		if req.Method == http.MethodGet {
			w.Write(b)
		}
	case http.MethodPut:
		r.putManifest(w, req, rt, isDigest)
	case http.MethodDelete:
		var err error
		if isDigest {
			d, ok := parseDigest(w, rt.ref)
			if !ok {
				return
			}
			err = r.update(func(tx *bolt.Tx) error { return deleteManifest(tx, rt.repo, d) })
		} else {
			err = r.update(func(tx *bolt.Tx) error { return deleteTag(tx, rt.repo, rt.ref) })
		}
		if err != nil {
			writeError(w, http.StatusNotFound, codeManifestUnknown, "manifest unknown")
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(w)
	}
}

func (r *Registry) resolve(w http.ResponseWriter, rt route, isDigest bool) (digest.Digest, manifestRecord, bool) {
	var d digest.Digest
	var rec manifestRecord
	if isDigest {
		var ok bool
		if d, ok = parseDigest(w, rt.ref); !ok {
			return "", rec, false
		}
	}
	err := r.view(func(tx *bolt.Tx) error {
		if !isDigest {
			var err error
			if d, err = getTag(tx, rt.repo, rt.ref); err != nil {
				return err
			}
		}
		var err error
		rec, err = getManifest(tx, rt.repo, d)
		return err
	})
	if err != nil {
		writeError(w, http.StatusNotFound, codeManifestUnknown, "manifest unknown")
		return "", rec, false
	}
	return d, rec, true
}

// validTag is the spec's [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		word := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if !word && (i == 0 || (c != '.' && c != '-')) {
			return false
		}
	}
	return true
}

// manifestFields are what the registry reads of any manifest or index.
type manifestFields struct {
	SchemaVersion int                 `json:"schemaVersion"`
	MediaType     string              `json:"mediaType"`
	ArtifactType  string              `json:"artifactType"`
	Config        *ocispec.Descriptor `json:"config"`
	Layers        []ocispec.Descriptor
	Manifests     []ocispec.Descriptor
	Subject       *ocispec.Descriptor `json:"subject"`
	Annotations   map[string]string   `json:"annotations"`
}

func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, rt route, isDigest bool) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxManifestSize+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, codeManifestInvalid, err.Error())
		return
	}
	if len(body) > maxManifestSize {
		writeError(w, http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Sprintf("manifest larger than %d bytes", maxManifestSize))
		return
	}
	mt := req.Header.Get("Content-Type")
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	var m manifestFields
	if err := json.Unmarshal(body, &m); err != nil {
		writeError(w, http.StatusBadRequest, codeManifestInvalid, "manifest is not valid JSON: "+err.Error())
		return
	}
	if m.MediaType != "" && mt != "" && m.MediaType != mt {
		writeError(w, http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("manifest says mediaType %q, Content-Type %q", m.MediaType, mt))
		return
	}
	if mt == "" {
		mt = m.MediaType
	}
	if mt == "" {
		if detected, err := image.DetectMediaType(body); err == nil {
			mt = detected
		}
	}
	// Only manifests and indexes: what is stored is served back with
	// this type, and any other (text/html) would turn the registry into
	// a web host for whatever was pushed.
	if !image.IsManifest(mt) && !image.IsIndex(mt) {
		writeError(w, http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("media type %q is not an OCI or Docker manifest or index", mt))
		return
	}
	if m.SchemaVersion != 2 {
		writeError(w, http.StatusBadRequest, codeManifestInvalid, "schemaVersion must be 2")
		return
	}
	d := digest.Canonical.FromBytes(body)
	if isDigest {
		want, ok := parseDigest(w, rt.ref)
		if !ok {
			return
		}
		if d = want.Algorithm().FromBytes(body); d != want {
			writeError(w, http.StatusBadRequest, codeDigestInvalid, fmt.Sprintf("manifest content is %s, not %s", d, want))
			return
		}
	}
	// A manifest may name blobs this repository does not have (yet, or
	// ever: non-distributable layers, a sparse copy of an index); the
	// spec leaves the registry free to accept it, and clients that copy
	// only some platforms rely on that.
	if err := r.content.WriteBlob("manifest-"+d.String(), bytes.NewReader(body), ocispec.Descriptor{Digest: d, Size: int64(len(body))}); err != nil {
		writeError(w, http.StatusInternalServerError, codeManifestInvalid, err.Error())
		return
	}
	rec := manifestRecord{MediaType: mt, Size: int64(len(body)), ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if rec.ArtifactType == "" && m.Config != nil && m.Config.MediaType != ocispec.MediaTypeEmptyJSON {
		rec.ArtifactType = m.Config.MediaType
	}
	if m.Subject != nil {
		rec.Subject = m.Subject.Digest
	}
	desc := ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(body)), ArtifactType: rec.ArtifactType, Annotations: m.Annotations}
	tags := req.URL.Query()["tag"]
	if !isDigest {
		tags = append(tags, rt.ref)
	}
	for _, t := range tags {
		if !validTag(t) {
			writeError(w, http.StatusBadRequest, codeManifestInvalid, fmt.Sprintf("invalid tag %q", t))
			return
		}
	}
	err = r.update(func(tx *bolt.Tx) error {
		if err := putManifest(tx, rt.repo, d, rec, desc); err != nil {
			return err
		}
		for _, t := range tags {
			if err := putTag(tx, rt.repo, t, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeManifestInvalid, err.Error())
		return
	}
	if m.Subject != nil {
		w.Header().Set("OCI-Subject", m.Subject.Digest.String())
	}
	for _, t := range tags {
		w.Header().Add("OCI-Tag", t)
	}
	w.Header().Set("Location", "/v2/"+rt.repo+"/manifests/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.WriteHeader(http.StatusCreated)
}

// tags serves /v2/<name>/tags/list with n and last.
func (r *Registry) tags(w http.ResponseWriter, req *http.Request, rt route) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	q := req.URL.Query()
	n := -1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			writeError(w, http.StatusBadRequest, codeUnsupported, fmt.Sprintf("n=%q is not a count", s))
			return
		}
		n = v
	}
	var tags []string
	var more bool
	err := r.view(func(tx *bolt.Tx) (err error) {
		tags, more, err = listTags(tx, rt.repo, n, q.Get("last"))
		return err
	})
	if err != nil {
		writeError(w, http.StatusNotFound, codeNameUnknown, "repository name not known to registry")
		return
	}
	if tags == nil {
		tags = []string{}
	}
	if more && len(tags) > 0 {
		w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?n=%d&last=%s>; rel="next"`, rt.repo, n, tags[len(tags)-1]))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.repo, tags})
}

// referrers serves the referrers API: an index of the manifests whose
// subject is the digest, filtered by artifactType.
func (r *Registry) referrers(w http.ResponseWriter, req *http.Request, rt route) {
	if req.Method != http.MethodGet {
		methodNotAllowed(w)
		return
	}
	d, ok := parseDigest(w, rt.ref)
	if !ok {
		return
	}
	at := req.URL.Query().Get("artifactType")
	var descs []ocispec.Descriptor
	r.view(func(tx *bolt.Tx) (err error) {
		descs, err = referrers(tx, rt.repo, d, at)
		return err
	})
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	json.NewEncoder(w).Encode(idx)
}

// reserveUpload creates the (empty) data file of a new session at p,
// unless maxUploads sessions are open; stale ones are purged first.
func (r *Registry) reserveUpload(p string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	dir := filepath.Dir(p)
	count := func() int {
		ents, _ := os.ReadDir(dir)
		n := 0
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".repo") {
				n++
			}
		}
		return n
	}
	if count() >= r.maxUploads {
		purgeUploads(dir, uploadMaxAge)
		if count() >= r.maxUploads {
			return false
		}
	}
	// The .repo file is what counts a session: written now, under the
	// lock, so that concurrent starts see it.
	return os.WriteFile(p+".repo", nil, 0o600) == nil
}

// uploadMaxAge is how long an upload session may sit unfinished before
// the registry drops it (distribution purges after a week by default).
const uploadMaxAge = 24 * time.Hour

// purgeUploads removes upload sessions older than maxAge: clients that
// gave up leave their data otherwise.
func purgeUploads(dir string, maxAge time.Duration) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > maxAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
