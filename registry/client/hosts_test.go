package client_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/registry/client"
	"github.com/berth-dev/berth/registry/server"
)

// pki is a CA and what it signed, as PEM files in a directory.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	p.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue signs a certificate for 127.0.0.1 (server) or a client, returning
// its PEM files and the pair.
func (p *pki) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (string, string, tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cert, keyFile := p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
	pair, err := tls.LoadX509KeyPair(cert, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert, keyFile, pair
}

func writeHosts(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registries.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A registry with a certificate from its own CA and a demand for client
// certificates: refused with the system's CAs alone, reached with the
// CA, certificate and key the settings file names.
func TestRegistryWithItsOwnCAAndClientCertificates(t *testing.T) {
	p := newPKI(t)
	_, _, serverPair := p.issue(t, "server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey, _ := p.issue(t, "client", x509.ExtKeyUsageClientAuth)
	reg, err := server.New(t.TempDir(), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	push(t, httptest.NewServer(reg), "team/app", "v1", smallImage())
	srv := httptest.NewUnstartedServer(reg)
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(func() { srv.Close(); reg.Close() })
	host := strings.TrimPrefix(srv.URL, "https://")
	name := host + "/team/app:v1"

	// On loopback any certificate would do, but a host given a CA is
	// verified with it: another CA's is refused, and plain HTTP is not
	// tried instead.
	other := newPKI(t)
	hosts, err := client.LoadHosts(writeHosts(t, host+":\n  ca: "+other.caFile+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New()
	c.Hosts = hosts
	if _, err := pull(t, c, store(t), name); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("pull with another CA: %v", err)
	}
	hosts, err = client.LoadHosts(writeHosts(t, host+":\n  ca: "+p.caFile+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c = client.New()
	c.Hosts = hosts
	if _, err := pull(t, c, store(t), name); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("pull without a client certificate: %v", err)
	}
	hosts, err = client.LoadHosts(writeHosts(t, host+":\n  ca: "+p.caFile+"\n  cert: "+clientCert+"\n  key: "+clientKey+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c = client.New()
	c.Hosts = hosts
	if _, err := pull(t, c, store(t), name); err != nil {
		t.Fatalf("pull with the CA and a client certificate: %v", err)
	}
}

// A mirror named in the settings file serves registry.k8s.io's images,
// as the CRI tests need with no internet.
func TestSettingsFileMirrorsARegistry(t *testing.T) {
	host := registry(t, nil, "pause", "3.10", smallImage())
	hosts, err := client.LoadHosts(writeHosts(t, "registry.k8s.io:\n  mirrors: [\"http://"+host+"\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New()
	c.Hosts = hosts
	s := store(t)
	if _, err := pull(t, c, s, "registry.k8s.io/pause:3.10"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("registry.k8s.io/pause:3.10"); err != nil {
		t.Fatal(err)
	}
}

func TestBadSettingsFilesAreRefusedWithWhatIsWrong(t *testing.T) {
	p := newPKI(t)
	cert, _, _ := p.issue(t, "c", x509.ExtKeyUsageClientAuth)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	for yaml, want := range map[string]string{
		"docker.io:\n  mirror: [x]\n":                      "unknown field",
		"docker.io:\n  mirrors: [\"ftp://m\"]\n":           `mirror "ftp://m"`,
		"docker.io:\n  mirrors: [\"http://m/v2/x\"]\n":     `mirror "http://m/v2/x"`,
		"docker.io/library:\n  insecure: true\n":           "not a registry host",
		"r.example:\n  cert: " + cert + "\n":               "both cert and key",
		"r.example:\n  ca: /nonexistent/ca.pem\n":          "/nonexistent/ca.pem",
		"r.example:\n  ca: " + notPEM + "\n":               "holds no PEM certificate",
		"r.example:\n  cert: " + cert + "\n  key: " + cert: "client certificate",
		"- a list\n": "registry settings",
	} {
		if _, err := client.LoadHosts(writeHosts(t, yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", yaml, err, want)
		}
	}
	if _, err := client.LoadHosts(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a named settings file that is missing is not an error")
	}
}
