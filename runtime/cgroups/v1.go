package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v1 manages one directory per mounted hierarchy. In the hybrid layout the
// cgroup2 mount is joined as well (key ""), as systemd expects, though it
// carries no limits.
type v1 struct {
	paths map[string]string // hierarchy key -> cgroup directory
	bases map[string]string // hierarchy key -> mountpoint
	made  []string          // directories Create made, outermost first
}

// hierarchyKey names a v1 mount by its controllers ("cpu,cpuacct",
// "name=systemd") or "" for cgroup2.
func hierarchyKey(fstype, superOpts string) string {
	if fstype == "cgroup2" {
		return ""
	}
	var ctrls []string
	for _, o := range strings.Split(superOpts, ",") {
		switch o {
		case "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children", "xattr", "noprefix", "cpuset_v2_mode", "favordynmods":
			continue
		}
		if strings.HasPrefix(o, "release_agent=") {
			continue
		}
		ctrls = append(ctrls, o)
	}
	return strings.Join(ctrls, ",")
}

func newV1(o Options) (*v1, error) {
	ms, err := mounts()
	if err != nil {
		return nil, fmt.Errorf("read cgroup mounts: %w", err)
	}
	own, err := ownCgroups()
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	m := &v1{paths: map[string]string{}, bases: map[string]string{}}
	for _, mi := range ms {
		key := hierarchyKey(mi.FSType, mi.VFSOptions)
		if _, dup := m.paths[key]; dup {
			continue
		}
		ownPath, ok := own[key]
		if !ok {
			// Hierarchies the runtime is not in (bind mounts of a
			// subtree elsewhere) cannot be placed relative to it.
			continue
		}
		inner := innerPath(o, ownPath)
		// A mount of a subtree (inside a container) starts at mi.Root.
		if mi.Root != "/" {
			inner = strings.TrimPrefix(inner, mi.Root)
		}
		m.paths[key] = filepath.Join(mi.Mountpoint, inner)
		m.bases[key] = mi.Mountpoint
	}
	if len(m.paths) == 0 {
		return nil, errors.New("no cgroup hierarchies are mounted")
	}
	return m, nil
}

func (m *v1) Version() int { return 1 }

func (m *v1) Paths() map[string]string { return m.paths }

// path returns the directory for the hierarchy holding controller, or "".
func (m *v1) path(controller string) string {
	for key, p := range m.paths {
		for _, c := range strings.Split(key, ",") {
			if c == controller {
				return p
			}
		}
	}
	return ""
}

