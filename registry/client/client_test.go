package client_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/image"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/metadata"
	"github.com/berth-dev/berth/image/snapshot"
	"github.com/berth-dev/berth/internal/testimage"
	"github.com/berth-dev/berth/registry/client"
	"github.com/berth-dev/berth/registry/server"
	"github.com/golang-jwt/jwt/v5"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// registry starts Berth's registry server behind wrap (nil: none) and
// pushes img to repo:tag through the spec's API, returning host:port.
func registry(t *testing.T, wrap func(http.Handler) http.Handler, repo, tag string, img testimage.Image) string {
	t.Helper()
	reg, err := server.New(t.TempDir(), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = reg
	if wrap != nil {
		h = wrap(reg)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); reg.Close() })
	push(t, httptest.NewServer(reg), repo, tag, img)
	return strings.TrimPrefix(srv.URL, "http://")
}

// push writes img's layout into a registry with monolithic uploads.
func push(t *testing.T, srv *httptest.Server, repo, tag string, img testimage.Image) {
	t.Helper()
	dir := t.TempDir()
	if _, err := img.WriteOCILayout(dir); err != nil {
		t.Fatal(err)
	}
	pushDir(t, srv, repo, tag, dir)
}

// pushDir pushes the image of an OCI layout.
func pushDir(t *testing.T, srv *httptest.Server, repo, tag, dir string) {
	t.Helper()
	defer srv.Close()
	var idx ocispec.Index
	b, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	json.Unmarshal(b, &idx)
	mdesc := idx.Manifests[0]
	blob := func(d digest.Digest) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var m ocispec.Manifest
	json.Unmarshal(blob(mdesc.Digest), &m)
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		resp, err := http.Post(srv.URL+"/v2/"+repo+"/blobs/uploads/?digest="+d.Digest.String(), "application/octet-stream", bytes.NewReader(blob(d.Digest)))
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("push blob: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("PUT", srv.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(blob(mdesc.Digest)))
	req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("push manifest: %v %v", resp, err)
	}
	resp.Body.Close()
}

func smallImage() testimage.Image {
	return testimage.Image{Layers: []testimage.Layer{
		{Files: []testimage.File{{Path: "etc/hello", Data: []byte("hello")}}},
		{Files: []testimage.File{{Path: "big", Data: bytes.Repeat([]byte("0123456789abcdef"), 1<<16)}}, Compression: "none"},
	}}
}

func store(t *testing.T) *image.Store {
	t.Helper()
	s, err := image.Open(t.TempDir(), image.Options{Snapshotter: snapshot.Copy})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pull(t *testing.T, c *client.Client, s *image.Store, name string) (client.PullResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return c.Pull(ctx, s, name, client.PullOptions{NoUnpack: os.Getuid() != 0})
}

func TestPullVerifiesAndPullingAgainTransfersNothing(t *testing.T) {
	host := registry(t, nil, "team/app", "v1", smallImage())
	s := store(t)
	c := client.New()
	res, err := pull(t, c, s, host+"/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched != 3 {
		t.Fatalf("fetched %d blobs, want 3 (config and two layers)", res.Fetched)
	}
	img, err := s.Get(host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Describe(img); err != nil {
		t.Fatal(err)
	}
	if res, err := pull(t, c, s, host+"/team/app:v1"); err != nil || res.Fetched != 0 {
		t.Fatalf("second pull fetched %d (%v)", res.Fetched, err)
	}
	if _, err := pull(t, c, s, host+"/team/app:nope"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("missing tag: %v", err)
	}
}

// A token server as Docker Hub's: 401 with a Bearer challenge, a token
// for the scope asked, anonymous or with Basic credentials.
func TestBearerTokenFlowWithCredentialsFromDockerConfig(t *testing.T) {
	var scopes []string
	var sawBasic atomic.Bool
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scopes = append(scopes, r.URL.Query().Get("scope"))
		if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == "pw" {
			sawBasic.Store(true)
		}
		json.NewEncoder(w).Encode(map[string]string{"token": "tok-" + r.URL.Query().Get("service")})
	}))
	defer tokens.Close()
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok-reg" {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="reg",scope="repository:team/app:pull"`, tokens.URL))
				w.WriteHeader(401)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	host := registry(t, wrap, "team/app", "v1", smallImage())
	cfg := filepath.Join(t.TempDir(), "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("alice:pw"))
	os.WriteFile(cfg, []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600)
	c := client.New()
	c.Credentials = client.DockerConfigCredentials(cfg)
	if _, err := pull(t, c, store(t), host+"/team/app:v1"); err != nil {
		t.Fatal(err)
	}
	if len(scopes) == 0 || scopes[0] != "repository:team/app:pull" || !sawBasic.Load() {
		t.Fatalf("token requests: scopes %v, credentials sent %v", scopes, sawBasic.Load())
	}
}

