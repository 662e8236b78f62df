// Package config reads an OCI bundle's config.json and checks it before
// anything is created, so that a bad config fails with an error naming the
// field, not with a half-made container.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/runtime/caps"
	"github.com/berth-dev/berth/runtime/cgroups"
	"github.com/berth-dev/berth/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/mod/semver"
)

// Name is the file a bundle keeps its configuration in.
const Name = "config.json"

// maxConfigSize bounds what is read from a bundle; real configs are a few KiB.
const maxConfigSize = 16 << 20

// Load reads and validates bundle/config.json. It returns the spec with
// its paths made absolute (Normalize), the file's bytes, and the warnings
// the spec asks runtimes to log rather than fail on.
func Load(bundle string) (*specs.Spec, []byte, []string, error) {
	raw, err := Read(bundle)
	if err != nil {
		return nil, nil, nil, err
	}
	spec, warnings, err := Decode(raw, bundle)
	return spec, raw, warnings, err
}

// Read returns the bytes of bundle/config.json.
func Read(bundle string) ([]byte, error) {
	path := filepath.Join(bundle, Name)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read bundle config: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(&limitedReader{f, maxConfigSize}); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return buf.Bytes(), nil
}

// Decode parses, normalizes and validates a bundle's config.
func Decode(raw []byte, bundle string) (*specs.Spec, []string, error) {
	path := filepath.Join(bundle, Name)
	spec, err := Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	Normalize(spec, bundle)
	warnings, err := Validate(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkRootfs(spec.Root.Path); err != nil {
		return nil, nil, fmt.Errorf("%s: root.path: %w", path, err)
	}
	return spec, warnings, nil
}

// CgroupsPath reads linux.cgroupsPath alone, much faster than the whole
// config: enough to start making the cgroup while the rest is decoded.
func CgroupsPath(raw []byte) string {
	var c struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Linux == nil {
		return ""
	}
	return c.Linux.CgroupsPath
}

// Normalize resolves the paths the spec allows relative to the bundle:
// root.path and the sources of bind mounts.
func Normalize(spec *specs.Spec, bundle string) {
	if spec.Root != nil && spec.Root.Path != "" && !filepath.IsAbs(spec.Root.Path) {
		spec.Root.Path = filepath.Join(bundle, spec.Root.Path)
	}
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		bind := m.Type == "bind"
		for _, o := range m.Options {
			if o == "bind" || o == "rbind" {
				bind = true
			}
		}
		if bind && m.Source != "" && !filepath.IsAbs(m.Source) {
			m.Source = filepath.Join(bundle, m.Source)
		}
	}
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("larger than %d bytes", maxConfigSize)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

func checkRootfs(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("rootfs %s does not exist", p)
		}
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("rootfs %s is not a directory", p)
	}
	return nil
}

// Parse decodes a config, turning JSON errors into ones that name the field
// (or the line and column of a syntax error). Unknown properties are
// ignored, as the spec requires.
func Parse(data []byte) (*specs.Spec, error) {
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = "(top level)"
			}
			return nil, fmt.Errorf("%s: a JSON %s cannot be a %s", field, te.Value, te.Type)
		case errors.As(err, &se):
			line, col := position(data, se.Offset)
			return nil, fmt.Errorf("invalid JSON at line %d, column %d: %v", line, col, se)
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return &spec, nil
}

func position(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// CheckVersion accepts every 1.x release up to the one Berth's spec types
// describe, pre-releases included.
func CheckVersion(v string) error {
	sv := "v" + v
	// semver accepts v1 and v1.2 as shorthands; a spec version has all three.
	core, _, _ := strings.Cut(strings.SplitN(v, "+", 2)[0], "-")
	if !semver.IsValid(sv) || strings.Count(core, ".") != 2 {
		return fmt.Errorf("ociVersion: %q is not a semantic version", v)
	}
	want := fmt.Sprintf("v%d.%d", specs.VersionMajor, specs.VersionMinor)
	if semver.Major(sv) != semver.Major(want) || semver.Compare(semver.MajorMinor(sv), want) > 0 {
		return fmt.Errorf("ociVersion: %s is not supported (Berth implements 1.0.0 to %s)", v, specs.Version)
	}
	return nil
}

var namespaceTypes = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true,
	specs.IPCNamespace: true, specs.UTSNamespace: true, specs.UserNamespace: true,
	specs.CgroupNamespace: true, specs.TimeNamespace: true,
}

// Rlimits maps the spec's rlimit names to resource numbers.
var Rlimits = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
	"RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
	"RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

var propagations = map[string]bool{
	"": true, "private": true, "rprivate": true, "slave": true, "rslave": true,
	"shared": true, "rshared": true, "unbindable": true, "runbindable": true,
}

// HasNamespace reports whether spec asks for a namespace of type t (new or
// joined).
func HasNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// NewNamespace reports whether spec creates a namespace of type t.
func NewNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t && ns.Path == "" {
			return true
		}
	}
	return false
}

