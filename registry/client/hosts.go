package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// DefaultHostsFile is where Berth reads per-registry settings when no
// other file is named; its absence is not an error.
const DefaultHostsFile = "/etc/berth/registries.yaml"

// Host is how to reach one registry, as containerd's hosts.toml says it.
type Host struct {
	// Mirrors are tried first, in order (e.g. "http://127.0.0.1:5000"),
	// for pulls; pushes go to the registry itself.
	Mirrors []string `json:"mirrors,omitempty"`
	// Insecure allows plain HTTP and certificates that do not verify.
	Insecure bool `json:"insecure,omitempty"`
	// CA is a PEM file of the CAs that sign the registry's certificate,
	// trusted besides the system's (a self-signed registry).
	CA string `json:"ca,omitempty"`
	// Cert and Key are a client certificate and key (PEM) that the
	// registry asks for.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// LoadHosts reads a YAML file of Host settings keyed by registry name
// ("docker.io", "registry.k8s.io", "localhost:5000"; a mirror's own TLS
// settings go under its host:port):
//
//	docker.io:
//	  mirrors: ["http://127.0.0.1:5000"]
//	registry.example.com:
//	  ca: /etc/berth/certs/example-ca.pem
//
// An empty path reads DefaultHostsFile if it exists.
func LoadHosts(path string) (map[string]Host, error) {
	optional := path == ""
	if optional {
		path = DefaultHostsFile
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if optional && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("registry settings: %w", err)
	}
	var hosts map[string]Host
	if err := yaml.UnmarshalStrict(b, &hosts); err != nil {
		return nil, fmt.Errorf("registry settings %s: %w", path, err)
	}
	for name, h := range hosts {
		if name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("registry settings %s: %q is not a registry host (host or host:port)", path, name)
		}
		for _, m := range h.Mirrors {
			u, err := url.Parse(m)
			if err != nil || (u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https") || (u.Scheme != "" && u.Host == "") || (u.Path != "" && u.Path != "/") {
				return nil, fmt.Errorf("registry settings %s: %s: mirror %q is not [http[s]://]host[:port]", path, name, m)
			}
		}
		if (h.Cert == "") != (h.Key == "") {
			return nil, fmt.Errorf("registry settings %s: %s: a client certificate needs both cert and key", path, name)
		}
		if _, err := h.tlsConfig(); err != nil {
			return nil, fmt.Errorf("registry settings %s: %s: %w", path, name, err)
		}
	}
	return hosts, nil
}

// tlsConfig is the TLS configuration h asks for, nil for the default.
func (h Host) tlsConfig() (*tls.Config, error) {
	if h.CA == "" && h.Cert == "" && !h.Insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: h.Insecure} //nolint:gosec // only where the user said so
	if h.CA != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(h.CA)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca %s holds no PEM certificate", h.CA)
		}
		cfg.RootCAs = pool
	}
	if h.Cert != "" {
		pair, err := tls.LoadX509KeyPair(h.Cert, h.Key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// httpClient is the HTTP client for an endpoint host: its own TLS
// settings if the hosts file gives some, else the shared clients. A host
// with its own CA is verified with it even on loopback, where plain HTTP
// and any certificate are otherwise allowed: only an explicit insecure
// skips that.
func (c *Client) httpClient(host string, insecure bool) (*http.Client, error) {
	h, ok := c.Hosts[host]
	if !ok || (h.CA == "" && h.Cert == "") {
		if insecure {
			return c.insecc, nil
		}
		return c.httpc, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc := c.hostc[host]; hc != nil {
		return hc, nil
	}
	cfg, err := h.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	cfg.InsecureSkipVerify = h.Insecure || c.Insecure //nolint:gosec // only where the user said so
	tr := c.httpc.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	hc := &http.Client{Transport: tr, CheckRedirect: c.httpc.CheckRedirect}
	if c.hostc == nil {
		c.hostc = map[string]*http.Client{}
	}
	c.hostc[host] = hc
	return hc, nil
}

// tlsRefused tells whether err is a TLS failure with a server that
// speaks TLS: a certificate that does not verify, or an alert (such as a
// client certificate required). Plain HTTP is not tried after one.
func tlsRefused(err error) bool {
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var op *net.OpError // an alert from the server: Op "remote error"
	return errors.As(err, &alert) || errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		(errors.As(err, &op) && op.Op == "remote error")
}
