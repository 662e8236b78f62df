// Package client talks to registries as Docker and containerd do: the
// /v2/ API with Bearer token (WWW-Authenticate challenge, scopes,
// anonymous tokens) or Basic auth, credentials from a Docker-style
// config.json, HTTPS with the system's CAs or plain HTTP where allowed,
// mirrors for a registry, and fetches that resume with Range and retry.
package client

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/image/reference"
	credhelper "github.com/docker/docker-credential-helpers/client"
)

// Client is a registry client.
type Client struct {
	// Hosts configure registries by name ("docker.io", "localhost:5000").
	Hosts map[string]Host
	// Credentials gives the user and password for a registry host, if
	// any; DockerConfigCredentials reads them from ~/.docker/config.json.
	Credentials func(host string) (user, pass string)
	// Insecure allows plain HTTP and unverified TLS for every registry.
	Insecure bool
	// UserAgent names the client.
	UserAgent string
	// ChunkSize is the PATCH size of pushes of larger blobs (0:
	// DefaultChunkSize).
	ChunkSize int64
	// StallTimeout bounds how long a download may receive nothing
	// (0: DefaultStallTimeout).
	StallTimeout time.Duration

	httpc   *http.Client
	insecc  *http.Client
	hostc   map[string]*http.Client // per host with its own TLS settings
	mu      sync.Mutex
	tokens  map[string]string // host + scope -> Authorization value
	schemes map[string]string // endpoint host -> scheme that answered
}

// New returns a client with sane timeouts: connect and header waits are
// bounded, a body may take as long as it keeps moving (see Fetch).
func New() *Client {
	dial := (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment, DialContext: dial, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 15 * time.Second, ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
	}
	insecure := tr.Clone()
	insecure.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for registries the user marked insecure
	redirects := func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return fmt.Errorf("stopped after %d redirects (a redirect loop?)", len(via))
		}
		// Never from HTTPS to plain HTTP: the request's headers would
		// follow in clear text.
		if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("refused a redirect from %s to plain HTTP (%s)", via[0].URL.Host, req.URL.Host)
		}
		return nil
	}
	return &Client{
		UserAgent: "berth",
		httpc:     &http.Client{Transport: tr, CheckRedirect: redirects},
		insecc:    &http.Client{Transport: insecure, CheckRedirect: redirects},
		tokens:    map[string]string{},
		schemes:   map[string]string{},
	}
}

// DockerConfigCredentials reads credentials as docker does from its
// config.json ($DOCKER_CONFIG/config.json, else ~/.docker/config.json):
// from the credential helper named for the host (credHelpers) or for all
// (credsStore), else from the "auth" entries docker login writes.
func DockerConfigCredentials(path string) func(host string) (string, string) {
	path = dockerConfigPath(path)
	return func(host string) (string, string) {
		cfg, err := readDockerConfig(path)
		if err != nil {
			return "", ""
		}
		keys := []string{host, "https://" + host, "http://" + host}
		if host == reference.DefaultDomain || host == "registry-1.docker.io" {
			keys = []string{dockerHubKey, "index.docker.io", reference.DefaultDomain}
		}
		if helper := cfg.helper(host); helper != "" {
			c, err := credhelper.Get(credhelper.NewShellProgramFunc("docker-credential-"+helper), keys[0])
			// "<token>" marks an identity token, for an OAuth flow
			// Berth does not speak: as good as none.
			if err == nil && c.Username != "" && c.Username != "<token>" {
				return c.Username, c.Secret
			}
		}
		for _, k := range keys {
			a, ok := cfg.Auths[k]
			if !ok {
				continue
			}
			if a.Auth != "" {
				raw, err := base64.StdEncoding.DecodeString(a.Auth)
				if err == nil {
					if u, p, ok := strings.Cut(string(raw), ":"); ok {
						return u, p
					}
				}
			}
			if a.Username != "" {
				return a.Username, a.Password
			}
		}
		return "", ""
	}
}

// dockerHubKey is the name docker keeps Docker Hub's credentials under.
const dockerHubKey = "https://index.docker.io/v1/"

