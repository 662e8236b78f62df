package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

func newServer(t *testing.T, o Options) *httptest.Server {
	t.Helper()
	r, err := New(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() { srv.Close(); r.Close() })
	return srv
}

func do(t *testing.T, method, url string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// errorCode is the first error code of a spec error body.
func errorCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	var body struct{ Errors []apiError }
	json.NewDecoder(resp.Body).Decode(&body)
	if len(body.Errors) == 0 {
		return ""
	}
	return body.Errors[0].Code
}

func TestBadRequestsGetTheSpecsErrors(t *testing.T) {
	srv := newServer(t, Options{})
	blob := []byte("hello")
	d := digest.FromBytes(blob)
	for _, c := range []struct {
		name, method, path string
		body               []byte
		status             int
		code               string
	}{
		{"path trick in the name", "GET", "/v2/a/../b/blobs/" + d.String(), nil, 400, codeNameInvalid},
		{"upper case name", "GET", "/v2/Repo/tags/list", nil, 400, codeNameInvalid},
		{"encoded slash", "GET", "/v2/a%2F..%2Fb/blobs/" + d.String(), nil, 400, codeNameInvalid},
		{"malformed digest", "GET", "/v2/repo/blobs/sha256:xyz", nil, 400, codeDigestInvalid},
		{"unknown algorithm", "POST", "/v2/repo/blobs/uploads/?digest=md5:abc", blob, 400, codeDigestInvalid},
		{"wrong digest", "POST", "/v2/repo/blobs/uploads/?digest=" + digest.FromString("other").String(), blob, 400, codeDigestInvalid},
		{"unknown blob", "GET", "/v2/repo/blobs/" + d.String(), nil, 404, codeBlobUnknown},
		{"unknown upload", "PATCH", "/v2/repo/blobs/uploads/0123456789abcdef0123456789abcdef", blob, 404, codeBlobUploadUnknown},
		{"manifest not JSON", "PUT", "/v2/repo/manifests/v1", []byte("<html>"), 400, codeManifestInvalid},
		{"oversized manifest", "PUT", "/v2/repo/manifests/v1", bytes.Repeat([]byte(" "), maxManifestSize+1), 413, codeSizeInvalid},
		{"unknown manifest", "GET", "/v2/repo/manifests/v1", nil, 404, codeManifestUnknown},
		{"bad tag", "PUT", "/v2/repo/manifests/-bad", []byte("{}"), 400, codeManifestInvalid},
		{"unknown repository's tags", "GET", "/v2/nothing/tags/list", nil, 404, codeNameUnknown},
	} {
		resp := do(t, c.method, srv.URL+c.path, c.body, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.status)
			continue
		}
		if got := errorCode(t, resp); got != c.code {
			t.Errorf("%s: code %q, want %q", c.name, got, c.code)
		}
	}
}

func TestChunksMustComeInOrder(t *testing.T) {
	srv := newServer(t, Options{})
	resp := do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 202 || loc == "" {
		t.Fatalf("start: %d %q", resp.StatusCode, loc)
	}
	if r := do(t, "PATCH", srv.URL+loc, []byte("abc"), "Content-Range", "0-2"); r.StatusCode != 202 || r.Header.Get("Range") != "0-2" {
		t.Fatalf("first chunk: %d, Range %q", r.StatusCode, r.Header.Get("Range"))
	}
	r := do(t, "PATCH", srv.URL+loc, []byte("xyz"), "Content-Range", "5-7")
	if r.StatusCode != http.StatusRequestedRangeNotSatisfiable || r.Header.Get("Range") != "0-2" {
		t.Fatalf("out of order chunk: %d, Range %q", r.StatusCode, r.Header.Get("Range"))
	}
	if r := do(t, "PUT", srv.URL+loc+"?digest="+digest.FromString("abcdef").String(), []byte("def"), "Content-Range", "3-5"); r.StatusCode != 201 {
		t.Fatalf("last chunk: %d", r.StatusCode)
	}
	r = do(t, "GET", srv.URL+"/v2/repo/blobs/"+digest.FromString("abcdef").String(), nil, "Range", "bytes=2-3")
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != 206 || string(b) != "cd" {
		t.Fatalf("range get: %d %q", r.StatusCode, b)
	}
}

