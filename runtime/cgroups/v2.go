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

// v2 manages one directory in the unified hierarchy.
type v2 struct {
	root string // where cgroup2 is mounted
	dir  string
	made []string
}

func newV2(root string, o Options) (*v2, error) {
	own := "/"
	if o.Path == "" || !filepath.IsAbs(o.Path) {
		cg, err := ownCgroups()
		if err != nil {
			return nil, fmt.Errorf("read own cgroups: %w", err)
		}
		own = cg[""]
	}
	return &v2{root: root, dir: filepath.Join(root, innerPath(o, own))}, nil
}

func (m *v2) Version() int { return 2 }

func (m *v2) Paths() map[string]string { return map[string]string{"": m.dir} }

func (m *v2) Create() error {
	made, err := mkdirTracked(m.root, m.dir)
	m.made = append(m.made, made...)
	if err != nil {
		return err
	}
	if err := checkUnused(m.dir, made); err != nil {
		return err
	}
	// Controllers reach a cgroup only if every ancestor delegates them.
	// Enable what the root offers, one level at a time.
	avail, err := readFile(m.root, "cgroup.controllers")
	if err != nil {
		return fmt.Errorf("read %s/cgroup.controllers: %w", m.root, err)
	}
	var enable []string
	for _, c := range strings.Fields(avail) {
		enable = append(enable, "+"+c)
	}
	if len(enable) == 0 {
		return nil
	}
	rel, _ := filepath.Rel(m.root, m.dir)
	cur := m.root
	for _, part := range strings.Split(rel, "/") {
		if part == "." {
			break
		}
		if err := enableControllers(cur, enable); err != nil {
			return err
		}
		cur = filepath.Join(cur, part)
	}
	return nil
}

// enableControllers delegates controllers to dir's children, skipping any the
// kernel refuses one by one (a controller may be unavailable at this level).
func enableControllers(dir string, enable []string) error {
	if err := writeFile(dir, "cgroup.subtree_control", strings.Join(enable, " ")); err == nil {
		return nil
	}
	var firstErr error
	for _, c := range enable {
		if err := writeFile(dir, "cgroup.subtree_control", c); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	have, _ := readFile(dir, "cgroup.subtree_control")
	if have == "" && firstErr != nil {
		return fmt.Errorf("delegate controllers: %w", firstErr)
	}
	return nil
}

func (m *v2) Join() JoinSpec { return JoinSpec{Cgroup2: m.dir} }

func (m *v2) write(field, file, value string) error {
	return fieldErr(field, writeFile(m.dir, file, value))
}

// ConvertCPUShares maps v1 cpu.shares [2, 262144] linearly onto v2
// cpu.weight [1, 10000], both ends onto both ends.
func ConvertCPUShares(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares < 2 {
		shares = 2
	}
	if shares > 262144 {
		shares = 262144
	}
	return 1 + ((shares-2)*9999)/262142
}

// ConvertBlkioWeight maps v1 blkio.weight [10, 1000] onto io.weight [1, 10000].
func ConvertBlkioWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	if w < 10 {
		w = 10
	}
	return 1 + (uint64(w)-10)*9999/990
}

