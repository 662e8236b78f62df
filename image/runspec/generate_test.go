package runspec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/runtime/caps"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// gen generates for an image with cfg, on an empty root filesystem unless
// o names one.
func gen(t *testing.T, cfg ocispec.ImageConfig, o Options) (*specs.Spec, error) {
	t.Helper()
	if o.Rootfs == "" {
		o.Rootfs = t.TempDir()
	}
	return Generate(ocispec.Image{Config: cfg}, o)
}

func mustGen(t *testing.T, cfg ocispec.ImageConfig, o Options) *specs.Spec {
	t.Helper()
	s, err := gen(t, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCommand(t *testing.T) {
	epCmd := ocispec.ImageConfig{Entrypoint: []string{"/ep", "-x"}, Cmd: []string{"a", "b"}}
	cmdOnly := ocispec.ImageConfig{Cmd: []string{"sh", "-c", "true"}}
	for _, tc := range []struct {
		name       string
		cfg        ocispec.ImageConfig
		entrypoint []string
		cmd        []string
		want       []string
		err        string
	}{
		{name: "image's entrypoint and cmd", cfg: epCmd, want: []string{"/ep", "-x", "a", "b"}},
		{name: "cmd replaces the image's", cfg: epCmd, cmd: []string{"c"}, want: []string{"/ep", "-x", "c"}},
		{name: "empty cmd clears the image's", cfg: epCmd, cmd: []string{}, want: []string{"/ep", "-x"}},
		{name: "entrypoint drops the image's cmd", cfg: epCmd, entrypoint: []string{"/other"}, want: []string{"/other"}},
		{name: "entrypoint and cmd", cfg: epCmd, entrypoint: []string{"/other"}, cmd: []string{"c"}, want: []string{"/other", "c"}},
		{name: "empty entrypoint runs the cmd", cfg: epCmd, entrypoint: []string{}, cmd: []string{"ls", "/"}, want: []string{"ls", "/"}},
		{name: "empty entrypoint and nothing else", cfg: epCmd, entrypoint: []string{}, err: "no command"},
		{name: "image cmd only", cfg: cmdOnly, want: []string{"sh", "-c", "true"}},
		{name: "entrypoint over an image with cmd only", cfg: cmdOnly, entrypoint: []string{"/bin/env"}, want: []string{"/bin/env"}},
		{name: "nothing at all", cfg: ocispec.ImageConfig{}, err: "no command"},
		{name: "empty program", cfg: ocispec.ImageConfig{Cmd: []string{""}}, err: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := gen(t, tc.cfg, Options{Entrypoint: tc.entrypoint, Cmd: tc.cmd})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Args, tc.want) {
				t.Fatalf("args %q, want %q", s.Process.Args, tc.want)
			}
		})
	}
	// The image's slices must not be shared with the spec.
	s := mustGen(t, epCmd, Options{})
	s.Process.Args[0] = "changed"
	if epCmd.Entrypoint[0] != "/ep" {
		t.Fatal("the spec's args alias the image config's Entrypoint")
	}
}

