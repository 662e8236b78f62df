package server

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Htpasswd reads an htpasswd file of bcrypt entries (htpasswd -B), the
// format distribution's registry takes, and returns a checker for
// Options.Auth.
func Htpasswd(path string) (func(user, pass string) bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		user, hash, ok := strings.Cut(l, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: want user:hash", path, line)
		}
		if !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("%s:%d: user %s: only bcrypt hashes are accepted (htpasswd -B)", path, line, user)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return func(user, pass string) bool {
		h, ok := users[user]
		return ok && bcrypt.CompareHashAndPassword(h, []byte(pass)) == nil
	}, nil
}
