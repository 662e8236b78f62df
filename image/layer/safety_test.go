package layer

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostile returns f with the header's owner, mode and an xattr set to what
// would show if they were applied to something outside.
func hostile(e entry) entry {
	return e.with(func(h *tar.Header) {
		h.Uid, h.Gid = 4242, 4242
		h.Mode = 0o6777
		h.Format = tar.FormatPAX
		h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.pwned": "1", "SCHILY.xattr.user.pwned": "1"}
	})
}

// lowerLinks are symlinks a lower layer left in the target, pointing out,
// with the directories they point to, inside the target.
func lowerLinks(t *testing.T, s *sandbox) {
	for _, d := range []string{s.parent, s.outside} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{
		"lower-abs":  s.parent,
		"lower-rel":  "../..",
		"lower-root": "/",
		"lower-file": s.sentinel,
	} {
		if err := os.Symlink(target, filepath.Join(s.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMaliciousLayers(t *testing.T) {
	type tc struct {
		name    string
		layer   func(s *sandbox) []entry
		wantErr string // "" if it must apply, "-" if either is fine
		// inside are files that must have been written inside the
		// target, where the hostile names resolve.
		inside func(s *sandbox, overlay bool) []string
	}
	pwn := func(name string) entry { return hostile(reg(name, "pwned")) }
	cases := []tc{
		{name: "dotdot", wantErr: "climbs out",
			layer: func(s *sandbox) []entry { return []entry{pwn("../sentinel")} }},
		{name: "deep dotdot", wantErr: "climbs out",
			layer: func(s *sandbox) []entry { return []entry{pwn("a/b/../../../sentinel")} }},
		{name: "dotdot dir", wantErr: "climbs out",
			layer: func(s *sandbox) []entry { return []entry{hostile(directory("../victim"))} }},
		{name: "dotdot symlink", wantErr: "climbs out",
			layer: func(s *sandbox) []entry { return []entry{sym("../sentinel-link", "/etc/passwd")} }},
		{name: "absolute name",
			layer:  func(s *sandbox) []entry { return []entry{pwn(s.sentinel), hostile(directory(s.victimDir))} },
			inside: func(s *sandbox, _ bool) []string { return []string{rel(s.sentinel)} }},
		{name: "through symlink to /",
			layer: func(s *sandbox) []entry {
				return []entry{sym("a", "/"), pwn("a" + s.sentinel), pwn("a" + s.far), hostile(directory("a" + s.victimDir))}
			},
			inside: func(s *sandbox, _ bool) []string { return []string{rel(s.sentinel), rel(s.far)} }},
		{name: "through symlink to ../../..",
			layer: func(s *sandbox) []entry {
				return []entry{sym("a", "../../.."), pwn("a/sentinel"), pwn("a/a/a/sentinel2")}
			},
			inside: func(s *sandbox, _ bool) []string { return []string{"sentinel", "sentinel2"} }},
		{name: "through symlink to the parent's absolute path",
			layer: func(s *sandbox) []entry {
				return []entry{directory(s.parent), sym("a", s.parent), pwn("a/sentinel"), hostile(directory("a/victim")), pwn("a/victim/inside")}
			},
			inside: func(s *sandbox, _ bool) []string { return []string{rel(s.sentinel), rel(s.victimDir) + "/inside"} }},
		// inroot creates no directory through a symlink whose target is
		// missing.
		{name: "through a dangling symlink", wantErr: "not a directory",
			layer: func(s *sandbox) []entry { return []entry{sym("a", s.victimDir), pwn("a/inside")} }},
		{name: "through a chain of symlinks",
			layer: func(s *sandbox) []entry {
				return []entry{sym("a", "b/c"), sym("b", "."), sym("c", "d/.."), directory("d"), sym("e", "a/../../.."), pwn("e/sentinel")}
			},
			inside: func(s *sandbox, _ bool) []string { return []string{"sentinel"} }},
		{name: "through a symlink in a later directory",
			layer: func(s *sandbox) []entry {
				return []entry{directory("x"), sym("x/y", "../../../.."), pwn("x/y/sentinel"), pwn("x/y/x/y/sentinel2")}
			},
			inside: func(s *sandbox, _ bool) []string { return []string{"sentinel", "sentinel2"} }},
		{name: "file over symlinks pointing out",
			layer: func(s *sandbox) []entry {
				return []entry{sym("abs", s.sentinel), pwn("abs"), sym("rel", "../sentinel"), pwn("rel"), sym("dangling", s.parent+"/new"), pwn("dangling")}
			}},
		{name: "directory over a symlink pointing out",
			layer: func(s *sandbox) []entry {
				return []entry{sym("v", s.victimDir), hostile(directory("v")), pwn("v/inside"), sym("w", "../victim"), hostile(directory("w"))}
			}},
		{name: "nodes over symlinks pointing out",
			layer: func(s *sandbox) []entry {
				return []entry{
					sym("f", s.sentinel), hostile(node("f", tar.TypeFifo, 0, 0)),
					sym("c", s.sentinel), hostile(node("c", tar.TypeChar, 1, 3)),
					sym("s", s.sentinel), hostile(sym("s", "x")),
					reg("h", "h"), sym("l", s.sentinel), hostile(hard("l", "h")),
				}
			}},
		{name: "metadata of symlinks pointing out",
			layer: func(s *sandbox) []entry {
				return []entry{hostile(sym("abs", s.sentinel)), hostile(sym("dir", s.victimDir)), hostile(sym("rel", "../sentinel"))}
			}},
		{name: "root is a symlink", wantErr: "root",
			layer: func(s *sandbox) []entry { return []entry{sym("./", s.parent), pwn("sentinel")} }},
		{name: "hardlink to dotdot", wantErr: "climbs out",
			layer: func(s *sandbox) []entry { return []entry{hard("h", "../sentinel")} }},
		{name: "hardlink to an absolute host path", wantErr: "does not exist",
			layer: func(s *sandbox) []entry { return []entry{hard("h", s.sentinel)} }},
		{name: "hardlink through a symlink to /", wantErr: "does not exist",
			layer: func(s *sandbox) []entry { return []entry{sym("a", "/"), hard("h", "a"+s.sentinel)} }},
		{name: "hardlink through a symlink to the parent", wantErr: "does not exist",
			layer: func(s *sandbox) []entry { return []entry{sym("p", s.parent), hard("h", "p/sentinel")} }},
		{name: "hardlink through a symlink to ..", wantErr: "does not exist",
			layer: func(s *sandbox) []entry { return []entry{sym("u", ".."), hard("h", "u/sentinel")} }},
		{name: "hardlink to a symlink pointing out, then through it",
			layer: func(s *sandbox) []entry {
				return []entry{directory(s.parent), sym("s", s.parent), hard("h", "s"), pwn("h/sentinel")}
			},
			inside: func(s *sandbox, _ bool) []string { return []string{rel(s.sentinel)} }},
		{name: "whiteout of dotdot", wantErr: "names no file",
			layer: func(s *sandbox) []entry { return []entry{reg(".wh...", "")} }},
		{name: "whiteout of dot", wantErr: "names no file",
			layer: func(s *sandbox) []entry { return []entry{reg("a/.wh..", "")} }},
		{name: "whiteout of nothing", wantErr: "names no file",
			layer: func(s *sandbox) []entry { return []entry{reg(".wh.", "")} }},
		{name: "whiteout in dotdot", wantErr: "climbs out",
			layer: func(s *sandbox) []entry { return []entry{reg("../.wh.sentinel", "")} }},
		{name: "whiteout directory", wantErr: "whiteout's name",
			layer: func(s *sandbox) []entry { return []entry{reg(".wh.a/sentinel", "")} }},
		{name: "whiteouts through symlinks",
			layer: func(s *sandbox) []entry {
				return []entry{
					directory(s.parent),
					sym("up", ".."), whiteout("up/sentinel"), whiteout("up/victim"),
					sym("abs", s.parent), whiteout("abs/sentinel"), whiteout("abs/victim"),
					sym("root", "/"), whiteout("root" + s.sentinel), whiteout("root" + s.far),
					whiteout("lower-abs/sentinel"), whiteout("lower-rel/victim"), whiteout("lower-root" + s.far),
					whiteout("lower-file"), whiteout("lower-abs"),
				}
			}},
		{name: "opaque through symlinks",
			layer: func(s *sandbox) []entry {
				return []entry{
					directory(s.parent),
					sym("abs", s.parent), opaque("abs"), sym("up", "../.."), opaque("up"),
					opaque("lower-abs"), opaque("lower-rel"), opaque("lower-root"), opaque("lower-root" + s.parent),
				}
			}},
		{name: "through lower symlinks",
			layer: func(s *sandbox) []entry {
				return []entry{
					pwn("lower-abs/sentinel"), pwn("lower-rel/sentinel"), pwn("lower-root" + s.far),
					hostile(directory("lower-abs/victim")), pwn("lower-file"),
					hard("h", "lower-abs/sentinel"),
				}
			},
			inside: func(s *sandbox, overlay bool) []string {
				if overlay {
					// Each layer alone: no lower symlinks to go through.
					return []string{"lower-abs/sentinel", "lower-rel/sentinel", "lower-root" + s.far}
				}
				return []string{rel(s.sentinel), "sentinel", rel(s.far)}
			}},
		{name: "hardlink into lower symlinks", wantErr: "does not exist",
			layer: func(s *sandbox) []entry { return []entry{hard("h", "lower-rel/sentinel")} }},
	}
	for _, c := range cases {
		for _, overlay := range []bool{false, true} {
			name := c.name + map[bool]string{false: "/apply", true: "/overlay"}[overlay]
			t.Run(name, func(t *testing.T) {
				s := newSandbox(t)
				if !overlay {
					lowerLinks(t, s)
				}
				before := s.snapshot(t)
				_, err := apply(t, s.dir, overlay, c.layer(s)...)
				sameOutside(t, before, s.snapshot(t))
				switch {
				case c.wantErr == "" && err != nil:
					t.Errorf("Apply: %v", err)
				case c.wantErr != "" && c.wantErr != "-" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
					t.Errorf("Apply: %v, want an error saying %q", err, c.wantErr)
				}
				if c.inside != nil && err == nil {
					for _, p := range c.inside(s, overlay) {
						if got := readFile(t, filepath.Join(s.dir, p)); got != "pwned" {
							t.Errorf("%s inside the target: %q", p, got)
						}
					}
				}
			})
		}
	}
}

// TestWhiteoutDeletesInsideOnly checks that whiteouts that reach, through
// symlinks, the places outside where the sentinels are delete the copies
// inside the target instead.
func TestWhiteoutDeletesInsideOnly(t *testing.T) {
	s := newSandbox(t)
	lowerLinks(t, s)
	writeFile(t, filepath.Join(s.dir, "sentinel"), "lower")
	writeFile(t, filepath.Join(s.dir, rel(s.sentinel)), "lower")
	writeFile(t, filepath.Join(s.dir, rel(s.victimDir), "inside"), "lower")
	before := s.snapshot(t)
	mustApply(t, s.dir, false,
		sym("up", "../../.."), whiteout("up/sentinel"),
		whiteout("lower-abs/sentinel"), whiteout("lower-root"+s.victimDir),
	)
	sameOutside(t, before, s.snapshot(t))
	for _, p := range []string{"sentinel", rel(s.sentinel), rel(s.victimDir)} {
		if exists(filepath.Join(s.dir, p)) {
			t.Errorf("%s inside the target survived its whiteout", p)
		}
	}
}

func rel(p string) string { return strings.TrimPrefix(p, "/") }