func (m *v2) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if err := ValidateResources(r); err != nil {
		return err
	}
	if c := r.CPU; c != nil {
		if c.Cpus != "" {
			if err := m.write("cpu.cpus", "cpuset.cpus", c.Cpus); err != nil {
				return err
			}
		}
		if c.Mems != "" {
			if err := m.write("cpu.mems", "cpuset.mems", c.Mems); err != nil {
				return err
			}
		}
		if c.Shares != nil && *c.Shares != 0 {
			if err := m.write("cpu.shares", "cpu.weight", strconv.FormatUint(ConvertCPUShares(*c.Shares), 10)); err != nil {
				return err
			}
		}
		if (c.Quota != nil && *c.Quota != 0) || (c.Period != nil && *c.Period != 0) {
			quota := "max"
			if c.Quota != nil && *c.Quota > 0 {
				quota = strconv.FormatInt(*c.Quota, 10)
			} else if c.Quota == nil {
				// Only the period changes: keep the current quota.
				if cur, err := readFile(m.dir, "cpu.max"); err == nil {
					quota = strings.Fields(cur + " max")[0]
				}
			}
			v := quota
			if c.Period != nil && *c.Period != 0 {
				v += " " + strconv.FormatUint(*c.Period, 10)
			}
			if err := m.write("cpu.quota", "cpu.max", v); err != nil {
				return err
			}
		}
		if c.Burst != nil {
			if err := m.write("cpu.burst", "cpu.max.burst", strconv.FormatUint(*c.Burst, 10)); err != nil {
				return err
			}
		}
		if c.Idle != nil {
			if err := m.write("cpu.idle", "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
				return err
			}
		}
		if (c.RealtimePeriod != nil && *c.RealtimePeriod != 0) || (c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0) {
			return fieldErr("cpu.realtimeRuntime", errors.New("realtime scheduling limits do not exist in cgroup v2"))
		}
	}
	if mem := r.Memory; mem != nil {
		if err := m.setMemory(mem); err != nil {
			return err
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		if err := m.write("pids.limit", "pids.max", pidsLimit(*r.Pids.Limit)); err != nil {
			return err
		}
	}
	if b := r.BlockIO; b != nil {
		if err := m.setIO(b); err != nil {
			return err
		}
	}
	for i, h := range r.HugepageLimits {
		if err := m.write(fmt.Sprintf("hugepageLimits[%d]", i), "hugetlb."+h.Pagesize+".max", strconv.FormatUint(h.Limit, 10)); err != nil {
			return err
		}
	}
	if n := r.Network; n != nil && (n.ClassID != nil || len(n.Priorities) > 0) {
		return fieldErr("network", errors.New("net_cls and net_prio do not exist in cgroup v2"))
	}
	names := make([]string, 0, len(r.Rdma))
	for name := range r.Rdma {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := m.write("rdma["+name+"]", "rdma.max", rdmaLimit(name, r.Rdma[name])); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(r.Unified))
	for k := range r.Unified {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := m.write("unified["+k+"]", k, r.Unified[k]); err != nil {
			return err
		}
	}
	if r.Devices != nil {
		if err := fieldErr("devices", attachDeviceFilter(m.dir, r.Devices)); err != nil {
			return err
		}
	}
	return nil
}

func (m *v2) setMemory(mem *specs.LinuxMemory) error {
	if mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate && mem.Limit != nil && *mem.Limit > 0 {
		usage, err := readUint(m.dir, "memory.current")
		if err == nil && uint64(*mem.Limit) < usage {
			return fieldErr("memory.limit", fmt.Errorf("%d is below the current usage of %d bytes", *mem.Limit, usage))
		}
	}
	// The spec's swap is memory plus swap, as in v1; v2 limits swap alone.
	if mem.Swap != nil && *mem.Swap != 0 {
		v := "max"
		if *mem.Swap > 0 {
			if mem.Limit == nil || *mem.Limit <= 0 {
				return fieldErr("memory.swap", errors.New("a swap limit needs a memory limit on cgroup v2"))
			}
			if *mem.Swap < *mem.Limit {
				return fieldErr("memory.swap", fmt.Errorf("memory+swap %d is below the memory limit %d", *mem.Swap, *mem.Limit))
			}
			v = strconv.FormatInt(*mem.Swap-*mem.Limit, 10)
		}
		if err := m.write("memory.swap", "memory.swap.max", v); err != nil {
			return err
		}
	}
	if mem.Limit != nil && *mem.Limit != 0 {
		v := "max"
		if *mem.Limit > 0 {
			v = strconv.FormatInt(*mem.Limit, 10)
		}
		if err := m.write("memory.limit", "memory.max", v); err != nil {
			return err
		}
	}
	if mem.Reservation != nil && *mem.Reservation != 0 {
		v := "max"
		if *mem.Reservation > 0 {
			v = strconv.FormatInt(*mem.Reservation, 10)
		}
		if err := m.write("memory.reservation", "memory.low", v); err != nil {
			return err
		}
	}
	if mem.Swappiness != nil && *mem.Swappiness <= 100 {
		return fieldErr("memory.swappiness", errors.New("there is no per-cgroup swappiness in cgroup v2"))
	}
	if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
		return fieldErr("memory.disableOOMKiller", errors.New("the OOM killer cannot be disabled per cgroup in cgroup v2"))
	}
	return nil
}