// Validate checks what Load cannot leave to the kernel. It returns warnings
// for what the spec says to log and go on with.
func Validate(spec *specs.Spec) ([]string, error) {
	var warnings []string
	if err := CheckVersion(spec.Version); err != nil {
		return nil, err
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, errors.New("root.path: missing")
	}
	if spec.Linux == nil {
		return nil, errors.New("linux: missing (Berth runs Linux containers only)")
	}
	if err := validateProcess(spec.Process, "process"); err != nil {
		return nil, err
	}
	if spec.Process == nil {
		return nil, errors.New("process: missing")
	}
	if u := caps.Unknown(spec.Process.Capabilities); len(u) > 0 {
		warnings = append(warnings, fmt.Sprintf("process.capabilities: the kernel does not know %s; ignoring", strings.Join(u, ", ")))
	}
	if err := validateLinux(spec); err != nil {
		return nil, err
	}
	if spec.Hostname != "" && !HasNamespace(spec, specs.UTSNamespace) {
		return nil, errors.New("hostname: setting it needs a UTS namespace (linux.namespaces has none)")
	}
	if spec.Domainname != "" && !HasNamespace(spec, specs.UTSNamespace) {
		return nil, errors.New("domainname: setting it needs a UTS namespace (linux.namespaces has none)")
	}
	for i, m := range spec.Mounts {
		if err := validateMount(m); err != nil {
			return nil, fmt.Errorf("mounts[%d]: %w", i, err)
		}
	}
	if h := spec.Hooks; h != nil {
		//nolint:staticcheck // prestart is deprecated but still run
		groups := map[string][]specs.Hook{
			"prestart": h.Prestart, "createRuntime": h.CreateRuntime, "createContainer": h.CreateContainer,
			"startContainer": h.StartContainer, "poststart": h.Poststart, "poststop": h.Poststop,
		}
		for name, hooks := range groups {
			for i, hk := range hooks {
				if !filepath.IsAbs(hk.Path) {
					return nil, fmt.Errorf("hooks.%s[%d].path: %q is not absolute", name, i, hk.Path)
				}
				if hk.Timeout != nil && *hk.Timeout <= 0 {
					return nil, fmt.Errorf("hooks.%s[%d].timeout: %d is not a positive number of seconds", name, i, *hk.Timeout)
				}
			}
		}
	}
	return warnings, nil
}

func validateProcess(p *specs.Process, field string) error {
	if p == nil {
		return nil
	}
	if len(p.Args) == 0 && p.CommandLine == "" {
		return fmt.Errorf("%s.args: must name the program to run", field)
	}
	if p.Cwd == "" {
		return fmt.Errorf("%s.cwd: missing", field)
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("%s.cwd: %q is not an absolute path", field, p.Cwd)
	}
	for i, e := range p.Env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("%s.env[%d]: %q is not of the form KEY=VALUE", field, i, e)
		}
	}
	seen := map[string]bool{}
	for i, r := range p.Rlimits {
		if _, ok := Rlimits[r.Type]; !ok {
			return fmt.Errorf("%s.rlimits[%d].type: unknown rlimit %q", field, i, r.Type)
		}
		if seen[r.Type] {
			return fmt.Errorf("%s.rlimits[%d].type: %s is given twice", field, i, r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return fmt.Errorf("%s.rlimits[%d]: soft limit %d is above the hard limit %d", field, i, r.Soft, r.Hard)
		}
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return fmt.Errorf("%s.oomScoreAdj: %d is outside -1000..1000", field, *p.OOMScoreAdj)
	}
	if p.IOPriority != nil {
		switch p.IOPriority.Class {
		case specs.IOPRIO_CLASS_RT, specs.IOPRIO_CLASS_BE, specs.IOPRIO_CLASS_IDLE:
		default:
			return fmt.Errorf("%s.ioPriority.class: unknown class %q", field, p.IOPriority.Class)
		}
		if p.IOPriority.Priority < 0 || p.IOPriority.Priority > 7 {
			return fmt.Errorf("%s.ioPriority.priority: %d is outside 0..7", field, p.IOPriority.Priority)
		}
	}
	if s := p.Scheduler; s != nil {
		if _, ok := SchedPolicies[s.Policy]; !ok {
			return fmt.Errorf("%s.scheduler.policy: unknown policy %q", field, s.Policy)
		}
		for i, f := range s.Flags {
			if _, ok := SchedFlags[f]; !ok {
				return fmt.Errorf("%s.scheduler.flags[%d]: unknown flag %q", field, i, f)
			}
		}
	}
	return nil
}

// SchedPolicies maps the spec's scheduler policies to the kernel's numbers.
var SchedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther: 0, specs.SchedFIFO: 1, specs.SchedRR: 2, specs.SchedBatch: 3,
	specs.SchedISO: 4, specs.SchedIdle: 5, specs.SchedDeadline: 6,
}

// SchedFlags maps the spec's scheduler flags to sched_attr flag bits.
var SchedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: 0x01, specs.SchedFlagReclaim: 0x02, specs.SchedFlagDLOverrun: 0x04,
	specs.SchedFlagKeepPolicy: 0x08, specs.SchedFlagKeepParams: 0x10, specs.SchedFlagUtilClampMin: 0x20,
	specs.SchedFlagUtilClampMax: 0x40,
}

