// Package runspec turns an image's configuration and the options of a run
// into an OCI runtime spec (a bundle's config.json) with the defaults
// Docker gives a container, so that an image runs under Berth as it does
// under docker run: the same user, environment, capabilities, seccomp
// profile, masked paths, namespaces and mounts.
//
// The image is not trusted: its /etc/passwd and /etc/group are read with
// every symlink and ".." resolved inside its root filesystem, and only if
// they are regular files of a sane size.
package runspec

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/runtime/config"
	"github.com/moby/profiles/seccomp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Options are what a run adds to or changes in the image's configuration,
// as docker run's flags do.
type Options struct {
	// Rootfs is written to root.path: absolute, or relative to the bundle
	// (usually "rootfs").
	Rootfs string
	// RootfsDir is where that root filesystem is on disk now, to read its
	// /etc/passwd and /etc/group. Empty means Rootfs, which must then be
	// absolute.
	RootfsDir string
	// Entrypoint, if not nil (even if empty), replaces the image's
	// Entrypoint and drops its Cmd, as docker run --entrypoint does.
	Entrypoint []string
	// Cmd, if not nil, replaces the image's Cmd (or the Cmd the image's
	// would have been, when Entrypoint drops it).
	Cmd []string
	// Env entries, KEY=VALUE, go after the image's, replacing those with
	// the same KEY in place. An entry without "=" removes KEY.
	Env []string
	// User is "name", "uid", "name:group" or "uid:gid"; empty means the
	// image's User, and root if that is empty too.
	User string
	// WorkingDir, if set, replaces the image's; it must be absolute.
	WorkingDir string
	// Hostname is the container's. Empty leaves hostname out of the spec,
	// and the new UTS namespace then starts with the host's name: Docker
	// uses the first 12 hex digits of the container's ID.
	Hostname string
	Terminal bool
	// ReadOnly mounts the root filesystem read-only.
	ReadOnly bool
	// Privileged gives every capability this process has and the host's
	// devices, makes /sys (unless ReadOnly) and the cgroup mount writable,
	// and drops the seccomp filter, the masked and read-only paths and the
	// device cgroup rules, as docker run --privileged does.
	Privileged bool
	// CapAdd and CapDrop change the default capability set: names with or
	// without "CAP_", any case, or "ALL".
	CapAdd, CapDrop []string
	// Annotations go into the spec, over any Generate sets itself.
	Annotations map[string]string
}

// StopSignalAnnotation carries the image's StopSignal to whoever stops the
// container (containerd's convention): the runtime spec has no field for
// it.
const StopSignalAnnotation = "org.opencontainers.image.stopSignal"

// DefaultPath is PATH for an image that sets none: Docker's, which is the
// one every common base image expects.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultCaps is Docker's default capability set (moby's
// daemon/pkg/oci/caps.defaultCaps), in capability-number order:
// enough for what a package manager and a root-run daemon usually do
// (chown, bind low ports, switch user), none of what reaches the host.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
	"CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
}

// defaultMaskedPaths are the /proc and /sys paths Docker hides (moby's
// daemon/pkg/oci.defaultLinuxMaskedPaths): they reveal the host's
// hardware, kernel memory and keys, or leak timing that side channels use
// (/proc/interrupts, powercap's energy counters). Generate adds the
// host's per-CPU thermal_throttle directories, as Docker does.
var defaultMaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
	"/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
}

// defaultReadonlyPaths are the /proc paths Docker makes read-only: through
// them a process would change the host's kernel, not the container's.
var defaultReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// thermalThrottleGlob finds the per-CPU directories whose counters leak
// the same timing as /proc/interrupts (GHSA-6fw5-f8r9-fgfm).
const thermalThrottleGlob = "/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle"

