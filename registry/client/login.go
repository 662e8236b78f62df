package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/image/reference"
	credhelper "github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
)

// Login checks user and password against a registry (a /v2/ request that
// must authenticate, as docker login makes) and returns nil if they work.
// The client keeps them as its credentials.
func (c *Client) Login(ctx context.Context, registry, user, pass string) error {
	c.Credentials = func(string) (string, string) { return user, pass }
	r := &Repo{c: c, registry: registry}
	resp, err := r.do(ctx, http.MethodGet, "", nil, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login to %s: %s", registry, resp.Status)
	}
	return nil
}

// RegistryOf is the registry a login is for: "docker.io" for Docker Hub
// (and for no argument), else the host as given.
func RegistryOf(s string) string {
	if s == "" {
		return reference.DefaultDomain
	}
	if r, err := reference.ParseNormalized(s + "/x"); err == nil {
		return r.Domain
	}
	return s
}

// SaveDockerConfigAuth records (or with user "", removes) a registry's
// credentials as docker login does: in the credential helper the
// config.json names for the registry, if any, else in its auths, keeping
// everything else in the file. The file is private (0600).
func SaveDockerConfigAuth(path, registry, user, pass string) error {
	path = dockerConfigPath(path)
	cfg := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	auths, _ := cfg["auths"].(map[string]any)
	if auths == nil {
		auths = map[string]any{}
	}
	key := registry
	if registry == reference.DefaultDomain {
		key = dockerHubKey
	}
	known, _ := readDockerConfig(path)
	if helper := known.helper(registry); helper != "" {
		prog := credhelper.NewShellProgramFunc("docker-credential-" + helper)
		var err error
		if user == "" {
			if err = credhelper.Erase(prog, key); credentials.IsErrCredentialsNotFound(err) {
				err = nil
			}
		} else {
			err = credhelper.Store(prog, &credentials.Credentials{ServerURL: key, Username: user, Secret: pass})
		}
		if err != nil {
			return fmt.Errorf("credential helper docker-credential-%s: %w", helper, err)
		}
		// The file keeps an empty entry, as docker's does: the
		// registry is logged in to, its secret is elsewhere.
		if user == "" {
			delete(auths, key)
		} else {
			auths[key] = map[string]string{}
		}
	} else if user == "" {
		delete(auths, key)
	} else {
		auths[key] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
	}
	cfg["auths"] = auths
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes it 0600; the passwords in it stay private.
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