func (m *v1) Create() error {
	for key, p := range m.paths {
		made, err := mkdirTracked(m.bases[key], p)
		m.made = append(m.made, made...)
		if err != nil {
			return err
		}
		if err := checkUnused(p, made); err != nil {
			return err
		}
	}
	// A new cpuset cgroup starts with no CPUs or memory nodes, and no
	// process may join it until it has some: inherit the parent's.
	for key, base := range m.bases {
		if !strings.Contains(","+key+",", ",cpuset,") {
			continue
		}
		for _, d := range m.made {
			if strings.HasPrefix(d, base+"/") {
				if err := inheritCpuset(d); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func inheritCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := readFile(dir, f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return err
		}
		if cur != "" {
			continue
		}
		parent, err := readFile(filepath.Dir(dir), f)
		if err != nil {
			return err
		}
		if err := writeFile(dir, f, parent); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1) Join() JoinSpec {
	var j JoinSpec
	for key, p := range m.paths {
		if key == "" {
			j.Cgroup2 = p
			continue
		}
		j.Tasks = append(j.Tasks, filepath.Join(p, "tasks"))
	}
	sort.Strings(j.Tasks)
	return j
}

func (m *v1) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if err := ValidateResources(r); err != nil {
		return err
	}
	if err := m.setCpuset(r.CPU); err != nil {
		return err
	}
	if err := m.setMemory(r.Memory); err != nil {
		return err
	}
	if err := m.setCPU(r.CPU); err != nil {
		return err
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		if err := m.write("pids", "pids.limit", "pids.max", pidsLimit(*r.Pids.Limit)); err != nil {
			return err
		}
	}
	if err := m.setBlkio(r.BlockIO); err != nil {
		return err
	}
	for i, h := range r.HugepageLimits {
		f := "hugetlb." + h.Pagesize + ".limit_in_bytes"
		if err := m.write("hugetlb", fmt.Sprintf("hugepageLimits[%d]", i), f, strconv.FormatUint(h.Limit, 10)); err != nil {
			return err
		}
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			if err := m.write("net_cls", "network.classID", "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10)); err != nil {
				return err
			}
		}
		for i, p := range n.Priorities {
			if err := m.write("net_prio", fmt.Sprintf("network.priorities[%d]", i), "net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority)); err != nil {
				return err
			}
		}
	}
	for name, l := range r.Rdma {
		v := rdmaLimit(name, l)
		if err := m.write("rdma", "rdma["+name+"]", "rdma.max", v); err != nil {
			return err
		}
	}
	if len(r.Unified) > 0 {
		return fieldErr("unified", errors.New("needs cgroup v2, but this host mounts cgroup v1 controllers"))
	}
	if r.Devices != nil {
		if err := m.setDevices(r.Devices); err != nil {
			return err
		}
	}
	return nil
}

// write sets a knob of controller, failing with the spec field's name if the
// controller is not mounted or the kernel refuses the value.
func (m *v1) write(controller, field, file, value string) error {
	p := m.path(controller)
	if p == "" {
		return fieldErr(field, fmt.Errorf("the %s cgroup controller is not mounted", controller))
	}
	return fieldErr(field, writeFile(p, file, value))
}

func pidsLimit(l int64) string {
	if l <= 0 {
		return "max"
	}
	return strconv.FormatInt(l, 10)
}

func rdmaLimit(name string, l specs.LinuxRdma) string {
	v := name
	if l.HcaHandles != nil {
		v += " hca_handle=" + strconv.FormatUint(uint64(*l.HcaHandles), 10)
	}
	if l.HcaObjects != nil {
		v += " hca_object=" + strconv.FormatUint(uint64(*l.HcaObjects), 10)
	}
	return v
}

func (m *v1) setCpuset(c *specs.LinuxCPU) error {
	if c == nil {
		return nil
	}
	if c.Cpus != "" {
		if err := m.write("cpuset", "cpu.cpus", "cpuset.cpus", c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := m.write("cpuset", "cpu.mems", "cpuset.mems", c.Mems); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1) setCPU(c *specs.LinuxCPU) error {
	if c == nil {
		return nil
	}
	if c.Shares != nil && *c.Shares != 0 {
		if err := m.write("cpu", "cpu.shares", "cpu.shares", strconv.FormatUint(*c.Shares, 10)); err != nil {
			return err
		}
	}
	// The kernel checks quota against period as each is written, so the
	// order that works depends on the current values: try both.
	var writes []func() error
	if c.Period != nil && *c.Period != 0 {
		writes = append(writes, func() error {
			return m.write("cpu", "cpu.period", "cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10))
		})
	}
	if c.Quota != nil && *c.Quota != 0 {
		writes = append(writes, func() error {
			return m.write("cpu", "cpu.quota", "cpu.cfs_quota_us", strconv.FormatInt(*c.Quota, 10))
		})
	}
	if err := bothOrders(writes); err != nil {
		return err
	}
	if c.Burst != nil {
		if err := m.write("cpu", "cpu.burst", "cpu.cfs_burst_us", strconv.FormatUint(*c.Burst, 10)); err != nil {
			return err
		}
	}
	writes = writes[:0]
	if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
		writes = append(writes, func() error {
			return m.write("cpu", "cpu.realtimePeriod", "cpu.rt_period_us", strconv.FormatUint(*c.RealtimePeriod, 10))
		})
	}
	if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
		writes = append(writes, func() error {
			return m.write("cpu", "cpu.realtimeRuntime", "cpu.rt_runtime_us", strconv.FormatInt(*c.RealtimeRuntime, 10))
		})
	}
	if err := bothOrders(writes); err != nil {
		return err
	}
	if c.Idle != nil {
		if err := m.write("cpu", "cpu.idle", "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			return err
		}
	}
	return nil
}

// bothOrders runs up to two dependent writes, retrying in reverse order if
// the first attempt fails.
func bothOrders(writes []func() error) error {
	var first error
	for _, w := range writes {
		if err := w(); err != nil {
			first = err
			break
		}
	}
	if first == nil || len(writes) < 2 {
		return first
	}
	for i := len(writes) - 1; i >= 0; i-- {
		if err := writes[i](); err != nil {
			return first
		}
	}
	return nil
}

func (m *v1) setMemory(mem *specs.LinuxMemory) error {
	if mem == nil {
		return nil
	}
	dir := m.path("memory")
	anySet := mem.Limit != nil || mem.Reservation != nil || mem.Swap != nil || mem.KernelTCP != nil ||
		mem.Swappiness != nil || mem.DisableOOMKiller != nil || mem.UseHierarchy != nil
	if dir == "" {
		if anySet {
			return fieldErr("memory", errors.New("the memory cgroup controller is not mounted"))
		}
		return nil
	}
	if mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate && mem.Limit != nil && *mem.Limit > 0 {
		usage, err := readUint(dir, "memory.usage_in_bytes")
		if err == nil && uint64(*mem.Limit) < usage {
			return fieldErr("memory.limit", fmt.Errorf("%d is below the current usage of %d bytes", *mem.Limit, usage))
		}
	}
	setLimit := func() error {
		if mem.Limit == nil || *mem.Limit == 0 {
			return nil
		}
		return fieldErr("memory.limit", writeFile(dir, "memory.limit_in_bytes", strconv.FormatInt(*mem.Limit, 10)))
	}
	setSwap := func() error {
		if mem.Swap == nil || *mem.Swap == 0 {
			return nil
		}
		return fieldErr("memory.swap", writeFile(dir, "memory.memsw.limit_in_bytes", strconv.FormatInt(*mem.Swap, 10)))
	}
	// memory+swap may never be below memory alone: when the new total
	// grows past the current one, raise it first.
	swapFirst := false
	if mem.Swap != nil && *mem.Swap != 0 {
		cur, err := readUint(dir, "memory.memsw.limit_in_bytes")
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		swapFirst = *mem.Swap == -1 || uint64(*mem.Swap) > cur
	}
	order := []func() error{setLimit, setSwap}
	if swapFirst {
		order = []func() error{setSwap, setLimit}
	}
	for _, f := range order {
		if err := f(); err != nil {
			return err
		}
	}
	if mem.Reservation != nil && *mem.Reservation != 0 {
		if err := fieldErr("memory.reservation", writeFile(dir, "memory.soft_limit_in_bytes", strconv.FormatInt(*mem.Reservation, 10))); err != nil {
			return err
		}
	}
	if mem.KernelTCP != nil && *mem.KernelTCP != 0 {
		if err := fieldErr("memory.kernelTCP", writeFile(dir, "memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(*mem.KernelTCP, 10))); err != nil {
			return err
		}
	}
	if mem.Swappiness != nil && *mem.Swappiness <= 100 {
		if err := fieldErr("memory.swappiness", writeFile(dir, "memory.swappiness", strconv.FormatUint(*mem.Swappiness, 10))); err != nil {
			return err
		}
	} else if mem.Swappiness != nil && int64(*mem.Swappiness) != -1 {
		return fieldErr("memory.swappiness", fmt.Errorf("%d is out of range 0-100", *mem.Swappiness))
	}
	if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
		if err := fieldErr("memory.disableOOMKiller", writeFile(dir, "memory.oom_control", "1")); err != nil {
			return err
		}
	}
	if mem.UseHierarchy != nil {
		v := "0"
		if *mem.UseHierarchy {
			v = "1"
		}
		cur, _ := readFile(dir, "memory.use_hierarchy")
		if cur != v {
			if err := fieldErr("memory.useHierarchy", writeFile(dir, "memory.use_hierarchy", v)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v1) setBlkio(b *specs.LinuxBlockIO) error {
	if b == nil {
		return nil
	}
	dir := m.path("blkio")
	if dir == "" {
		return fieldErr("blockIO", errors.New("the blkio cgroup controller is not mounted"))
	}
	// With the BFQ scheduler only its own weight files exist.
	weightFile, weightDeviceFile := "blkio.weight", "blkio.weight_device"
	if _, err := os.Stat(filepath.Join(dir, weightFile)); err != nil {
		weightFile, weightDeviceFile = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	if b.Weight != nil && *b.Weight != 0 {
		if err := fieldErr("blockIO.weight", writeFile(dir, weightFile, strconv.Itoa(int(*b.Weight)))); err != nil {
			return err
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		if err := fieldErr("blockIO.leafWeight", writeFile(dir, "blkio.leaf_weight", strconv.Itoa(int(*b.LeafWeight)))); err != nil {
			return err
		}
	}
	for i, d := range b.WeightDevice {
		if d.Weight != nil {
			v := fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight)
			if err := fieldErr(fmt.Sprintf("blockIO.weightDevice[%d]", i), writeFile(dir, weightDeviceFile, v)); err != nil {
				return err
			}
		}
		if d.LeafWeight != nil {
			v := fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.LeafWeight)
			if err := fieldErr(fmt.Sprintf("blockIO.weightDevice[%d].leafWeight", i), writeFile(dir, "blkio.leaf_weight_device", v)); err != nil {
				return err
			}
		}
	}
	throttles := []struct {
		field, file string
		list        []specs.LinuxThrottleDevice
	}{
		{"throttleReadBpsDevice", "blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"throttleWriteBpsDevice", "blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"throttleReadIOPSDevice", "blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	}
	for _, t := range throttles {
		for i, d := range t.list {
			v := fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate)
			if err := fieldErr(fmt.Sprintf("blockIO.%s[%d]", t.field, i), writeFile(dir, t.file, v)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v1) setDevices(rules []specs.LinuxDeviceCgroup) error {
	dir := m.path("devices")
	if dir == "" {
		return fieldErr("devices", fmt.Errorf("the devices cgroup controller is not mounted: %w", ErrNoDeviceControl))
	}
	for i, r := range withDefaultDevices(rules) {
		file := "devices.deny"
		if r.Allow {
			file = "devices.allow"
		}
		field := fmt.Sprintf("devices[%d]", i-1)
		if i == 0 || i > len(rules) {
			field = "devices (default " + ruleString(r) + ")"
		}
		if err := fieldErr(field, writeFile(dir, file, ruleString(r))); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1) Freeze(frozen bool) error {
	dir := m.path("freezer")
	if dir == "" {
		return errors.New("the freezer cgroup controller is not mounted")
	}
	want := "THAWED"
	if frozen {
		want = "FROZEN"
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Writing FROZEN again nudges a freeze that raced with a fork.
		if err := writeFile(dir, "freezer.state", want); err != nil {
			return err
		}
		state, err := readFile(dir, "freezer.state")
		if err != nil {
			return err
		}
		if state == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s did not reach %s (still %s)", dir, want, state)
		}
		time.Sleep(time.Millisecond)
	}
}

func (m *v1) Frozen() (bool, error) {
	dir := m.path("freezer")
	if dir == "" {
		return false, nil
	}
	state, err := readFile(dir, "freezer.state")
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	return state == "FROZEN" || state == "FREEZING", nil
}

func (m *v1) Pids() ([]int, error) {
	// Every hierarchy holds the same processes; pick one that always exists.
	for _, c := range []string{"pids", "devices", "freezer", "memory", "cpu"} {
		if p := m.path(c); p != "" {
			return readPids(p)
		}
	}
	for _, p := range m.paths {
		return readPids(p)
	}
	return nil, nil
}

func (m *v1) Undo() error {
	leaves := map[string]bool{}
	for _, p := range m.paths {
		leaves[p] = true
	}
	err := undoMade(m.made, leaves)
	m.made = nil
	return err
}

func (m *v1) Kill() error { return errors.ErrUnsupported }

func (m *v1) Destroy() error {
	var errs []error
	for _, p := range m.paths {
		if err := removeDir(p); err != nil {
			errs = append(errs, err)
		}
	}
	// Parents made for this cgroup go too, unless another container
	// has moved in meanwhile: one attempt each, no waiting.
	for i := len(m.made) - 1; i >= 0; i-- {
		_ = unix.Rmdir(m.made[i])
	}
	m.made = nil
	return errors.Join(errs...)
}
