package server

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// TokenAuth is distribution's token authentication: clients fetch a JWT
// from a token service (the realm) for a scope, and the registry checks
// its signature against the service's certificates, its issuer, audience
// and lifetime, and that it grants the actions the request needs.
type TokenAuth struct {
	Realm   string // where clients get tokens
	Service string // the audience tokens must be for
	Issuer  string // who must have issued them
	keys    []crypto.PublicKey
}

// LoadTokenAuth reads the token service's certificates (PEM) from
// bundle.
func LoadTokenAuth(realm, service, issuer, bundle string) (*TokenAuth, error) {
	if realm == "" || service == "" || issuer == "" || bundle == "" {
		return nil, errors.New("token auth needs a realm, a service, an issuer and a root certificate bundle")
	}
	b, err := os.ReadFile(bundle)
	if err != nil {
		return nil, err
	}
	t := &TokenAuth{Realm: realm, Service: service, Issuer: issuer}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bundle, err)
		}
		t.keys = append(t.keys, cert.PublicKey)
	}
	if len(t.keys) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", bundle)
	}
	return t, nil
}

// access is one grant of a token's "access" claim.
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type claims struct {
	jwt.RegisteredClaims
	Access []access `json:"access"`
}

// authorize checks a request's Bearer token for the actions on repo (no
// repo: any valid token, the /v2/ check). On failure it answers 401 with
// the challenge a client answers.
func (t *TokenAuth) authorize(w http.ResponseWriter, req *http.Request, repo string, actions []string) bool {
	challenge := fmt.Sprintf(`Bearer realm=%q,service=%q`, t.Realm, t.Service)
	if repo != "" {
		challenge += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, strings.Join(actions, ","))
	}
	err := t.allowed(req, repo, actions)
	if err == nil {
		return true
	}
	code := codeUnauthorized
	if errors.Is(err, errScope) {
		challenge += `,error="insufficient_scope"`
		code = codeDenied
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, code, err.Error())
	return false
}

var errScope = errors.New("insufficient scope")

// allowed reports whether the request's token grants the actions on repo.
func (t *TokenAuth) allowed(req *http.Request, repo string, actions []string) error {
	raw, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return errors.New("authentication required")
	}
	keys := make([]jwt.VerificationKey, len(t.keys))
	for i, k := range t.keys {
		keys[i] = k
	}
	var c claims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) {
		// Any of the token service's certificates may have signed it.
		return jwt.VerificationKeySet{Keys: keys}, nil
	}, jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "EdDSA"}),
		jwt.WithIssuer(t.Issuer), jwt.WithAudience(t.Service), jwt.WithExpirationRequired())
	if err != nil {
		return fmt.Errorf("invalid token: %w", err)
	}
	for _, want := range actions {
		granted := false
		for _, a := range c.Access {
			if a.Type == "repository" && a.Name == repo && (slices.Contains(a.Actions, want) || slices.Contains(a.Actions, "*")) {
				granted = true
			}
		}
		if !granted {
			return fmt.Errorf("the token does not grant %s on %s: %w", want, repo, errScope)
		}
	}
	return nil
}

// actionsFor is what a request needs on its repository.
func actionsFor(method string) []string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return []string{"pull"}
	case http.MethodDelete:
		return []string{"delete"}
	}
	return []string{"pull", "push"}
}