// ValidateExecProcess checks a process given to exec.
func ValidateExecProcess(p *specs.Process) error {
	if p == nil {
		return errors.New("process: missing")
	}
	return validateProcess(p, "process")
}

func validateLinux(spec *specs.Spec) error {
	l := spec.Linux
	seen := map[specs.LinuxNamespaceType]bool{}
	for i, ns := range l.Namespaces {
		if !namespaceTypes[ns.Type] {
			return fmt.Errorf("linux.namespaces[%d].type: unknown namespace type %q", i, ns.Type)
		}
		if seen[ns.Type] {
			return fmt.Errorf("linux.namespaces[%d].type: %s is listed twice", i, ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path != "" && !filepath.IsAbs(ns.Path) {
			return fmt.Errorf("linux.namespaces[%d].path: %q is not absolute", i, ns.Path)
		}
		if ns.Path != "" {
			if _, err := os.Stat(ns.Path); err != nil {
				return fmt.Errorf("linux.namespaces[%d].path: %w", i, err)
			}
		}
	}
	if (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) && !NewNamespace(spec, specs.UserNamespace) {
		return errors.New("linux.uidMappings: ID mappings need a new user namespace in linux.namespaces")
	}
	if NewNamespace(spec, specs.UserNamespace) && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0) {
		return errors.New("linux.uidMappings: a new user namespace needs both uidMappings and gidMappings")
	}
	if len(l.TimeOffsets) > 0 {
		if !NewNamespace(spec, specs.TimeNamespace) {
			return errors.New("linux.timeOffsets: offsets need a new time namespace in linux.namespaces")
		}
		for k := range l.TimeOffsets {
			if k != "monotonic" && k != "boottime" {
				return fmt.Errorf("linux.timeOffsets: unknown clock %q (monotonic or boottime)", k)
			}
		}
	}
	if !propagations[l.RootfsPropagation] {
		return fmt.Errorf("linux.rootfsPropagation: unknown propagation %q", l.RootfsPropagation)
	}
	for i, d := range l.Devices {
		if !filepath.IsAbs(d.Path) {
			return fmt.Errorf("linux.devices[%d].path: %q is not absolute", i, d.Path)
		}
		switch d.Type {
		case "c", "b", "u", "p":
		default:
			return fmt.Errorf("linux.devices[%d].type: %q is not one of c, b, u, p", i, d.Type)
		}
	}
	for i, p := range l.MaskedPaths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("linux.maskedPaths[%d]: %q is not absolute", i, p)
		}
	}
	for i, p := range l.ReadonlyPaths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("linux.readonlyPaths[%d]: %q is not absolute", i, p)
		}
	}
	if err := cgroups.ValidateResources(l.Resources); err != nil {
		return err
	}
	for key := range l.Sysctl {
		if err := checkSysctl(spec, key); err != nil {
			return fmt.Errorf("linux.sysctl[%s]: %w", key, err)
		}
	}
	if l.Seccomp != nil {
		if err := seccomp.Validate(l.Seccomp); err != nil {
			return err
		}
	}
	if l.Personality != nil {
		switch l.Personality.Domain {
		case specs.PerLinux, specs.PerLinux32:
		default:
			return fmt.Errorf("linux.personality.domain: unknown domain %q", l.Personality.Domain)
		}
	}
	if l.IntelRdt != nil {
		return errors.New("linux.intelRdt: Intel RDT is not supported")
	}
	if l.MountLabel != "" {
		return errors.New("linux.mountLabel: SELinux labels are not supported")
	}
	return nil
}

var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// checkSysctl allows only sysctls that belong to a namespace the container
// has of its own, so a container can never change the host's settings.
func checkSysctl(spec *specs.Spec, key string) error {
	k := strings.ReplaceAll(key, "/", ".")
	switch {
	case ipcSysctls[k] || strings.HasPrefix(k, "fs.mqueue."):
		if HasNamespace(spec, specs.IPCNamespace) {
			return nil
		}
		return errors.New("an IPC sysctl needs an IPC namespace")
	case strings.HasPrefix(k, "net."):
		if HasNamespace(spec, specs.NetworkNamespace) {
			return nil
		}
		return errors.New("a network sysctl needs a network namespace")
	case k == "kernel.hostname" || k == "kernel.domainname":
		if HasNamespace(spec, specs.UTSNamespace) {
			return nil
		}
		return errors.New("needs a UTS namespace")
	}
	return errors.New("not a sysctl of any namespace, so setting it would change the host")
}

func validateMount(m specs.Mount) error {
	if m.Destination == "" {
		return errors.New("destination: missing")
	}
	if !filepath.IsAbs(m.Destination) {
		return fmt.Errorf("destination: %q is not absolute", m.Destination)
	}
	for _, o := range m.Options {
		if o == "" {
			return errors.New("options: an option is empty")
		}
	}
	if (len(m.UIDMappings) > 0) != (len(m.GIDMappings) > 0) {
		return errors.New("uidMappings and gidMappings must be given together")
	}
	return nil
}