func TestBlobsBelongToTheirRepositoryUntilMounted(t *testing.T) {
	srv := newServer(t, Options{})
	blob := []byte("shared layer")
	d := digest.FromBytes(blob)
	if r := do(t, "POST", srv.URL+"/v2/a/blobs/uploads/?digest="+d.String(), blob); r.StatusCode != 201 {
		t.Fatalf("push: %d", r.StatusCode)
	}
	if r := do(t, "HEAD", srv.URL+"/v2/b/blobs/"+d.String(), nil); r.StatusCode != 404 {
		t.Fatalf("another repository sees the blob: %d", r.StatusCode)
	}
	if r := do(t, "POST", srv.URL+"/v2/b/blobs/uploads/?mount="+d.String()+"&from=c", nil); r.StatusCode != 202 {
		t.Fatalf("mount from a repository without it: %d, want an upload session", r.StatusCode)
	}
	if r := do(t, "POST", srv.URL+"/v2/b/blobs/uploads/?mount="+d.String()+"&from=a", nil); r.StatusCode != 201 {
		t.Fatalf("mount: %d", r.StatusCode)
	}
	if r := do(t, "HEAD", srv.URL+"/v2/b/blobs/"+d.String(), nil); r.StatusCode != 200 || r.ContentLength != int64(len(blob)) {
		t.Fatalf("after mount: %d, length %d", r.StatusCode, r.ContentLength)
	}
}

func TestTagsPaginate(t *testing.T) {
	srv := newServer(t, Options{})
	cfg := []byte("{}")
	do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/?digest="+digest.FromBytes(cfg).String(), cfg)
	man := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[]}`, digest.FromBytes(cfg))
	for _, tag := range []string{"c", "a", "e", "b", "d"} {
		if r := do(t, "PUT", srv.URL+"/v2/repo/manifests/"+tag, []byte(man), "Content-Type", "application/vnd.oci.image.manifest.v1+json"); r.StatusCode != 201 {
			t.Fatalf("put %s: %d", tag, r.StatusCode)
		}
	}
	var got []string
	next := "/v2/repo/tags/list?n=2"
	for pages := 0; next != "" && pages < 10; pages++ {
		r := do(t, "GET", srv.URL+next, nil)
		var body struct{ Tags []string }
		json.NewDecoder(r.Body).Decode(&body)
		got = append(got, body.Tags...)
		next = ""
		if link := r.Header.Get("Link"); link != "" {
			next = strings.TrimPrefix(strings.SplitN(link, ">", 2)[0], "<")
		}
	}
	if strings.Join(got, ",") != "a,b,c,d,e" {
		t.Fatalf("paginated tags: %v", got)
	}
}

func TestHtpasswdGuardsEveryRequest(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	file := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(file, []byte("# users\nalice:"+string(hash)+"\n"), 0o600)
	auth, err := Htpasswd(file)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, Options{Auth: auth})
	r := do(t, "GET", srv.URL+"/v2/", nil)
	if r.StatusCode != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("anonymous: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v2/", nil)
	req.SetBasicAuth("alice", "wrong")
	if r, _ := http.DefaultClient.Do(req); r.StatusCode != 401 {
		t.Fatalf("wrong password: %d", r.StatusCode)
	}
	req.SetBasicAuth("alice", "s3cret")
	if r, _ := http.DefaultClient.Do(req); r.StatusCode != 200 {
		t.Fatalf("right password: %d", r.StatusCode)
	}
	os.WriteFile(file, []byte("bob:plaintext\n"), 0o600)
	if _, err := Htpasswd(file); err == nil || !strings.Contains(err.Error(), "bcrypt") {
		t.Fatalf("plain-text entry: %v", err)
	}
}

// Fixes of a review: what a pusher stores is never served as a web page,
// deleted content does not come back by its digest, tags are the spec's,
// made-up upload IDs cost nothing, and a chunk's range is its length.
func TestServerRefusesWhatAReviewFound(t *testing.T) {
	r, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer r.Close()

	if resp := do(t, "PUT", srv.URL+"/v2/repo/manifests/page", []byte(`{"x":"<script>alert(1)</script>"}`), "Content-Type", "text/html"); resp.StatusCode != 400 {
		t.Errorf("a text/html manifest: %d", resp.StatusCode)
	}
	if resp := do(t, "GET", srv.URL+"/v2/", nil); resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff header")
	}

	secret := []byte("AWS_SECRET=hunter2")
	d := digest.FromBytes(secret)
	do(t, "POST", srv.URL+"/v2/private/blobs/uploads/?digest="+d.String(), secret)
	do(t, "DELETE", srv.URL+"/v2/private/blobs/"+d.String(), nil)
	if resp := do(t, "POST", srv.URL+"/v2/else/blobs/uploads/?mount="+d.String(), nil); resp.StatusCode != http.StatusAccepted {
		t.Errorf("anonymous mount of a deleted blob: %d, want an upload session", resp.StatusCode)
	}
	if resp := do(t, "GET", srv.URL+"/v2/else/blobs/"+d.String(), nil); resp.StatusCode != 404 {
		t.Errorf("the deleted blob is readable again: %d", resp.StatusCode)
	}

	for _, tag := range []string{"1234/foo", "a:b", "latest@sha256:" + strings.Repeat("0", 64), ".x"} {
		if resp := do(t, "PUT", srv.URL+"/v2/repo/manifests/x?tag="+tag, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`),
			"Content-Type", "application/vnd.oci.image.index.v1+json"); resp.StatusCode != 400 {
			t.Errorf("tag %q: %d", tag, resp.StatusCode)
		}
	}

	for i := 0; i < 200; i++ {
		do(t, "GET", fmt.Sprintf("%s/v2/repo/blobs/uploads/%032x", srv.URL, i), nil)
	}
	r.mu.Lock()
	n := len(r.uploads)
	r.mu.Unlock()
	if n != 0 {
		t.Errorf("%d locks for made-up upload IDs", n)
	}

	resp := do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	if resp := do(t, "PATCH", srv.URL+loc, []byte("abc"), "Content-Range", "0-9"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("a chunk shorter than its range: %d", resp.StatusCode)
	}
}

