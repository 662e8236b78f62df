package reference

import (
	"errors"
	"strings"
	"testing"
)

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestNormalizationIsDockers(t *testing.T) {
	for in, want := range map[string][2]string{ // full, familiar
		"busybox":                         {"docker.io/library/busybox", "busybox"},
		"busybox:1.36":                    {"docker.io/library/busybox:1.36", "busybox:1.36"},
		"library/busybox":                 {"docker.io/library/busybox", "busybox"},
		"docker.io/busybox":               {"docker.io/library/busybox", "busybox"},
		"index.docker.io/library/busybox": {"docker.io/library/busybox", "busybox"},
		"user/app":                        {"docker.io/user/app", "user/app"},
		"docker.io/library/a/b":           {"docker.io/library/a/b", "library/a/b"},
		"localhost/app":                   {"localhost/app", "localhost/app"},
		"localhost:5000/app:v1":           {"localhost:5000/app:v1", "localhost:5000/app:v1"},
		"127.0.0.1:5000/a/b/c":            {"127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c"},
		"[::1]:5000/app":                  {"[::1]:5000/app", "[::1]:5000/app"},
		"ghcr.io/org/app:v1.2_3-x":        {"ghcr.io/org/app:v1.2_3-x", "ghcr.io/org/app:v1.2_3-x"},
		"Registry.Example.COM/app":        {"Registry.Example.COM/app", "Registry.Example.COM/app"},
		"a__b/c-d--e.f_g":                 {"docker.io/a__b/c-d--e.f_g", "a__b/c-d--e.f_g"},
		"busybox@sha256:" + hex64:         {"docker.io/library/busybox@sha256:" + hex64, "busybox@sha256:" + hex64},
		"busybox:1@sha256:" + hex64:       {"docker.io/library/busybox:1@sha256:" + hex64, "busybox:1@sha256:" + hex64},
	} {
		r, err := ParseNormalized(in)
		if err != nil {
			t.Errorf("ParseNormalized(%q): %v", in, err)
			continue
		}
		if r.String() != want[0] || r.Familiar() != want[1] {
			t.Errorf("ParseNormalized(%q) = %q, familiar %q; want %q, %q", in, r.String(), r.Familiar(), want[0], want[1])
		}
	}
}

func TestBadReferencesAreRefusedWithTheReason(t *testing.T) {
	for in, why := range map[string]string{
		"":                                      "empty",
		"UPPER":                                 "lowercase",
		"user/App":                              "lowercase",
		"a b":                                   "path component",
		"x:":                                    "tag",
		"x:-bad":                                "tag",
		"x:" + strings.Repeat("t", 129):         "tag",
		"@sha256:" + hex64:                      "no repository name",
		"busybox@sha256:abc":                    "digest",
		"busybox@md5:" + hex64:                  "digest",
		hex64:                                   "image ID",
		"a..b/c":                                "registry",
		"-host.com/app":                         "registry",
		"host.com:/app":                         "registry",
		"host.com:5x/app":                       "registry",
		"app/":                                  "path component",
		"a/-b":                                  "path component",
		"a/b.":                                  "path component",
		"a/b...c":                               "path component",
		"docker.io/" + strings.Repeat("a", 250): "longer than",
	} {
		_, err := ParseNormalized(in)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseNormalized(%q): %v; want ErrFormat saying %q", in, err, why)
		}
	}
}

func TestDefaultTag(t *testing.T) {
	r, _ := ParseNormalized("busybox")
	if got := r.WithDefaultTag().String(); got != "docker.io/library/busybox:latest" {
		t.Fatal(got)
	}
	r, _ = ParseNormalized("busybox@sha256:" + hex64)
	if got := r.WithDefaultTag(); got.Tag != "" {
		t.Fatalf("a digest reference got tag %q", got.Tag)
	}
}

func FuzzParseNormalized(f *testing.F) {
	for _, s := range []string{"busybox", "localhost:5000/a/b:c@sha256:" + hex64, "[::1]/x", "A/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseNormalized(s)
		if err != nil {
			return
		}
		// A normalized reference parses to itself.
		again, err := ParseNormalized(r.String())
		if err != nil || again != r {
			t.Fatalf("%q normalized to %q, which parses to %+v (%v)", s, r.String(), again, err)
		}
		if fam, err := ParseNormalized(r.Familiar()); err != nil || fam != r {
			t.Fatalf("%q: familiar %q parses to %+v (%v)", s, r.Familiar(), fam, err)
		}
	})
}
