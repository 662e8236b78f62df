// Package cgroups places containers in control groups and applies the OCI
// runtime spec's linux.resources to them, on cgroup v1 (including the hybrid
// layout of v1 controllers beside an empty cgroup2 mount) and on cgroup v2.
//
// Which one is used follows what is mounted, never a setting: a cgroup2
// filesystem at the root of the hierarchy (/sys/fs/cgroup) means v2, anything
// else means v1 with every mounted hierarchy joined.
package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Manager is one container's cgroup, whichever version backs it.
type Manager interface {
	// Create makes the cgroup directories. It refuses a cgroup that
	// already exists with processes in it: they would share the
	// container's limits, and its end. It remembers which directories
	// it made, for Undo.
	Create() error
	// Undo removes the directories Create made and no others: a cgroup
	// that existed before a failed create is left as it was.
	Undo() error
	// Join says how a process about to start gets into the cgroup: see
	// JoinSpec.
	Join() JoinSpec
	// Set writes resource limits. It is used at create and by update.
	Set(r *specs.LinuxResources) error
	// Freeze stops (true) or thaws (false) every process in the cgroup and
	// waits until the kernel reports the new state.
	Freeze(frozen bool) error
	// Frozen reports whether the cgroup is frozen.
	Frozen() (bool, error)
	// Kill sends SIGKILL to every process in the cgroup at once, frozen
	// or not, where the kernel can (v2's cgroup.kill, Linux 5.14);
	// otherwise it returns errors.ErrUnsupported.
	Kill() error
	// Pids lists the processes in the cgroup, including its descendants.
	Pids() ([]int, error)
	// Stats reads usage counters.
	Stats() (*Stats, error)
	// Destroy removes the cgroup directories. The cgroup must hold no
	// processes; Destroy retries briefly while the kernel lets go of them.
	Destroy() error
	// Paths maps each hierarchy ("" for cgroup2) to the cgroup's directory.
	Paths() map[string]string
	// Version is 1 or 2.
	Version() int
}

// Options locate a container's cgroup.
type Options struct {
	// Path is the spec's linux.cgroupsPath. Absolute paths are taken from the
	// hierarchy's root, relative ones from the runtime's own cgroup.
	Path string
	// Name is used when Path is empty (the container ID).
	Name string
	// Root overrides where cgroup2 is mounted; tests point it at a
	// directory of their own. It selects v2.
	Root string
}

// JoinSpec is how a new process enters a cgroup cheaply. Moving a process
// by writing its PID to cgroup.procs takes a global lock whose first
// acquisition waits for an RCU grace period (milliseconds on a small
// machine); a thread that moves itself through a v1 "tasks" file skips that
// lock, and a process cloned straight into a v2 cgroup never moves at all.
type JoinSpec struct {
	// Tasks are v1 "tasks" files the process writes "0" to itself, while
	// it is still single-threaded.
	Tasks []string
	// Cgroup2 is the v2 directory to clone the process into
	// (CLONE_INTO_CGROUP), or "".
	Cgroup2 string
}

// validPagesize accepts what hugetlb's files are named by: 2MB, 1GB, 64KB.
func validPagesize(s string) bool {
	if !strings.HasSuffix(s, "B") {
		return false
	}
	num := strings.TrimRight(strings.TrimSuffix(s, "B"), "KMGT")
	if len(s)-len(num) < 1 || len(s)-len(num) > 2 || num == "" || num[0] == '0' {
		return false
	}
	return strings.Trim(num, "0123456789") == ""
}

// ValidateResources checks the parts of linux.resources that become file
// names or rule strings, so that no value can name a file outside the
// cgroup or smuggle a second rule in.
func ValidateResources(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	for i, d := range r.Devices {
		if err := ValidateDeviceRule(d); err != nil {
			return fieldErr(fmt.Sprintf("devices[%d]", i), err)
		}
	}
	for i, h := range r.HugepageLimits {
		if !validPagesize(h.Pagesize) {
			return fieldErr(fmt.Sprintf("hugepageLimits[%d].pageSize", i), fmt.Errorf("%q is not a page size such as 2MB or 1GB", h.Pagesize))
		}
	}
	for k := range r.Unified {
		if k == "" || k == "." || k == ".." || strings.ContainsAny(k, "/\x00") ||
			k == "cgroup.procs" || k == "cgroup.threads" || k == "cgroup.subtree_control" {
			return fieldErr("unified["+k+"]", errors.New("not a resource knob of this cgroup"))
		}
	}
	for name := range r.Rdma {
		if name == "" || strings.ContainsAny(name, " \n\x00") {
			return fieldErr(fmt.Sprintf("rdma[%q]", name), errors.New("not a device name"))
		}
	}
	return nil
}

// ErrNoDeviceControl means the host gives no way to restrict devices: a
// cgroup v1 layout without the devices controller.
var ErrNoDeviceControl = errors.New("no device control on this host")

// ErrSystemd is returned for a systemd-style cgroupsPath ("slice:prefix:name").
var ErrSystemd = errors.New("systemd cgroup paths (slice:prefix:name) need the systemd cgroup driver, which Berth does not provide: use a cgroupfs path such as /berth/<id>")

// IsSystemdPath reports whether p has the form systemd's driver expects.
func IsSystemdPath(p string) bool {
	return strings.Count(p, ":") == 2 && !strings.HasPrefix(p, "/")
}

