package client_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/registry/client"
)

// credentialHelper installs docker-credential-berthtest on PATH: a
// helper speaking the docker-credential-helpers protocol (get, store,
// erase on stdin and stdout) that keeps each secret in a file of dir.
func credentialHelper(t *testing.T) (dir string) {
	t.Helper()
	bin, dir := t.TempDir(), t.TempDir()
	script := `#!/bin/sh
store=` + dir + `
key() { printf '%s' "$1" | md5sum | cut -d' ' -f1; }
case "$1" in
get)
	url=$(cat)
	f="$store/$(key "$url")"
	[ -f "$f" ] || { echo "credentials not found in native keychain"; exit 1; }
	cat "$f" ;;
store)
	json=$(cat)
	url=$(printf '%s' "$json" | sed 's/.*"ServerURL":"\([^"]*\)".*/\1/')
	printf '%s' "$json" > "$store/$(key "$url")" ;;
erase)
	url=$(cat)
	f="$store/$(key "$url")"
	[ -f "$f" ] || { echo "credentials not found in native keychain"; exit 1; }
	rm "$f" ;;
*) exit 2 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-berthtest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return dir
}

// With credsStore or credHelpers in config.json, login keeps the secret
// in the helper (the file gets an empty entry, as docker writes), pull
// and push read it from there, and logout erases it.
func TestCredentialHelpersKeepTheSecrets(t *testing.T) {
	store := credentialHelper(t)
	for name, cfg := range map[string]string{
		"credsStore":  `{"credsStore": "berthtest"}`,
		"credHelpers": `{"credHelpers": {"reg.example:5000": "berthtest", "https://index.docker.io/v1/": "berthtest"}, "auths": {"elsewhere.example": {"auth": "Ym9iOnB3"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			os.WriteFile(path, []byte(cfg), 0o600)
			creds := client.DockerConfigCredentials(path)
			for _, reg := range []string{"reg.example:5000", "docker.io"} {
				if u, p := creds(reg); u != "" || p != "" {
					t.Fatalf("%s before login: %q %q", reg, u, p)
				}
				if err := client.SaveDockerConfigAuth(path, reg, "alice", "s3cret-"+reg); err != nil {
					t.Fatal(err)
				}
				if u, p := creds(reg); u != "alice" || p != "s3cret-"+reg {
					t.Fatalf("%s after login: %q %q", reg, u, p)
				}
			}
			// Docker Hub's token service asks with the registry's
			// real host name.
			if u, _ := creds("registry-1.docker.io"); u != "alice" {
				t.Fatalf("registry-1.docker.io: %q", u)
			}
			b, _ := os.ReadFile(path)
			if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "YWxpY2") || !strings.Contains(string(b), `"reg.example:5000": {}`) {
				t.Fatalf("config.json holds a secret or lacks the empty entry:\n%s", b)
			}
			if name == "credHelpers" {
				if u, p := creds("elsewhere.example"); u != "bob" || p != "pw" {
					t.Fatalf("a host without a helper: %q %q", u, p)
				}
			}
			for _, reg := range []string{"reg.example:5000", "docker.io"} {
				if err := client.SaveDockerConfigAuth(path, reg, "", ""); err != nil {
					t.Fatal(err)
				}
				if u, _ := creds(reg); u != "" {
					t.Fatalf("%s after logout: %q", reg, u)
				}
			}
			if left, _ := os.ReadDir(store); len(left) != 0 {
				t.Fatalf("the helper still keeps %d secrets", len(left))
			}
		})
	}
}

// A helper that is named but not installed is an error at login, naming
// it; reading falls back to the file's auths.
func TestMissingCredentialHelperIsNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{"credsStore": "nonexistent-helper", "auths": {"r.example": {"auth": "Ym9iOnB3"}}}`), 0o600)
	err := client.SaveDockerConfigAuth(path, "r.example", "alice", "x")
	if err == nil || !strings.Contains(err.Error(), "docker-credential-nonexistent-helper") {
		t.Fatalf("login with a missing helper: %v", err)
	}
	if u, p := client.DockerConfigCredentials(path)("r.example"); u != "bob" || p != "pw" {
		t.Fatalf("read with a missing helper: %q %q", u, p)
	}
}
