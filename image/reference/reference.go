// Package reference parses and normalizes image references the way Docker
// does: "busybox" is docker.io/library/busybox, "localhost:5000/app:v1"
// keeps its registry, a digest pins the content.
//
// The grammar is Docker's (distribution's reference grammar):
//
//	reference  := name [ ":" tag ] [ "@" digest ]
//	name       := [domain "/"] path-component ["/" path-component]*
//	domain     := host [":" port]   host: DNS labels joined by ".", or "[" IPv6 "]"
//	path-component := alnum+ (separator alnum+)*   lower case only
//	separator  := "." | "_" | "__" | "-"+
//	tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//
// It is parsed by hand rather than with github.com/distribution/reference:
// that package compiles its regular expressions when the program starts,
// which cost every run of Berth's one binary, the OCI runtime's included,
// 0.8 ms and half a megabyte, whether it touches an image or not.
package reference

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

const (
	// DefaultDomain is the registry of names without one.
	DefaultDomain = "docker.io"
	// officialPrefix is where the default registry keeps one-component
	// names ("busybox" is library/busybox).
	officialPrefix = "library/"
	legacyDomain   = "index.docker.io"
	// DefaultTag is the tag of a name given without tag or digest.
	DefaultTag = "latest"
	// maxNameLength bounds domain and path together, as registries do.
	maxNameLength = 255
	maxTagLength  = 128
)

// ErrFormat: the string is no image reference.
var ErrFormat = errors.New("invalid reference format")

// Reference is a parsed, normalized image reference.
type Reference struct {
	Domain string        // "docker.io", "localhost:5000"
	Path   string        // "library/busybox"
	Tag    string        // "" if none
	Digest digest.Digest // "" if none
}

// Name is domain and path: the repository.
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full form: name[:tag][@digest].
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar is the short form Docker prints: without docker.io/ and
// library/ ("busybox:latest").
func (r Reference) Familiar() string {
	s := r.Name()
	if r.Domain == DefaultDomain {
		s = r.Path
		if rest, ok := strings.CutPrefix(s, officialPrefix); ok && !strings.Contains(rest, "/") {
			s = rest
		}
	}
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// WithDefaultTag gives a reference with neither tag nor digest the tag
// "latest", as docker pull does.
func (r Reference) WithDefaultTag() Reference {
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r
}

// ParseNormalized parses a reference as a user types it and normalizes it.
func ParseNormalized(s string) (Reference, error) {
	var r Reference
	bad := func(why string) (Reference, error) {
		return Reference{}, fmt.Errorf("%q: %w: %s", s, ErrFormat, why)
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) == 64 && isHex(s) {
		return bad("a 64-digit hexadecimal string is an image ID, not a name")
	}
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		d, err := digest.Parse(rest[i+1:])
		if err != nil {
			return bad("digest: " + err.Error())
		}
		r.Digest = d
		rest = rest[:i]
	}
	// A ":" after the last "/" starts the tag; one before it is a port.
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		r.Tag = rest[i+1:]
		rest = rest[:i]
		if !validTag(r.Tag) {
			return bad("tag " + quote(r.Tag) + ": letters, digits, _ . - (not first), at most 128")
		}
	}
	if rest == "" {
		return bad("no repository name")
	}
	r.Domain, r.Path = DefaultDomain, rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		first := rest[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			r.Domain, r.Path = first, rest[i+1:]
		}
	}
	if r.Domain == legacyDomain {
		r.Domain = DefaultDomain
	}
	if r.Domain == DefaultDomain && !strings.Contains(r.Path, "/") {
		r.Path = officialPrefix + r.Path
	}
	if strings.ToLower(r.Path) != r.Path {
		return bad("repository name must be lowercase")
	}
	if !validDomain(r.Domain) {
		return bad("registry " + quote(r.Domain) + " is not a host name or address with an optional port")
	}
	for _, c := range strings.Split(r.Path, "/") {
		if !validComponent(c) {
			return bad("path component " + quote(c) + ": lower-case letters and digits, separated by . _ __ or -")
		}
	}
	if len(r.Name()) > maxNameLength {
		return bad(fmt.Sprintf("name longer than %d characters", maxNameLength))
	}
	return r, nil
}

func quote(s string) string { return `"` + s + `"` }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func validTag(t string) bool {
	if t == "" || len(t) > maxTagLength || !isWord(t[0]) {
		return false
	}
	for i := 1; i < len(t); i++ {
		if !isWord(t[i]) && t[i] != '.' && t[i] != '-' {
			return false
		}
	}
	return true
}

// validComponent: alnum+ ((. | _ | __ | -+) alnum+)*
func validComponent(c string) bool {
	if c == "" || !isLowerAlnum(c[0]) || !isLowerAlnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); {
		if isLowerAlnum(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !isLowerAlnum(c[j]) {
			j++
		}
		sep := c[i:j]
		if !(sep == "." || sep == "_" || sep == "__" || strings.Trim(sep, "-") == "") {
			return false
		}
		i = j
	}
	return true
}

// validDomain: host [":" port], host a DNS name (labels of letters,
// digits and inner hyphens) or a bracketed IPv6 address.
func validDomain(d string) bool {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 0 || !validIPv6(d[1:end]) {
			return false
		}
		host, port = "", d[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.IndexByte(d, ':'); i >= 0 {
		host, port = d[:i], d[i:]
	}
	if port != "" {
		p := port[1:]
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	if host == "" {
		return strings.HasPrefix(d, "[")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func validIPv6(s string) bool {
	if s == "" || !strings.Contains(s, ":") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
			return false
		}
	}
	return true
}

// ValidRepository reports whether p is a repository path as the OCI
// distribution spec allows it in a URL: lower-case path components
// separated by "/" (no domain, no tag).
func ValidRepository(p string) bool {
	if p == "" || len(p) > maxNameLength {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if !validComponent(c) {
			return false
		}
	}
	return true
}