// A connection that breaks mid-blob is resumed with Range; a registry that
// sends other bytes than the digest says fails the pull and stores
// nothing.
func TestBrokenConnectionsResumeAndWrongContentFails(t *testing.T) {
	var cuts atomic.Int32
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") && r.Header.Get("Range") == "" && cuts.Add(1) == 1 {
				// Half the blob, then the connection dies.
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.WriteHeader(200)
				w.Write(body[:len(body)/2])
				panic(http.ErrAbortHandler)
			}
			h.ServeHTTP(w, r)
		})
	}
	host := registry(t, wrap, "a", "v1", smallImage())
	if _, err := pull(t, client.New(), store(t), host+"/a:v1"); err != nil {
		t.Fatalf("pull over a breaking connection: %v", err)
	}
	if cuts.Load() < 2 {
		t.Fatal("no connection was cut: the test tested nothing")
	}

	corrupt := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if strings.Contains(r.URL.Path, "/blobs/") && len(body) > 100 {
				body[50] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
	host = registry(t, corrupt, "a", "v1", smallImage())
	s := store(t)
	_, err := pull(t, client.New(), s, host+"/a:v1")
	if err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("corrupt blob: %v", err)
	}
	if all, _ := s.List(); len(all) != 0 {
		t.Fatalf("an image was named after a failed pull: %v", all)
	}
	// Nothing in the store that does not verify.
	s.Content.Walk(func(i content.Info) error {
		if err := s.Content.Verify(i.Digest); err != nil {
			t.Errorf("stored blob %s: %v", i.Digest, err)
		}
		return nil
	})
}

// A layer whose content is not what the config's diff_ids say fails the
// pull, which names nothing and leaves no snapshot but committed ones.
func TestPullOfALayerThatIsNotItsDiffIDFails(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("unpacking needs root")
	}
	dir := t.TempDir()
	if _, err := smallImage().WriteOCILayout(dir); err != nil {
		t.Fatal(err)
	}
	blob := func(d digest.Digest) string { return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()) }
	var idx ocispec.Index
	var m ocispec.Manifest
	var cfg ocispec.Image
	readJSON := func(path string, v any) {
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	writeBlob := func(v any) ocispec.Descriptor {
		b, _ := json.Marshal(v)
		d := digest.FromBytes(b)
		if err := os.WriteFile(blob(d), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
	}
	readJSON(filepath.Join(dir, "index.json"), &idx)
	readJSON(blob(idx.Manifests[0].Digest), &m)
	readJSON(blob(m.Config.Digest), &cfg)
	cfg.RootFS.DiffIDs[1] = digest.FromString("something else")
	nd := writeBlob(cfg)
	m.Config.Digest, m.Config.Size = nd.Digest, nd.Size
	nd = writeBlob(m)
	idx.Manifests[0].Digest, idx.Manifests[0].Size = nd.Digest, nd.Size
	b, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644)

	reg, err := server.New(t.TempDir(), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(func() { srv.Close(); reg.Close() })
	pushDir(t, httptest.NewServer(reg), "bad", "v1", dir)
	s := store(t)
	name := strings.TrimPrefix(srv.URL, "http://") + "/bad:v1"
	_, err = pull(t, client.New(), s, name)
	if err == nil || !strings.Contains(err.Error(), "rootfs.diff_ids") || !strings.Contains(err.Error(), "layer 1") {
		t.Fatalf("pull of a layer that is not its diff ID: %v", err)
	}
	if all, _ := s.List(); len(all) != 0 {
		t.Fatalf("named after a failed pull: %v", all)
	}
	sn, _ := s.Snapshots.List()
	for _, in := range sn {
		if in.Kind != metadata.Committed {
			t.Errorf("left behind: %+v", in)
		}
	}
}

func TestHostileRegistriesFailClearlyInBoundedTime(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write(bytes.Repeat([]byte(" "), 5<<20))
			return
		}
		w.WriteHeader(200)
	}))
	defer big.Close()
	loop := httptest.NewServer(nil)
	loop.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
	})
	defer loop.Close()
	noChallenge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
	}))
	defer noChallenge.Close()
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			w.Write([]byte("a little"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		man := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromString("x").String() + `","size":1000},"layers":[]}`
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		io.WriteString(w, man)
	}))
	defer stall.Close()
	hostOf := func(s *httptest.Server) string { u, _ := url.Parse(s.URL); return u.Host }
	c := client.New()
	c.StallTimeout = 300 * time.Millisecond
	// Each fails within pull's own deadline (60 s), which would show
	// as a context error instead of the message wanted.
	for _, tc := range []struct {
		name, host, want string
	}{
		{"oversized manifest", hostOf(big), "allowed"},
		{"redirect loop", hostOf(loop), "redirect"},
		{"401 without a challenge", hostOf(noChallenge), "without a challenge"},
		{"stalled blob", hostOf(stall), "no data for"},
	} {
		_, err := pull(t, c, store(t), tc.host+"/x:1")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error saying %q", tc.name, err, tc.want)
		}
	}
}