// dockerConfig is what Berth reads of Docker's config.json.
type dockerConfig struct {
	Auths map[string]struct {
		Auth     string `json:"auth"`
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auths"`
	CredsStore  string            `json:"credsStore"`
	CredHelpers map[string]string `json:"credHelpers"`
}

func readDockerConfig(path string) (dockerConfig, error) {
	var cfg dockerConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// helper is the credential helper that keeps registry's credentials
// ("" if the file's auths do).
func (c dockerConfig) helper(registry string) string {
	if registry == "registry-1.docker.io" {
		registry = reference.DefaultDomain
	}
	keys := []string{registry}
	if registry == reference.DefaultDomain {
		keys = []string{dockerHubKey, "index.docker.io", reference.DefaultDomain}
	}
	for _, k := range keys {
		if h := c.CredHelpers[k]; h != "" {
			return h
		}
	}
	return c.CredsStore
}

// dockerConfigPath is path, or Docker's config.json: $DOCKER_CONFIG's, else
// ~/.docker's.
func dockerConfigPath(path string) string {
	if path != "" {
		return path
	}
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".docker")
	}
	return filepath.Join(dir, "config.json")
}

// endpoints are where a registry's API is, mirrors first: hosts as
// "host[:port]" with the scheme to try ("" means https, then http where
// plain HTTP is allowed).
func (c *Client) endpoints(registry string, pull bool) []string {
	var out []string
	if h, ok := c.Hosts[registry]; ok && pull {
		out = append(out, h.Mirrors...)
	}
	host := registry
	if registry == reference.DefaultDomain {
		host = "registry-1.docker.io"
	}
	return append(out, host)
}