const unifiedMountpoint = "/sys/fs/cgroup"

// IsV2 reports whether the host runs the unified hierarchy only.
func IsV2() bool {
	var st unix.Statfs_t
	if err := unix.Statfs(unifiedMountpoint, &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

// UnifiedMounted reports whether a cgroup2 hierarchy is mounted where hosts
// mount it: at /sys/fs/cgroup (v2) or /sys/fs/cgroup/unified (hybrid). Two
// statfs calls, for deciding things before New has read the mounts.
func UnifiedMounted() bool {
	for _, p := range []string{unifiedMountpoint, unifiedMountpoint + "/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return true
		}
	}
	return false
}

// Enter moves a process into the cgroup2 directory dir: the slow way (see
// JoinSpec), for a process that could not be cloned into it.
func Enter(dir string, pid int) error {
	return writeFile(dir, "cgroup.procs", strconv.Itoa(pid))
}

// New returns the manager for the host's cgroup layout. It touches nothing.
func New(o Options) (Manager, error) {
	if IsSystemdPath(o.Path) {
		return nil, ErrSystemd
	}
	if o.Root != "" {
		return newV2(o.Root, o)
	}
	if IsV2() {
		return newV2(unifiedMountpoint, o)
	}
	return newV1(o)
}

// Load returns the manager for a cgroup whose directories are known (from a
// container's saved state).
func Load(version int, paths map[string]string) (Manager, error) {
	switch version {
	case 1:
		return &v1{paths: paths}, nil
	case 2:
		return &v2{dir: paths[""]}, nil
	}
	return nil, fmt.Errorf("unknown cgroup version %d", version)
}

// ownCgroups parses /proc/self/cgroup: hierarchy (controller list, or "" for
// cgroup2) to path.
func ownCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		out[parts[1]] = parts[2]
	}
	return out, s.Err()
}

// innerPath turns the spec's path into one inside the hierarchy, given the
// runtime's own cgroup there.
func innerPath(o Options, own string) string {
	p := o.Path
	if p == "" {
		p = o.Name
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(own, p)
	}
	return filepath.Clean("/" + p)
}

// mounts lists the cgroup filesystems in this mount namespace.
func mounts() ([]*mountinfo.Info, error) {
	return mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return i.FSType != "cgroup" && i.FSType != "cgroup2", false
	})
}

// writeFile writes one cgroup knob, naming the knob and value on failure.
func writeFile(dir, file, value string) error {
	p := filepath.Join(dir, file)
	// Plain system calls, not os.File: a cgroup file is pollable, and
	// os.File would register and unregister each one with the poller,
	// which triples the calls of a create that writes dozens of knobs.
	// No O_CREAT: a knob this kernel lacks is ENOENT, not a new file.
	fd, err := openRetry(p, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC)
	if err == nil {
		// One write: a knob takes its value whole or refuses it.
		for {
			_, err = unix.Write(fd, []byte(value))
			if err != unix.EINTR {
				break
			}
		}
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func readFile(dir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	return strings.TrimSpace(string(b)), err
}

func readUint(dir, file string) (uint64, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return ^uint64(0), nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// fieldError names the spec field whose value the kernel refused.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return "linux.resources." + e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func fieldErr(field string, err error) error {
	if err == nil {
		return nil
	}
	return &fieldError{field: field, err: err}
}

// readPids reads cgroup.procs of dir and every directory below it.
func readPids(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p != dir {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, err
}

// removeDir removes a cgroup directory and its children, deepest first,
// retrying EBUSY for a while: the kernel keeps a cgroup busy for a moment
// after its last process has exited.
func removeDir(dir string) error {
	// Most cgroups have no children: try the directory itself first.
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := rmdirRetry(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// checkUnused refuses a cgroup leaf that existed before Create (it is not
// among made) and holds processes.
func checkUnused(leaf string, made []string) error {
	if len(made) > 0 && made[len(made)-1] == leaf {
		return nil
	}
	pids, err := readPids(leaf)
	if err != nil {
		return err
	}
	if len(pids) > 0 {
		return fmt.Errorf("cgroup %s already holds processes %v: give the container a cgroup of its own", leaf, pids)
	}
	return nil
}

// undoMade removes directories in the reverse order of their making; the
// leaves, which the container's processes may have been in a moment ago,
// get the kernel time to let go of them.
func undoMade(made []string, leaves map[string]bool) error {
	var errs []error
	for i := len(made) - 1; i >= 0; i-- {
		if leaves[made[i]] {
			if err := removeDir(made[i]); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := unix.Rmdir(made[i]); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", made[i], err))
		}
	}
	return errors.Join(errs...)
}

func rmdirRetry(dir string) error {
	delay := time.Millisecond
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// mkdirTracked creates dir and its missing parents below base and returns the
// ones it made, outermost first.
func mkdirTracked(base, dir string) ([]string, error) {
	rel, err := filepath.Rel(base, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("cgroup path %s escapes %s", dir, base)
	}
	var made []string
	cur := base
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		err := unix.Mkdir(cur, 0o755)
		if err == nil {
			made = append(made, cur)
			continue
		}
		if !errors.Is(err, unix.EEXIST) {
			return made, fmt.Errorf("create cgroup %s: %w", cur, err)
		}
	}
	return made, nil
}