func TestGCFreesWhatIsUnlinkedAndRefusesARunningRegistry(t *testing.T) {
	root := t.TempDir()
	r, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	keep, drop := []byte("kept"), []byte("deleted")
	for _, b := range [][]byte{keep, drop} {
		do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/?digest="+digest.FromBytes(b).String(), b)
	}
	do(t, "DELETE", srv.URL+"/v2/repo/blobs/"+digest.FromBytes(drop).String(), nil)
	if _, err := GC(root); err == nil || !strings.Contains(err.Error(), "running") {
		t.Fatalf("GC of a running registry: %v", err)
	}
	srv.Close()
	r.Close()
	res, err := GC(root)
	if err != nil || res.Blobs != 1 || res.Bytes != int64(len(drop)) {
		t.Fatalf("GC: %+v, %v", res, err)
	}
	r, _ = New(root, Options{})
	defer r.Close()
	srv = httptest.NewServer(r)
	defer srv.Close()
	if resp := do(t, "GET", srv.URL+"/v2/repo/blobs/"+digest.FromBytes(keep).String(), nil); resp.StatusCode != 200 {
		t.Fatalf("the linked blob after GC: %d", resp.StatusCode)
	}
}

func TestUploadsStopAtTheBlobSizeLimit(t *testing.T) {
	r, err := New(t.TempDir(), Options{MaxBlobSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer r.Close()
	big := bytes.Repeat([]byte("x"), 1500)
	if resp := do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/?digest="+digest.FromBytes(big).String(), big); resp.StatusCode != 413 {
		t.Fatalf("monolithic over the limit: %d", resp.StatusCode)
	}
	resp := do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	do(t, "PATCH", srv.URL+loc, big[:800])
	if resp := do(t, "PATCH", srv.URL+loc, big[:700]); resp.StatusCode != 413 {
		t.Fatalf("chunks over the limit: %d", resp.StatusCode)
	}
	if resp := do(t, "GET", srv.URL+loc, nil); resp.StatusCode != 404 {
		t.Fatalf("the session survived going over: %d", resp.StatusCode)
	}
	ents, _ := os.ReadDir(filepath.Join(r.root, "content", "uploads"))
	if len(ents) != 0 {
		t.Fatalf("upload files left: %v", ents)
	}
}

// Sessions that are started and never finished stop at MaxUploads with
// 429 TOOMANYREQUESTS; finishing or cancelling one makes room.
func TestOpenUploadSessionsAreBounded(t *testing.T) {
	srv := newServer(t, Options{MaxUploads: 3})
	var locs []string
	for range 3 {
		resp := do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/", nil)
		if resp.StatusCode != 202 {
			t.Fatalf("start: %d", resp.StatusCode)
		}
		locs = append(locs, resp.Header.Get("Location"))
	}
	blob := []byte("hello")
	d := digest.FromBytes(blob).String()
	resp := do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/?digest="+d, blob)
	if resp.StatusCode != 429 || errorCode(t, resp) != codeTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a session over the limit: %d", resp.StatusCode)
	}
	if resp := do(t, "DELETE", srv.URL+locs[0], nil); resp.StatusCode != 204 {
		t.Fatalf("cancel: %d", resp.StatusCode)
	}
	if resp := do(t, "PUT", srv.URL+locs[1]+"?digest="+d, blob); resp.StatusCode != 201 {
		t.Fatalf("finish: %d", resp.StatusCode)
	}
	for range 2 {
		if resp := do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/", nil); resp.StatusCode != 202 {
			t.Fatalf("start after making room: %d", resp.StatusCode)
		}
	}
	if resp := do(t, "POST", srv.URL+"/v2/repo/blobs/uploads/", nil); resp.StatusCode != 429 {
		t.Fatalf("over the limit again: %d", resp.StatusCode)
	}
}