func (c *Client) insecure(registry string) bool {
	if c.Insecure || c.Hosts[registry].Insecure {
		return true
	}
	// Docker allows plain HTTP to loopback registries without asking.
	h := registry
	if hh, _, err := net.SplitHostPort(registry); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Repo is one repository of a registry, as requests go to it.
type Repo struct {
	c        *Client
	registry string // as named in the reference: auth and hosts config
	path     string
	pull     bool
}

// Repository returns a handle on ref's repository. pull chooses whether
// mirrors may serve it.
func (c *Client) Repository(ref reference.Reference, pull bool) *Repo {
	return &Repo{c: c, registry: ref.Domain, path: ref.Path, pull: pull}
}

// ErrNotFound: the registry has no such manifest or blob.
var ErrNotFound = errors.New("not found in the registry")

// do sends a request for path (below /v2/<repo>/) to the first endpoint
// that answers, authenticating as challenged. The caller closes the body.
func (r *Repo) do(ctx context.Context, method, path string, hdr http.Header, body func() io.Reader) (*http.Response, error) {
	var errs []error
	eps := r.c.endpoints(r.registry, r.pull)
	for i, ep := range eps {
		resp, err := r.doAt(ctx, ep, method, path, hdr, body)
		if err == nil {
			// A mirror that lacks the content or fails leaves it to
			// the next endpoint, as docker and containerd do.
			if i < len(eps)-1 && (resp.StatusCode == http.StatusNotFound || resp.StatusCode >= 500) {
				resp.Body.Close()
				errs = append(errs, fmt.Errorf("mirror %s: %s", ep, resp.Status))
				continue
			}
			return resp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (r *Repo) doAt(ctx context.Context, ep, method, path string, hdr http.Header, body func() io.Reader) (*http.Response, error) {
	scheme, host := "", ep
	if u, err := url.Parse(ep); err == nil && u.Scheme != "" && u.Host != "" {
		scheme, host = u.Scheme, u.Host
	}
	insecure := r.c.insecure(r.registry) || r.c.insecure(host) || scheme == "http"
	schemes := []string{"https"}
	switch {
	case scheme != "":
		schemes = []string{scheme}
	case insecure:
		r.c.mu.Lock()
		known := r.c.schemes[host]
		r.c.mu.Unlock()
		if known != "" {
			schemes = []string{known}
		} else {
			schemes = []string{"https", "http"}
		}
	}
	var lastErr error
	for _, s := range schemes {
		u := s + "://" + host + "/v2/"
		if r.path != "" {
			u += r.path + "/" + path
		}
		resp, err := r.send(ctx, host, method, u, hdr, body, insecure, -1)
		if err != nil {
			lastErr = err
			var he *httpError
			if errors.As(err, &he) || tlsRefused(err) {
				// The server answered, or speaks TLS: no plain-HTTP
				// retry, which would resend credentials in clear text
				// (and hide why TLS failed).
				break
			}
			continue
		}
		r.c.mu.Lock()
		r.c.schemes[host] = s
		r.c.mu.Unlock()
		return resp, nil
	}
	return nil, lastErr
}

// send sends one request, answering one authentication challenge.
func (r *Repo) send(ctx context.Context, host, method, u string, hdr http.Header, body func() io.Reader, insecure bool, size int64) (*http.Response, error) {
	httpc, err := r.c.httpClient(host, insecure)
	if err != nil {
		return nil, err
	}
	scope := "repository:" + r.path + ":pull"
	if method != http.MethodGet && method != http.MethodHead {
		scope = "repository:" + r.path + ":pull,push"
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = body()
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return nil, err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		if size >= 0 {
			req.ContentLength = size
		}
		req.Header.Set("User-Agent", r.c.UserAgent)
		// Tokens are keyed by scheme, host and port: one got over
		// HTTPS never goes out over plain HTTP.
		key := req.URL.Scheme + "://" + req.URL.Host + " " + scope
		r.c.mu.Lock()
		if a := r.c.tokens[key]; a != "" {
			req.Header.Set("Authorization", a)
		}
		r.c.mu.Unlock()
		resp, err := httpc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, u, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			if resp.StatusCode == http.StatusUnauthorized {
				resp.Body.Close()
				return nil, &httpError{fmt.Errorf("%s %s: unauthorized: the registry refused the credentials (berth login %s?)", method, u, r.registry)}
			}
			return resp, nil
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		resp.Body.Close()
		auth, err := r.authorize(ctx, httpc, req.URL, challenge, scope)
		if err != nil {
			return nil, &httpError{fmt.Errorf("%s %s: %w", method, u, err)}
		}
		r.c.mu.Lock()
		r.c.tokens[key] = auth
		r.c.mu.Unlock()
	}
}

// authorize answers a WWW-Authenticate challenge with an Authorization
// header value: Basic with the registry's credentials, or a Bearer token
// from the challenge's realm (anonymous if there are no credentials).
func (r *Repo) authorize(ctx context.Context, httpc *http.Client, from *url.URL, challenge, scope string) (string, error) {
	kind, params := parseChallenge(challenge)
	// The credentials of the host that challenged, not of the registry
	// the image is named after: a mirror or an upload Location on
	// another host must not receive the registry's password.
	credHost := from.Host
	if credHost == "registry-1.docker.io" {
		credHost = reference.DefaultDomain
	}
	user, pass := "", ""
	if r.c.Credentials != nil {
		user, pass = r.c.Credentials(credHost)
	}
	switch strings.ToLower(kind) {
	case "basic":
		if user == "" {
			return "", fmt.Errorf("the registry wants a user name and password: berth login %s", r.registry)
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), nil
	case "bearer":
		realm := params["realm"]
		ru, err := url.Parse(realm)
		if err != nil || realm == "" || (ru.Scheme != "https" && ru.Scheme != "http") {
			return "", fmt.Errorf("the registry's Bearer challenge has no usable realm (%q)", challenge)
		}
		if from.Scheme == "https" && ru.Scheme != "https" && !r.c.insecure(ru.Host) {
			return "", fmt.Errorf("refused a token realm over plain HTTP (%s) for a registry on HTTPS", realm)
		}
		// The token service answers within a minute or not at all.
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		q := ru.Query()
		if s := params["service"]; s != "" {
			q.Set("service", s)
		}
		if s := params["scope"]; s != "" {
			scope = s
		}
		if r.path != "" || params["scope"] != "" {
			// A login's /v2/ asks for no repository.
			q.Set("scope", scope)
		}
		ru.RawQuery = q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ru.String(), nil)
		if err != nil {
			return "", err
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return "", fmt.Errorf("token from %s: %w", ru.Host, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("token from %s: %s", ru.Host, resp.Status)
		}
		var tok struct {
			Token       string `json:"token"`
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
			return "", fmt.Errorf("token from %s: %w", ru.Host, err)
		}
		t := tok.Token
		if t == "" {
			t = tok.AccessToken
		}
		if t == "" {
			return "", fmt.Errorf("token from %s: the answer holds no token", ru.Host)
		}
		return "Bearer " + t, nil
	}
	return "", fmt.Errorf("the registry answered 401 without a challenge Berth can answer (%q)", challenge)
}

// parseChallenge splits `Bearer realm="...",service="...",scope="..."`.
func parseChallenge(h string) (string, map[string]string) {
	kind, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				params[k] = v[1:]
				break
			}
			params[k] = v[1 : end+1]
			rest = v[end+2:]
		} else {
			val, after, _ := strings.Cut(v, ",")
			params[k] = strings.TrimSpace(val)
			rest = after
		}
	}
	return kind, params
}

// httpError is a failure after the server answered (as opposed to a
// connection or TLS failure): no other scheme is tried after it.
type httpError struct{ error }

func (e *httpError) Unwrap() error { return e.error }