// Generate builds the spec a container of img runs with under o.
//
// Beyond what img and o say, it holds Docker's defaults: the default
// capabilities (only the bounding set for a user other than root, as
// execve would leave them), Docker's seccomp profile for those
// capabilities, the masked and read-only paths, new PID, IPC, UTS, mount
// and network namespaces (and cgroup, on a cgroup v2 host), the usual
// kernel filesystems with a 64 MiB /dev/shm, unprivileged ICMP and low
// ports inside the container's own network namespace, and the device
// cgroup rules. HOME is left to the runtime, which takes it from the
// image's /etc/passwd. Resources, rlimits, AppArmor and SELinux are left
// out, and so are the image's volumes: see Volumes.
func Generate(img ocispec.Image, o Options) (*specs.Spec, error) {
	if img.OS != "" && img.OS != "linux" {
		return nil, fmt.Errorf("image os %q: only linux images run here", img.OS)
	}
	if o.Rootfs == "" {
		return nil, errors.New("Options.Rootfs is empty: the spec needs root.path")
	}
	dir := o.RootfsDir
	if dir == "" {
		if !filepath.IsAbs(o.Rootfs) {
			return nil, fmt.Errorf("Options.Rootfs %q is relative to the bundle: set Options.RootfsDir to where it is now", o.Rootfs)
		}
		dir = o.Rootfs
	}
	cfg := img.Config

	args, err := command(cfg, o)
	if err != nil {
		return nil, err
	}

	cwd := "/"
	switch {
	case o.WorkingDir != "":
		if !path.IsAbs(o.WorkingDir) {
			return nil, fmt.Errorf("Options.WorkingDir %q: not an absolute path", o.WorkingDir)
		}
		cwd = path.Clean(o.WorkingDir)
	case cfg.WorkingDir != "":
		if !path.IsAbs(cfg.WorkingDir) {
			return nil, fmt.Errorf("image config WorkingDir %q: not an absolute path (set Options.WorkingDir to run the image anyway)", cfg.WorkingDir)
		}
		cwd = path.Clean(cfg.WorkingDir)
	}

	root := &rootfs{dir: dir}
	defer root.close()
	field, who := "Options.User", o.User
	if who == "" {
		field, who = "image config User", cfg.User
	}
	user, err := resolveUser(root, who)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", field, who, err)
	}

	env, err := environment(cfg.Env, o)
	if err != nil {
		return nil, err
	}

	capList, err := capabilities(o.CapAdd, o.CapDrop, o.Privileged)
	if err != nil {
		return nil, err
	}
	// For any user but root, execve would clear the effective and
	// permitted sets anyway (the program has no file capabilities):
	// Docker leaves only the bounding set, the most a setuid program
	// could reach.
	capSets := &specs.LinuxCapabilities{Bounding: capList}
	if user.UID == 0 {
		capSets.Effective = slices.Clone(capList)
		capSets.Permitted = slices.Clone(capList)
	}

	spec := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: o.Rootfs, Readonly: o.ReadOnly},
		Hostname: o.Hostname,
		Process: &specs.Process{
			Terminal:     o.Terminal,
			User:         user,
			Args:         args,
			Env:          env,
			Cwd:          cwd,
			Capabilities: capSets,
		},
		Mounts: defaultMounts(),
		Linux: &specs.Linux{
			Namespaces: namespaces(),
			// Docker sets these in every container with its own network
			// namespace: they open only that namespace's ports and ICMP
			// sockets, so they give away nothing of the host's.
			Sysctl: map[string]string{
				"net.ipv4.ip_unprivileged_port_start": "0",
				"net.ipv4.ping_group_range":           "0 2147483647",
			},
		},
	}

	if o.Privileged {
		for i := range spec.Mounts {
			m := &spec.Mounts[i]
			// A read-only root keeps /sys read-only even so, as in Docker:
			// the root's flag is the stronger request.
			if m.Type == "cgroup" || (m.Destination == "/sys" && !o.ReadOnly) {
				m.Options = slices.DeleteFunc(m.Options, func(s string) bool { return s == "ro" })
			}
		}
		devs, err := hostDevices("/dev")
		if err != nil {
			return nil, fmt.Errorf("privileged: the host's devices: %w", err)
		}
		spec.Linux.Devices = devs
		spec.Linux.Resources = &specs.LinuxResources{
			Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}},
		}
	} else {
		spec.Linux.MaskedPaths = maskedPaths()
		spec.Linux.ReadonlyPaths = slices.Clone(defaultReadonlyPaths)
		spec.Linux.Resources = &specs.LinuxResources{Devices: defaultDeviceRules()}
		// The profile's rules depend on the bounding set (a container with
		// CAP_SYS_ADMIN may mount, one with CAP_SYS_PTRACE may
		// process_vm_readv), so it is computed only now.
		sc, err := seccomp.GetDefaultProfile(spec)
		if err != nil {
			return nil, fmt.Errorf("default seccomp profile: %w", err)
		}
		spec.Linux.Seccomp = sc
	}

	if sig := cfg.StopSignal; sig != "" {
		if !validSignal(sig) {
			return nil, fmt.Errorf("image config StopSignal %q: not a signal", sig)
		}
		spec.Annotations = map[string]string{StopSignalAnnotation: sig}
	}
	for k, v := range o.Annotations {
		if spec.Annotations == nil {
			spec.Annotations = make(map[string]string, len(o.Annotations))
		}
		spec.Annotations[k] = v
	}
	return spec, nil
}

// Command is the process's argv for an image and a run's options, as
// Generate makes it.
func Command(cfg ocispec.ImageConfig, o Options) ([]string, error) { return command(cfg, o) }

// Environment is the process's environment for an image's and a run's
// options, as Generate makes it.
func Environment(cfg ocispec.ImageConfig, o Options) ([]string, error) {
	return environment(cfg.Env, o)
}