func (m *v2) setIO(b *specs.LinuxBlockIO) error {
	if b.Weight != nil && *b.Weight != 0 {
		if err := m.write("blockIO.weight", "io.weight", strconv.FormatUint(ConvertBlkioWeight(*b.Weight), 10)); err != nil {
			// With BFQ the weight is its own knob, on v1's scale.
			if err2 := m.write("blockIO.weight", "io.bfq.weight", strconv.Itoa(int(*b.Weight))); err2 != nil {
				return err
			}
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		return fieldErr("blockIO.leafWeight", errors.New("leaf weights do not exist in cgroup v2"))
	}
	for i, d := range b.WeightDevice {
		if d.Weight == nil {
			continue
		}
		v := fmt.Sprintf("%d:%d %d", d.Major, d.Minor, ConvertBlkioWeight(*d.Weight))
		if err := m.write(fmt.Sprintf("blockIO.weightDevice[%d]", i), "io.weight", v); err != nil {
			return err
		}
	}
	throttles := []struct {
		field, key string
		list       []specs.LinuxThrottleDevice
	}{
		{"throttleReadBpsDevice", "rbps", b.ThrottleReadBpsDevice},
		{"throttleWriteBpsDevice", "wbps", b.ThrottleWriteBpsDevice},
		{"throttleReadIOPSDevice", "riops", b.ThrottleReadIOPSDevice},
		{"throttleWriteIOPSDevice", "wiops", b.ThrottleWriteIOPSDevice},
	}
	for _, t := range throttles {
		for i, d := range t.list {
			rate := strconv.FormatUint(d.Rate, 10)
			if d.Rate == 0 {
				rate = "max"
			}
			v := fmt.Sprintf("%d:%d %s=%s", d.Major, d.Minor, t.key, rate)
			if err := m.write(fmt.Sprintf("blockIO.%s[%d]", t.field, i), "io.max", v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v2) Freeze(frozen bool) error {
	want := "0"
	if frozen {
		want = "1"
	}
	if err := writeFile(m.dir, "cgroup.freeze", want); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		events, err := readFile(m.dir, "cgroup.events")
		if err != nil {
			return err
		}
		if eventValue(events, "frozen") == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s did not reach frozen=%s", m.dir, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func eventValue(events, key string) string {
	for _, line := range strings.Split(events, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			return f[1]
		}
	}
	return ""
}

func (m *v2) Frozen() (bool, error) {
	v, err := readFile(m.dir, "cgroup.freeze")
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	return v == "1", nil
}

func (m *v2) Pids() ([]int, error) { return readPids(m.dir) }

func (m *v2) Kill() error {
	err := writeFile(m.dir, "cgroup.kill", "1")
	if errors.Is(err, os.ErrNotExist) {
		return errors.ErrUnsupported
	}
	return err
}

func (m *v2) Undo() error {
	err := undoMade(m.made, map[string]bool{m.dir: true})
	m.made = nil
	return err
}

func (m *v2) Destroy() error {
	var errs []error
	if err := removeDir(m.dir); err != nil {
		errs = append(errs, err)
	}
	// Parents made for this cgroup go too, unless another container
	// has moved in meanwhile: one attempt each, no waiting.
	for i := len(m.made) - 1; i >= 0; i-- {
		_ = unix.Rmdir(m.made[i])
	}
	m.made = nil
	return errors.Join(errs...)
}