func TestEnv(t *testing.T) {
	image := []string{"PATH=/img/bin", "A=1", "B=2"}
	for _, tc := range []struct {
		name     string
		image    []string
		env      []string
		hostname string
		terminal bool
		want     []string
		err      string
	}{
		{name: "image's", image: image, want: image},
		{name: "override by key in place, new keys after", image: image, env: []string{"C=4", "B=3", "PATH=/run/bin"},
			want: []string{"PATH=/run/bin", "A=1", "B=3", "C=4"}},
		{name: "same key twice: the last wins", image: image, env: []string{"A=x", "A=y"}, want: []string{"PATH=/img/bin", "A=y", "B=2"}},
		{name: "empty value is a value", image: image, env: []string{"A="}, want: []string{"PATH=/img/bin", "A=", "B=2"}},
		{name: "no = removes", image: image, env: []string{"A", "NOTSET"}, want: []string{"PATH=/img/bin", "B=2"}},
		{name: "value with =", image: image, env: []string{"B=x=y"}, want: []string{"PATH=/img/bin", "A=1", "B=x=y"}},
		{name: "PATH when the image has none", image: []string{"A=1"}, want: []string{"PATH=" + DefaultPath, "A=1"}},
		{name: "removing PATH brings the default back", image: image, env: []string{"PATH"}, want: []string{"PATH=" + DefaultPath, "A=1", "B=2"}},
		{name: "HOSTNAME and TERM", image: image, hostname: "box", terminal: true,
			want: []string{"HOSTNAME=box", "TERM=xterm", "PATH=/img/bin", "A=1", "B=2"}},
		{name: "the image's TERM and HOSTNAME win", image: []string{"PATH=/p", "TERM=vt100", "HOSTNAME=img"}, hostname: "box", terminal: true,
			want: []string{"PATH=/p", "TERM=vt100", "HOSTNAME=img"}},
		{name: "no TERM without a terminal", image: []string{"PATH=/p"}, want: []string{"PATH=/p"}},
		{name: "no name", image: image, env: []string{"A=1", "=x"}, err: `Options.Env[1] "=x": no variable name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := gen(t, ocispec.ImageConfig{Env: tc.image, Cmd: []string{"sh"}},
				Options{Env: tc.env, Hostname: tc.hostname, Terminal: tc.terminal})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Env, tc.want) {
				t.Fatalf("env\n%q\nwant\n%q", s.Process.Env, tc.want)
			}
			for _, e := range s.Process.Env {
				if strings.HasPrefix(e, "HOME=") {
					t.Fatalf("HOME set (%s): it is the runtime's to set from /etc/passwd", e)
				}
			}
		})
	}
	cfg := ocispec.ImageConfig{Env: image, Cmd: []string{"sh"}}
	mustGen(t, cfg, Options{Env: []string{"A=changed"}})
	if cfg.Env[1] != "A=1" {
		t.Fatal("merging changed the image config's Env")
	}
}

func TestWorkingDir(t *testing.T) {
	for _, tc := range []struct {
		image, opt, want, err string
	}{
		{want: "/"},
		{image: "/srv/app", want: "/srv/app"},
		{image: "/srv/app/", opt: "/work/../w", want: "/w"},
		{opt: "rel", err: `Options.WorkingDir "rel": not an absolute path`},
		{image: "rel", err: `image config WorkingDir "rel": not an absolute path`},
		{image: "rel", opt: "/ok", want: "/ok"},
	} {
		s, err := gen(t, ocispec.ImageConfig{WorkingDir: tc.image, Cmd: []string{"sh"}}, Options{WorkingDir: tc.opt})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("image %q, option %q: got %v, want an error with %q", tc.image, tc.opt, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("image %q, option %q: %v", tc.image, tc.opt, err)
		} else if s.Process.Cwd != tc.want {
			t.Errorf("image %q, option %q: cwd %q, want %q", tc.image, tc.opt, s.Process.Cwd, tc.want)
		}
	}
}

// dockerCapBnd is what /proc/self/status shows as CapBnd in a default
// Docker container.
const dockerCapBnd = 0x00000000a80425fb

// TestDefaultCapabilitiesAreDockers checks the list against the kernel's
// numbers, not against Berth's own name table.
func TestDefaultCapabilitiesAreDockers(t *testing.T) {
	bits := map[string]uint{
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "CAP_FOWNER": unix.CAP_FOWNER,
		"CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
		"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
		"CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_MKNOD": unix.CAP_MKNOD,
		"CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE, "CAP_SETFCAP": unix.CAP_SETFCAP,
	}
	var mask uint64
	for _, c := range defaultCaps {
		b, ok := bits[c]
		if !ok {
			t.Fatalf("%s is not in Docker's default set", c)
		}
		mask |= 1 << b
	}
	if len(defaultCaps) != 14 || mask != dockerCapBnd {
		t.Fatalf("%d capabilities, mask %#x; Docker's are 14, %#x", len(defaultCaps), mask, uint64(dockerCapBnd))
	}
}

func without(list []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(c string) bool { return slices.Contains(drop, c) })
}

// with is list and more, in capability-number order.
func with(list []string, more ...string) []string {
	out := append(slices.Clone(list), more...)
	slices.SortFunc(out, func(a, b string) int { return caps.Number(a) - caps.Number(b) })
	return out
}

func TestCapabilities(t *testing.T) {
	all := caps.Bounding()
	for _, tc := range []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
		err        string
	}{
		{name: "default", want: defaultCaps},
		{name: "add, any spelling", add: []string{"net_admin", "CAP_SYS_PTRACE", "NET_ADMIN"},
			want: []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
				"CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
				"CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"}},
		{name: "drop", drop: []string{"chown", "CAP_NET_RAW", "SYS_ADMIN"}, want: without(defaultCaps, "CAP_CHOWN", "CAP_NET_RAW")},
		{name: "drop ALL, add some", drop: []string{"ALL"}, add: []string{"kill", "CHOWN"}, want: []string{"CAP_CHOWN", "CAP_KILL"}},
		{name: "drop all", drop: []string{"all"}, want: nil},
		{name: "add ALL, drop some", add: []string{"ALL"}, drop: []string{"SYS_ADMIN", "cap_sys_module"}, want: without(all, "CAP_SYS_ADMIN", "CAP_SYS_MODULE")},
		{name: "add and drop the same", add: []string{"NET_ADMIN"}, drop: []string{"NET_ADMIN"}, want: with(defaultCaps, "CAP_NET_ADMIN")},
		{name: "privileged", privileged: true, drop: []string{"CHOWN"}, want: all},
		{name: "unknown add", add: []string{"NET_ADMIN", "FLY"}, err: `Options.CapAdd[1] "FLY": no such capability`},
		{name: "unknown drop", drop: []string{"cap_nope"}, err: `Options.CapDrop[0] "cap_nope": no such capability`},
		{name: "unknown, privileged", privileged: true, add: []string{"FLY"}, err: "no such capability"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := gen(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, Options{CapAdd: tc.add, CapDrop: tc.drop, Privileged: tc.privileged})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
				if !slices.Equal(set, tc.want) {
					t.Fatalf("capabilities %+v\nwant %q in bounding, effective and permitted", c, tc.want)
				}
			}
			if len(c.Inheritable) > 0 || len(c.Ambient) > 0 {
				t.Fatalf("inheritable %q, ambient %q: Docker gives neither", c.Inheritable, c.Ambient)
			}
		})
	}
}

// A capability this process lacks cannot be added: no process the
// runtime starts could have it.
func TestCapabilitiesUnavailable(t *testing.T) {
	have := caps.Bounding()
	var missing string
	for _, c := range caps.Names() {
		if caps.Known(c) && !slices.Contains(have, c) {
			missing = c
			break
		}
	}
	if missing == "" {
		t.Skip("this process has every capability the kernel knows")
	}
	_, err := gen(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, Options{CapAdd: []string{missing}})
	if err == nil || !strings.Contains(err.Error(), "not in this process's bounding set") {
		t.Fatalf("adding %s: %v", missing, err)
	}
	s := mustGen(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, Options{CapDrop: []string{missing}})
	if !slices.Equal(s.Process.Capabilities.Bounding, defaultCaps) {
		t.Fatalf("dropping %s: %q", missing, s.Process.Capabilities.Bounding)
	}
}

// A user other than root keeps only the bounding set, as Docker's.
func TestCapabilitiesNonRoot(t *testing.T) {
	for _, priv := range []bool{false, true} {
		s := mustGen(t, ocispec.ImageConfig{Cmd: []string{"sh"}, User: "1000"}, Options{Privileged: priv})
		c := s.Process.Capabilities
		if len(c.Bounding) == 0 || c.Effective != nil || c.Permitted != nil {
			t.Errorf("privileged %v: %+v, want a bounding set only", priv, c)
		}
	}
}

// allows reports whether the profile lets name through unconditionally.
func allows(sc *specs.LinuxSeccomp, name string) bool {
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name) {
			return true
		}
	}
	return false
}

func TestSeccomp(t *testing.T) {
	cfg := ocispec.ImageConfig{Cmd: []string{"sh"}}
	s := mustGen(t, cfg, Options{})
	sc := s.Linux.Seccomp
	if sc == nil || len(sc.Syscalls) == 0 || len(sc.Architectures) == 0 {
		t.Fatalf("default seccomp profile missing or empty: %+v", sc)
	}
	if sc.DefaultAction != specs.ActErrno || !allows(sc, "read") {
		t.Fatalf("not Docker's profile: default %s, read allowed %v", sc.DefaultAction, allows(sc, "read"))
	}
	if allows(sc, "mount") {
		t.Fatal("mount allowed without CAP_SYS_ADMIN")
	}
	// The profile follows the capabilities as they end up: computed
	// before CapAdd, it would not allow mount.
	s = mustGen(t, cfg, Options{CapAdd: []string{"SYS_ADMIN"}})
	if !allows(s.Linux.Seccomp, "mount") {
		t.Fatal("mount not allowed with CAP_SYS_ADMIN added: the profile was computed before the capabilities were final")
	}
	s = mustGen(t, cfg, Options{Privileged: true})
	if s.Linux.Seccomp != nil {
		t.Fatalf("privileged container has a seccomp profile (%d rules)", len(s.Linux.Seccomp.Syscalls))
	}
}

func mount(s *specs.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestDefaults(t *testing.T) {
	s := mustGen(t, ocispec.ImageConfig{Cmd: []string{"sh"}}, Options{Rootfs: "rootfs", RootfsDir: t.TempDir(), Hostname: "h", Terminal: true, ReadOnly: true})
	if s.Version != specs.Version {
		t.Errorf("ociVersion %q, want %q", s.Version, specs.Version)
	}
	if s.Root.Path != "rootfs" || !s.Root.Readonly || s.Hostname != "h" || !s.Process.Terminal {
		t.Errorf("root %+v, hostname %q, terminal %v", s.Root, s.Hostname, s.Process.Terminal)
	}
	if s.Process.User.UID != 0 || s.Process.User.GID != 0 {
		t.Errorf("user %+v, want root", s.Process.User)
	}

	wantMasked := slices.Clone(defaultMaskedPaths)
	throttle, _ := filepath.Glob("/sys/devices/system/cpu/cpu*/thermal_throttle")
	wantMasked = append(wantMasked, throttle...)
	if !slices.Equal(s.Linux.MaskedPaths, wantMasked) {
		t.Errorf("masked paths %q, want %q", s.Linux.MaskedPaths, wantMasked)
	}
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/interrupts", "/sys/firmware", "/sys/devices/virtual/powercap"} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("%s not masked", p)
		}
	}
	if !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}) {
		t.Errorf("readonly paths %q", s.Linux.ReadonlyPaths)
	}

	var ns []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		if n.Path != "" {
			t.Errorf("namespace %s joins %s; all should be new", n.Type, n.Path)
		}
		ns = append(ns, n.Type)
	}
	want := []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		want = append(want, specs.CgroupNamespace)
	}
	if !slices.Equal(ns, want) {
		t.Errorf("namespaces %v, want %v", ns, want)
	}

	for dest, typ := range map[string]string{"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
		"/dev/mqueue": "mqueue", "/sys": "sysfs", "/sys/fs/cgroup": "cgroup"} {
		m := mount(s, dest)
		if m == nil || m.Type != typ {
			t.Errorf("mount %s: %+v, want type %s", dest, m, typ)
		}
	}
	if m := mount(s, "/dev/shm"); m == nil || !slices.Contains(m.Options, "size=65536k") {
		t.Errorf("/dev/shm is not 64 MiB: %+v", m)
	}
	for _, dest := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := mount(s, dest); m == nil || !slices.Contains(m.Options, "ro") {
			t.Errorf("%s is not read-only: %+v", dest, m)
		}
	}
	if d := s.Linux.Resources.Devices; len(d) == 0 || d[0].Allow || d[0].Type != "" {
		t.Errorf("device rules do not start by denying everything: %+v", d)
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("devices %+v in an unprivileged container", s.Linux.Devices)
	}
	if s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" || s.Linux.Sysctl["net.ipv4.ping_group_range"] != "0 2147483647" {
		t.Errorf("sysctls %v", s.Linux.Sysctl)
	}
	if s.Annotations != nil {
		t.Errorf("annotations %v with none asked for", s.Annotations)
	}
}

func TestPrivileged(t *testing.T) {
	cfg := ocispec.ImageConfig{Cmd: []string{"sh"}}
	s := mustGen(t, cfg, Options{Privileged: true})
	if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Errorf("masked %q, readonly %q: a privileged container has neither", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, dest := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := mount(s, dest); m == nil || slices.Contains(m.Options, "ro") {
			t.Errorf("%s is read-only in a privileged container: %+v", dest, m)
		}
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Type != "" || d[0].Access != "rwm" {
		t.Errorf("device rules %+v, want all allowed", d)
	}
	// The host's devices, with what the host says of them.
	var st unix.Stat_t
	if err := unix.Stat("/dev/null", &st); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/null" })
	if i < 0 {
		t.Fatalf("/dev/null not among the devices: %+v", s.Linux.Devices)
	}
	if d := s.Linux.Devices[i]; d.Type != "c" || d.Major != 1 || d.Minor != 3 || *d.FileMode != os.FileMode(st.Mode&0o777) || *d.UID != st.Uid {
		t.Errorf("/dev/null: %+v", d)
	}
	for _, d := range s.Linux.Devices {
		if d.Path == "/dev/console" || d.Path == "/dev/ptmx" || strings.HasPrefix(d.Path, "/dev/pts/") {
			t.Errorf("%s passed from the host", d.Path)
		}
	}
	// A read-only root keeps /sys read-only; the cgroup mount opens anyway.
	s = mustGen(t, cfg, Options{Privileged: true, ReadOnly: true})
	if m := mount(s, "/sys"); !slices.Contains(m.Options, "ro") {
		t.Errorf("privileged, read-only root: /sys %+v", m)
	}
	if m := mount(s, "/sys/fs/cgroup"); slices.Contains(m.Options, "ro") {
		t.Errorf("privileged, read-only root: cgroup %+v", m)
	}
}

func TestHostDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	dir := t.TempDir()
	mk := func(p string, mode uint32, major, minor uint32) {
		t.Helper()
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(full, mode, int(unix.Mkdev(major, minor))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(full, mode&0o777); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	mk("null", unix.S_IFCHR|0o666, 1, 3)
	mk("loop7", unix.S_IFBLK|0o660, 7, 7)
	mk("net/tun", unix.S_IFCHR|0o600, 10, 200)
	mk("console", unix.S_IFCHR|0o600, 5, 1)
	mk("ptmx", unix.S_IFCHR|0o666, 5, 2)
	mk("pts/0", unix.S_IFCHR|0o620, 136, 0)
	mk("shm/x", unix.S_IFCHR|0o666, 1, 3)
	mk(".udev/x", unix.S_IFCHR|0o666, 1, 3)
	mk("fifo", unix.S_IFIFO|0o666, 0, 0)
	if err := os.Chown(filepath.Join(dir, "loop7"), 0, 6); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("null", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	devs, err := hostDevices(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range devs {
		got = append(got, d.Path)
	}
	want := []string{"/dev/loop7", "/dev/net/tun", "/dev/null"}
	if !slices.Equal(got, want) {
		t.Fatalf("devices %q, want %q", got, want)
	}
	if d := devs[0]; d.Type != "b" || d.Major != 7 || d.Minor != 7 || *d.FileMode != 0o660 || *d.GID != 6 {
		t.Fatalf("loop7: %+v", d)
	}
}

func TestStopSignal(t *testing.T) {
	s := mustGen(t, ocispec.ImageConfig{Cmd: []string{"sh"}, StopSignal: "SIGQUIT"}, Options{})
	if got := s.Annotations[StopSignalAnnotation]; got != "SIGQUIT" {
		t.Fatalf("annotation %q, want SIGQUIT", got)
	}
	s = mustGen(t, ocispec.ImageConfig{Cmd: []string{"sh"}, StopSignal: "SIGQUIT"},
		Options{Annotations: map[string]string{StopSignalAnnotation: "SIGINT", "x": "y"}})
	if s.Annotations[StopSignalAnnotation] != "SIGINT" || s.Annotations["x"] != "y" {
		t.Fatalf("the run's annotations do not win: %v", s.Annotations)
	}
	if _, err := gen(t, ocispec.ImageConfig{Cmd: []string{"sh"}, StopSignal: "SIGNOPE"}, Options{}); err == nil ||
		!strings.Contains(err.Error(), `image config StopSignal "SIGNOPE"`) {
		t.Fatalf("bad stop signal: %v", err)
	}
	for s, want := range map[string]bool{
		"SIGTERM": true, "term": true, "9": true, "64": true, "RTMIN": true, "SIGRTMIN+3": true, "RTMAX-2": true,
		"0": false, "65": false, "-1": false, "": false, "SIGFOO": false, "RTMIN+31": false, "RTMIN-1": false, "RTMAX+1": false, "RTMIN+": false, "RTMIN++1": false,
	} {
		if got := validSignal(s); got != want {
			t.Errorf("validSignal(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestVolumes(t *testing.T) {
	img := ocispec.Image{Config: ocispec.ImageConfig{Volumes: map[string]struct{}{
		"/var/lib/db": {}, "/data/": {}, "/data": {}, "cache": {}, "/a/../b": {},
	}}}
	want := []string{"/b", "/cache", "/data", "/var/lib/db"}
	if got := Volumes(img); !slices.Equal(got, want) {
		t.Fatalf("volumes %q, want %q", got, want)
	}
	if got := Volumes(ocispec.Image{}); got != nil {
		t.Fatalf("volumes of an image without any: %q", got)
	}
	s := mustGen(t, ocispec.ImageConfig{Cmd: []string{"sh"}, Volumes: img.Config.Volumes}, Options{})
	for _, v := range want {
		if mount(s, v) != nil {
			t.Fatalf("Generate mounted volume %s", v)
		}
	}
}

func TestBadInput(t *testing.T) {
	cfg := ocispec.ImageConfig{Cmd: []string{"sh"}}
	for _, tc := range []struct {
		name string
		img  ocispec.Image
		o    Options
		err  string
	}{
		{"windows image", ocispec.Image{Platform: ocispec.Platform{OS: "windows"}, Config: cfg}, Options{Rootfs: "/x"}, `image os "windows"`},
		{"no rootfs", ocispec.Image{Config: cfg}, Options{}, "Options.Rootfs is empty"},
		{"relative rootfs alone", ocispec.Image{Config: cfg}, Options{Rootfs: "rootfs"}, "set Options.RootfsDir"},
		{"missing rootfs dir", ocispec.Image{Config: ocispec.ImageConfig{Cmd: []string{"sh"}, User: "nobody"}},
			Options{Rootfs: "/nonexistent/runspec-test"}, "root filesystem"},
	} {
		if _, err := Generate(tc.img, tc.o); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.err)
		}
	}
	// A linux image, or one that does not say, is fine.
	for _, osName := range []string{"", "linux"} {
		if _, err := Generate(ocispec.Image{Platform: ocispec.Platform{OS: osName}, Config: cfg}, Options{Rootfs: t.TempDir()}); err != nil {
			t.Errorf("os %q: %v", osName, err)
		}
	}
}