// command joins entrypoint and command by Docker's rules: a run's
// entrypoint replaces the image's and drops the image's Cmd, whose
// arguments were written for the entrypoint it replaces.
func command(cfg ocispec.ImageConfig, o Options) ([]string, error) {
	entrypoint, cmd := cfg.Entrypoint, cfg.Cmd
	if o.Entrypoint != nil {
		entrypoint, cmd = o.Entrypoint, nil
	}
	if o.Cmd != nil {
		cmd = o.Cmd
	}
	args := append(slices.Clone(entrypoint), cmd...)
	if len(args) == 0 {
		return nil, errors.New("no command: the image config has no Entrypoint or Cmd, and the options give none")
	}
	if args[0] == "" {
		return nil, errors.New("no command: the first word of Entrypoint and Cmd is empty")
	}
	return args, nil
}

// environment is the image's environment with the run's merged in, and
// what Docker adds unless either sets it: PATH, HOSTNAME, and TERM for a
// terminal.
func environment(image []string, o Options) ([]string, error) {
	env := slices.Clone(image)
	for i, e := range o.Env {
		key, _, set := strings.Cut(e, "=")
		if key == "" {
			return nil, fmt.Errorf("Options.Env[%d] %q: no variable name", i, e)
		}
		at := slices.IndexFunc(env, func(have string) bool { return envKey(have) == key })
		switch {
		case !set:
			if at >= 0 {
				env = slices.Delete(env, at, at+1)
			}
		case at >= 0:
			env[at] = e
		default:
			env = append(env, e)
		}
	}
	var defaults []string
	has := func(key string) bool {
		return slices.ContainsFunc(env, func(e string) bool { return envKey(e) == key })
	}
	if !has("PATH") {
		defaults = append(defaults, "PATH="+DefaultPath)
	}
	if o.Hostname != "" && !has("HOSTNAME") {
		defaults = append(defaults, "HOSTNAME="+o.Hostname)
	}
	if o.Terminal && !has("TERM") {
		defaults = append(defaults, "TERM=xterm")
	}
	return append(defaults, env...), nil
}

func envKey(e string) string {
	k, _, _ := strings.Cut(e, "=")
	return k
}

func defaultMounts() []specs.Mount {
	ms := config.DefaultMounts()
	// Docker's /proc also has nosuid, noexec and nodev; runc's has none.
	ms[0].Options = []string{"nosuid", "noexec", "nodev"}
	return ms
}

// namespaces are Docker's: everything but the user namespace, and the
// cgroup namespace only on a cgroup v2 host. Docker keeps the host's on v1
// (its behaviour from before kernels had cgroup namespaces, which v1
// tools in containers expect) and makes one on v2, so that
// /sys/fs/cgroup shows the container's own cgroup, not the host's tree.
func namespaces() []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
		{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
	}
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

func maskedPaths() []string {
	paths := slices.Clone(defaultMaskedPaths)
	// The pattern is constant and valid, so Glob cannot fail.
	throttle, _ := filepath.Glob(thermalThrottleGlob)
	return append(paths, throttle...)
}

func i64(v int64) *int64 { return &v }

// defaultDeviceRules are Docker's: nothing but the nodes every program
// expects, and FUSE denied explicitly in case a runtime's own defaults
// would allow it. (Berth's runtime adds the terminals after these.)
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	allow := func(major, minor int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(major), Minor: i64(minor), Access: "rwm"}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow(1, 5), // zero
		allow(1, 3), // null
		allow(1, 9), // urandom
		allow(1, 8), // random
		allow(5, 0), // tty
		allow(5, 1), // console
		{Allow: false, Type: "c", Major: i64(10), Minor: i64(229), Access: "rwm"}, // fuse
	}
}

// Volumes lists the image's declared volumes (config.Volumes), cleaned,
// without duplicates and sorted, for the caller to back with directories
// and mount: Generate mounts none of them. A relative path is taken from
// the root, as the runtime would take a relative mount destination.
func Volumes(img ocispec.Image) []string {
	var out []string
	for v := range img.Config.Volumes {
		p := path.Clean("/" + v)
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// sigRTMin is the first real-time signal as programs number it (glibc
// and musl keep the kernel's 32 and 33 for themselves); sigRTMax is the
// last the kernel has.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// validSignal reports whether s names a signal as Docker's --stop-signal
// takes one: a number, or a name with or without "SIG", in any case,
// including RTMIN+n and RTMAX-n.
func validSignal(s string) bool {
	if n, err := strconv.Atoi(s); err == nil {
		return n >= 1 && n <= sigRTMax
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if rest, ok := strings.CutPrefix(name, "RTMIN"); ok {
		n, ok := rtOffset(rest, "+")
		return ok && sigRTMin+n <= sigRTMax
	}
	if rest, ok := strings.CutPrefix(name, "RTMAX"); ok {
		n, ok := rtOffset(rest, "-")
		return ok && sigRTMax-n >= sigRTMin
	}
	return unix.SignalNum("SIG"+name) != 0
}

// rtOffset parses the "+n" after RTMIN or the "-n" after RTMAX; nothing
// there is 0.
func rtOffset(s, sign string) (int, bool) {
	if s == "" {
		return 0, true
	}
	digits, ok := strings.CutPrefix(s, sign)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 8)
	return int(n), err == nil
}
