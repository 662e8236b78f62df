package runspec

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const (
	hostResolvConf = "/etc/resolv.conf"
	// systemd-resolved's list of the upstream servers, for a host whose
	// /etc/resolv.conf names only its local stub.
	resolvedResolvConf = "/run/systemd/resolve/resolv.conf"
	resolvedStub       = "127.0.0.53"
)

// fallbackNameservers are Docker's, for a host whose only nameservers
// are on its loopback: Google's public resolvers. IPv4 only, since the
// container's network may have no IPv6.
var fallbackNameservers = []string{"8.8.8.8", "8.8.4.4"}

// EtcFiles writes the container's hosts, hostname and resolv.conf into dir
// (made if missing) and adds bind mounts of them at /etc/hosts,
// /etc/hostname and /etc/resolv.conf to spec, hiding the image's. A
// destination spec mounts already is left alone, file and all: the
// caller brought its own.
//
// hosts maps localhost and spec's hostname to the loopback address, the
// one address a container in a new network namespace is sure to have; a
// caller that connects the container to a network should put its address
// on the hostname's line, as Docker does.
//
// resolv.conf is the host's, less the nameservers on the host's loopback
// (127.0.0.0/8, ::1), which in the container's network namespace would be
// the container's own, where nothing answers. On a host whose
// /etc/resolv.conf names only systemd-resolved's stub, the servers come
// from resolved's upstream list instead; if none is left, Docker's
// fallbacks (8.8.8.8, 8.8.4.4) take their place. Search domains and
// options are kept. The file says what was dropped and why.
//
// The mounts are read-write, so that programs can edit the files as they
// could Docker's, unless the root filesystem is read-only: then, as in
// Docker, they are read-only too.
func EtcFiles(spec *specs.Spec, dir string) error {
	return etcFiles(spec, dir, hostResolvConf, resolvedResolvConf)
}

func etcFiles(spec *specs.Spec, dir, hostResolv, resolvedResolv string) error {
	if spec.Hostname == "" {
		return errors.New("spec hostname is empty: set Options.Hostname for /etc/hostname and /etc/hosts")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mounted := func(dest string) bool {
		for _, m := range spec.Mounts {
			if path.Clean(m.Destination) == dest {
				return true
			}
		}
		return false
	}
	files := []struct {
		name    string
		content func() ([]byte, error)
	}{
		{"hosts", func() ([]byte, error) { return hostsFile(spec.Hostname), nil }},
		{"hostname", func() ([]byte, error) { return []byte(spec.Hostname + "\n"), nil }},
		{"resolv.conf", func() ([]byte, error) { return resolvConf(hostResolv, resolvedResolv) }},
	}
	opts := []string{"rbind", "rprivate"}
	if spec.Root != nil && spec.Root.Readonly {
		opts = append(opts, "ro")
	}
	for _, f := range files {
		dest := "/etc/" + f.name
		if mounted(dest) {
			continue
		}
		b, err := f.content()
		if err != nil {
			return fmt.Errorf("%s: %w", dest, err)
		}
		src := filepath.Join(dir, f.name)
		if err := os.WriteFile(src, b, 0o644); err != nil {
			return fmt.Errorf("%s: %w", dest, err)
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{
			Destination: dest, Type: "bind", Source: src, Options: append([]string(nil), opts...),
		})
	}
	return nil
}

func hostsFile(hostname string) []byte {
	return []byte("127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::\tip6-localnet\n" +
		"ff00::\tip6-mcastprefix\n" +
		"ff02::1\tip6-allnodes\n" +
		"ff02::2\tip6-allrouters\n" +
		"127.0.0.1\t" + hostname + "\n")
}

// resolvConf is the container's resolv.conf made from the host's at
// hostPath (see EtcFiles); a host without one gets the fallbacks.
func resolvConf(hostPath, resolvedPath string) ([]byte, error) {
	b, err := os.ReadFile(hostPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	out, kept, dropped := filterResolvConf(b)
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Made by Berth from the host's %s.\n", hostPath)
	if kept == 0 && slices.Contains(dropped, resolvedStub) {
		if up, err := os.ReadFile(resolvedPath); err == nil {
			if upOut, upKept, _ := filterResolvConf(up); upKept > 0 {
				out, kept, dropped = upOut, upKept, nil
				sb.Reset()
				fmt.Fprintf(&sb, "# Made by Berth from %s: the host's %s names only systemd-resolved's local stub.\n", resolvedPath, hostPath)
			}
		}
	}
	if len(dropped) > 0 {
		fmt.Fprintf(&sb, "# Dropped nameserver %s: on the host's loopback, which the container's network does not reach.\n", strings.Join(dropped, ", "))
	}
	sb.Write(out)
	if kept == 0 {
		sb.WriteString("# No nameserver the container can reach was left: Docker's fallbacks.\n")
		for _, ns := range fallbackNameservers {
			fmt.Fprintf(&sb, "nameserver %s\n", ns)
		}
	}
	return []byte(sb.String()), nil
}

// filterResolvConf copies resolv.conf lines but the nameservers on the
// loopback, which it returns apart, and counts the nameservers kept.
func filterResolvConf(b []byte) (out []byte, kept int, dropped []string) {
	var sb strings.Builder
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.Unmap().IsLoopback() {
				dropped = append(dropped, f[1])
				continue
			}
			kept++
		}
		sb.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			sb.WriteByte('\n')
		}
	}
	return []byte(sb.String()), kept, dropped
}