func loaded(t *testing.T, img testimage.Image, name string) *image.Store {
	t.Helper()
	s := store(t)
	img.RepoTags = []string{name}
	var buf bytes.Buffer
	if err := img.WriteDockerArchive(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(&buf); err != nil {
		t.Fatal(err)
	}
	return s
}

// A push uploads what the repository lacks (large blobs in chunks), mounts
// what another repository has, and what comes back by pull is the same
// image.
func TestPushUploadsMountsAndRoundTrips(t *testing.T) {
	reg, err := server.New(t.TempDir(), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s := loaded(t, smallImage(), "example.com/app:1")
	c := client.New()
	c.ChunkSize = 100 << 10 // the 1 MiB layer goes in chunks
	ctx := context.Background()
	res, err := c.Push(ctx, s, "example.com/app:1", host+"/team/app:1", client.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pushed != 3 || res.Skipped+res.Mounted != 0 {
		t.Fatalf("first push: %+v", res)
	}
	if res, err := c.Push(ctx, s, "example.com/app:1", host+"/team/app:1", client.PushOptions{}); err != nil || res.Skipped != 3 {
		t.Fatalf("second push: %+v, %v", res, err)
	}
	if res, err := c.Push(ctx, s, "example.com/app:1", host+"/other/app:1", client.PushOptions{}); err != nil || res.Mounted != 3 {
		t.Fatalf("push to another repository: %+v, %v", res, err)
	}
	back := store(t)
	if _, err := pull(t, c, back, host+"/other/app:1"); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Get("example.com/app:1")
	b, err := back.Get(host + "/other/app:1")
	if err != nil || a.ID != b.ID || a.Target.Digest != b.Target.Digest {
		t.Fatalf("pulled back %s/%s, pushed %s/%s (%v)", b.ID, b.Target.Digest, a.ID, a.Target.Digest, err)
	}
}

// Berth's client against Berth's registry under token auth: the client
// follows the challenge to a token service that signs JWTs with the key
// whose certificate the registry trusts.
func TestPullAndPushUnderTokenAuth(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "pw" {
			w.WriteHeader(401)
			return
		}
		var grants []map[string]any
		if scope := r.URL.Query().Get("scope"); scope != "" {
			parts := strings.Split(scope, ":")
			grants = append(grants, map[string]any{"type": parts[0], "name": parts[1], "actions": strings.Split(parts[2], ",")})
		}
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"iss": "berth-test", "aud": r.URL.Query().Get("service"), "exp": time.Now().Add(time.Minute).Unix(), "access": grants,
		}).SignedString(key)
		json.NewEncoder(w).Encode(map[string]string{"token": tok})
	}))
	defer tokens.Close()
	auth, err := server.LoadTokenAuth(tokens.URL, "berth-registry", "berth-test", bundle)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := server.New(t.TempDir(), server.Options{Token: auth})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := client.New()
	c.Credentials = func(string) (string, string) { return "alice", "pw" }
	s := loaded(t, smallImage(), "example.com/app:1")
	if _, err := c.Push(context.Background(), s, "example.com/app:1", host+"/team/app:1", client.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pull(t, c, store(t), host+"/team/app:1"); err != nil {
		t.Fatal(err)
	}
	anon := client.New()
	if _, err := pull(t, anon, store(t), host+"/team/app:1"); err == nil {
		t.Fatal("pulled without credentials from a registry whose token service wants them")
	}
}

// A mirror that challenges gets its own credentials, never the registry's;
// a mirror that lacks the image leaves the pull to the registry.
func TestMirrorsGetTheirOwnCredentialsAndFallBack(t *testing.T) {
	var sentToMirror []string
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			sentToMirror = append(sentToMirror, a)
			w.WriteHeader(404)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="mirror"`)
		w.WriteHeader(401)
	}))
	defer mirror.Close()
	upstream := registry(t, nil, "team/app", "v1", smallImage())
	c := client.New()
	c.Hosts = map[string]client.Host{upstream: {Mirrors: []string{mirror.URL}}}
	mirrorHost := strings.TrimPrefix(mirror.URL, "http://")
	c.Credentials = func(host string) (string, string) {
		if host == mirrorHost {
			return "mirror-user", "mirror-pw"
		}
		return "registry-user", "registry-secret"
	}
	if _, err := pull(t, c, store(t), upstream+"/team/app:v1"); err != nil {
		t.Fatalf("pull with a mirror that lacks the image: %v", err)
	}
	for _, a := range sentToMirror {
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "Basic "))
		if strings.Contains(string(raw), "registry-secret") {
			t.Fatalf("the mirror received the registry's password: %q", raw)
		}
	}
	if len(sentToMirror) == 0 {
		t.Fatal("the mirror was never asked: the test tested nothing")
	}
}
