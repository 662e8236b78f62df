package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/opencontainers/go-digest"
)

// tokenService is a token service's key and certificate.
type tokenService struct {
	key    *ecdsa.PrivateKey
	bundle string
}

func newTokenService(t *testing.T) tokenService {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "token"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bundle.pem")
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return tokenService{key, p}
}

func (s tokenService) token(t *testing.T, key *ecdsa.PrivateKey, aud string, exp time.Time, grants ...access) string {
	c := claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "berth-test", Audience: jwt.ClaimStrings{aud}, ExpiresAt: jwt.NewNumericDate(exp)}, Access: grants}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenAuthChecksSignatureAudienceLifetimeAndScope(t *testing.T) {
	ts := newTokenService(t)
	auth, err := LoadTokenAuth("https://auth.example/token", "registry", "berth-test", ts.bundle)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, Options{Token: auth})
	blob := []byte("x")
	d := digest.FromBytes(blob)
	hour := time.Now().Add(time.Hour)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pullPush := access{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}
	pullOnly := access{Type: "repository", Name: "team/app", Actions: []string{"pull"}}

	r := do(t, "GET", srv.URL+"/v2/team/app/blobs/"+d.String(), nil)
	ch := r.Header.Get("WWW-Authenticate")
	if r.StatusCode != 401 || !strings.Contains(ch, `realm="https://auth.example/token"`) || !strings.Contains(ch, `scope="repository:team/app:pull"`) {
		t.Fatalf("anonymous: %d %q", r.StatusCode, ch)
	}
	for _, c := range []struct {
		name, token, method, path string
		status                    int
	}{
		{"valid push", ts.token(t, ts.key, "registry", hour, pullPush), "POST", "/v2/team/app/blobs/uploads/?digest=" + d.String(), 201},
		{"valid pull", ts.token(t, ts.key, "registry", hour, pullOnly), "GET", "/v2/team/app/blobs/" + d.String(), 200},
		{"pull-only token pushing", ts.token(t, ts.key, "registry", hour, pullOnly), "POST", "/v2/team/app/blobs/uploads/", 401},
		{"another repository", ts.token(t, ts.key, "registry", hour, pullPush), "GET", "/v2/team/secret/blobs/" + d.String(), 401},
		{"signed by another key", ts.token(t, other, "registry", hour, pullPush), "GET", "/v2/team/app/blobs/" + d.String(), 401},
		{"for another service", ts.token(t, ts.key, "elsewhere", hour, pullPush), "GET", "/v2/team/app/blobs/" + d.String(), 401},
		{"expired", ts.token(t, ts.key, "registry", time.Now().Add(-time.Minute), pullPush), "GET", "/v2/team/app/blobs/" + d.String(), 401},
	} {
		r := do(t, c.method, srv.URL+c.path, blob, "Authorization", "Bearer "+c.token)
		if r.StatusCode != c.status {
			t.Errorf("%s: %d, want %d", c.name, r.StatusCode, c.status)
		}
	}
	// A push right on one repository mounts nothing from another it
	// cannot read, anonymously or by name.
	tok := ts.token(t, ts.key, "registry", hour, access{Type: "repository", Name: "intruder/x", Actions: []string{"pull", "push"}})
	for _, q := range []string{"?mount=" + d.String(), "?mount=" + d.String() + "&from=team/app"} {
		r := do(t, "POST", srv.URL+"/v2/intruder/x/blobs/uploads/"+q, nil, "Authorization", "Bearer "+tok)
		if r.StatusCode != http.StatusAccepted {
			t.Errorf("mount %s: %d, want an upload session instead", q, r.StatusCode)
		}
	}
}
