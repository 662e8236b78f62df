package runspec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines returns the lines of b that start with prefix.
func lines(b []byte, prefix string) []string {
	var out []string
	for l := range strings.Lines(string(b)) {
		if strings.HasPrefix(l, prefix) {
			out = append(out, strings.TrimRight(l, "\n"))
		}
	}
	return out
}

func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name, host, resolved string
		want                 []string // nameserver, search and options lines
	}{
		{name: "kept as it is", host: "# comment\nnameserver 10.0.0.2\nnameserver 2001:db8::1\nsearch corp.example\noptions ndots:2 edns0\n",
			want: []string{"nameserver 10.0.0.2", "nameserver 2001:db8::1", "search corp.example", "options ndots:2 edns0"}},
		{name: "loopback dropped, the rest kept", host: "nameserver 127.0.0.1\nnameserver ::1\nnameserver 1.1.1.1\nnameserver ::ffff:127.0.1.1\nsearch x\n",
			want: []string{"nameserver 1.1.1.1", "search x"}},
		{name: "only loopback: fallbacks", host: "nameserver 127.0.0.1\nsearch x\n",
			want: []string{"search x", "nameserver 8.8.8.8", "nameserver 8.8.4.4"}},
		{name: "systemd-resolved's stub: its upstream servers", host: "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n",
			resolved: "nameserver 192.168.1.1\nsearch lan\n",
			want:     []string{"nameserver 192.168.1.1", "search lan"}},
		{name: "stub, upstream on loopback too: fallbacks", host: "nameserver 127.0.0.53\n", resolved: "nameserver 127.0.0.1\n",
			want: []string{"nameserver 8.8.8.8", "nameserver 8.8.4.4"}},
		{name: "stub, no upstream file: fallbacks", host: "nameserver 127.0.0.53\n",
			want: []string{"nameserver 8.8.8.8", "nameserver 8.8.4.4"}},
		{name: "other loopback: resolved's file is not used", host: "nameserver 127.0.0.1\n", resolved: "nameserver 192.168.1.1\n",
			want: []string{"nameserver 8.8.8.8", "nameserver 8.8.4.4"}},
		{name: "no host file: fallbacks", want: []string{"nameserver 8.8.8.8", "nameserver 8.8.4.4"}},
		{name: "no final newline", host: "nameserver 10.1.1.1", want: []string{"nameserver 10.1.1.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, resolved := missing, missing
			if tc.host != "" {
				host = writeFile(t, t.TempDir(), "resolv.conf", tc.host)
			}
			if tc.resolved != "" {
				resolved = writeFile(t, t.TempDir(), "resolved.conf", tc.resolved)
			}
			b, err := resolvConf(host, resolved)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for l := range strings.Lines(string(b)) {
				f := strings.Fields(l)
				if len(f) > 0 && (f[0] == "nameserver" || f[0] == "search" || f[0] == "options") {
					got = append(got, strings.TrimSpace(l))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q; file:\n%s", got, tc.want, b)
			}
			if !strings.HasPrefix(string(b), "# Made by Berth") {
				t.Fatalf("no note of where it came from:\n%s", b)
			}
		})
	}
	b, err := resolvConf(writeFile(t, dir, "r", "nameserver 127.0.0.1\n"), missing)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Dropped nameserver 127.0.0.1") {
		t.Fatalf("does not say what it dropped:\n%s", b)
	}
}

func TestEtcFiles(t *testing.T) {
	host := writeFile(t, t.TempDir(), "resolv.conf", "nameserver 10.9.8.7\n")
	spec := &specs.Spec{Hostname: "box", Root: &specs.Root{Path: "rootfs"},
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}}}
	dir := filepath.Join(t.TempDir(), "etc")
	if err := etcFiles(spec, dir, host, "/nonexistent"); err != nil {
		t.Fatal(err)
	}
	if len(spec.Mounts) != 4 {
		t.Fatalf("mounts %+v", spec.Mounts)
	}
	for i, name := range []string{"hosts", "hostname", "resolv.conf"} {
		m := spec.Mounts[i+1]
		want := specs.Mount{Destination: "/etc/" + name, Type: "bind", Source: filepath.Join(dir, name), Options: []string{"rbind", "rprivate"}}
		if m.Destination != want.Destination || m.Type != want.Type || m.Source != want.Source || !slices.Equal(m.Options, want.Options) {
			t.Errorf("mount %+v, want %+v", m, want)
		}
		if !filepath.IsAbs(m.Source) {
			t.Errorf("%s: source %q is not absolute", name, m.Source)
		}
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got := string(read("hostname")); got != "box\n" {
		t.Errorf("hostname %q", got)
	}
	hosts := read("hosts")
	for _, want := range []string{"127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "127.0.0.1\tbox"} {
		if !slices.Contains(lines(hosts, ""), want) {
			t.Errorf("hosts has no line %q:\n%s", want, hosts)
		}
	}
	if got := lines(read("resolv.conf"), "nameserver"); !slices.Equal(got, []string{"nameserver 10.9.8.7"}) {
		t.Errorf("resolv.conf nameservers %q", got)
	}

	// A read-only root makes them read-only; a destination the caller
	// mounts already is left alone, file and all.
	own := specs.Mount{Destination: "/etc/resolv.conf/", Type: "bind", Source: "/mine"}
	spec = &specs.Spec{Hostname: "box", Root: &specs.Root{Path: "rootfs", Readonly: true}, Mounts: []specs.Mount{own}}
	dir = t.TempDir()
	if err := etcFiles(spec, dir, host, "/nonexistent"); err != nil {
		t.Fatal(err)
	}
	if len(spec.Mounts) != 3 || spec.Mounts[0].Source != "/mine" {
		t.Fatalf("mounts %+v", spec.Mounts)
	}
	for _, m := range spec.Mounts[1:] {
		if !slices.Contains(m.Options, "ro") {
			t.Errorf("%s is writable under a read-only root", m.Destination)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "resolv.conf")); !os.IsNotExist(err) {
		t.Errorf("resolv.conf written though the spec mounts its own: %v", err)
	}

	if err := EtcFiles(&specs.Spec{}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "hostname is empty") {
		t.Fatalf("no hostname: %v", err)
	}
}
