package cgroups

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats are a container's usage counters, shaped as runc's `events` prints
// them so that tools reading that output read Berth's too.
type Stats struct {
	CPU     CPUStats               `json:"cpu"`
	Memory  MemoryStats            `json:"memory"`
	Pids    PidsStats              `json:"pids"`
	Blkio   BlkioStats             `json:"blkio"`
	Hugetlb map[string]HugetlbStat `json:"hugetlb,omitempty"`
}

type CPUStats struct {
	Usage      CPUUsage   `json:"usage"`
	Throttling Throttling `json:"throttling"`
}

// CPUUsage is in nanoseconds.
type CPUUsage struct {
	Total  uint64   `json:"total"`
	Percpu []uint64 `json:"percpu,omitempty"`
	Kernel uint64   `json:"kernel"`
	User   uint64   `json:"user"`
}

type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttled_periods,omitempty"`
	ThrottledTime    uint64 `json:"throttled_time,omitempty"`
}

type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

type MemoryStats struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage"`
	Swap      MemoryEntry       `json:"swap"`
	Kernel    MemoryEntry       `json:"kernel"`
	KernelTCP MemoryEntry       `json:"kernelTCP"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
	OOMKills  uint64            `json:"oom_kills,omitempty"`
}

type PidsStats struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

type BlkioStats struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
}

type HugetlbStat struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// readKV parses "key value" lines (memory.stat, cpu.stat, ...).
func readKV(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, s.Err()
}

// tolerant returns the value of a knob that may not exist on this kernel.
func tolerant(dir, file string) uint64 {
	v, _ := readUint(dir, file)
	return v
}

func (m *v1) Stats() (*Stats, error) {
	st := &Stats{}
	if dir := m.path("cpuacct"); dir != "" {
		st.CPU.Usage.Total = tolerant(dir, "cpuacct.usage")
		if s, err := readFile(dir, "cpuacct.usage_percpu"); err == nil {
			for _, f := range strings.Fields(s) {
				n, _ := strconv.ParseUint(f, 10, 64)
				st.CPU.Usage.Percpu = append(st.CPU.Usage.Percpu, n)
			}
		}
		// cpuacct.stat counts USER_HZ ticks.
		if kv, err := readKV(filepath.Join(dir, "cpuacct.stat")); err == nil {
			const nsPerTick = 1e9 / 100
			st.CPU.Usage.User = kv["user"] * nsPerTick
			st.CPU.Usage.Kernel = kv["system"] * nsPerTick
		}
	}
	if dir := m.path("cpu"); dir != "" {
		if kv, err := readKV(filepath.Join(dir, "cpu.stat")); err == nil {
			st.CPU.Throttling = Throttling{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_time"]}
		}
	}
	if dir := m.path("memory"); dir != "" {
		entry := func(prefix string) MemoryEntry {
			return MemoryEntry{
				Limit:   tolerant(dir, prefix+"limit_in_bytes"),
				Usage:   tolerant(dir, prefix+"usage_in_bytes"),
				Max:     tolerant(dir, prefix+"max_usage_in_bytes"),
				Failcnt: tolerant(dir, prefix+"failcnt"),
			}
		}
		st.Memory.Usage = entry("memory.")
		st.Memory.Swap = entry("memory.memsw.")
		st.Memory.Kernel = entry("memory.kmem.")
		st.Memory.KernelTCP = entry("memory.kmem.tcp.")
		if kv, err := readKV(filepath.Join(dir, "memory.stat")); err == nil {
			st.Memory.Raw = kv
			st.Memory.Cache = kv["total_cache"]
		}
		if kv, err := readKV(filepath.Join(dir, "memory.oom_control")); err == nil {
			st.Memory.OOMKills = kv["oom_kill"]
		}
	}
	if dir := m.path("pids"); dir != "" {
		st.Pids.Current = tolerant(dir, "pids.current")
		st.Pids.Limit = tolerant(dir, "pids.max")
	}
	if dir := m.path("blkio"); dir != "" {
		st.Blkio.IoServiceBytesRecursive = readBlkio(filepath.Join(dir, "blkio.throttle.io_service_bytes_recursive"))
		st.Blkio.IoServicedRecursive = readBlkio(filepath.Join(dir, "blkio.throttle.io_serviced_recursive"))
	}
	return st, nil
}

// readBlkio parses "maj:min Op value" lines.
func readBlkio(path string) []BlkioEntry {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []BlkioEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			continue
		}
		e := BlkioEntry{Op: f[1]}
		e.Major, _ = strconv.ParseUint(maj, 10, 64)
		e.Minor, _ = strconv.ParseUint(min, 10, 64)
		e.Value, _ = strconv.ParseUint(f[2], 10, 64)
		out = append(out, e)
	}
	return out
}

func (m *v2) Stats() (*Stats, error) {
	st := &Stats{}
	if kv, err := readKV(filepath.Join(m.dir, "cpu.stat")); err == nil {
		st.CPU.Usage.Total = kv["usage_usec"] * 1000
		st.CPU.Usage.User = kv["user_usec"] * 1000
		st.CPU.Usage.Kernel = kv["system_usec"] * 1000
		st.CPU.Throttling = Throttling{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_usec"] * 1000}
	}
	st.Memory.Usage = MemoryEntry{
		Usage: tolerant(m.dir, "memory.current"),
		Limit: tolerant(m.dir, "memory.max"),
		Max:   tolerant(m.dir, "memory.peak"),
	}
	st.Memory.Swap = MemoryEntry{
		Usage: tolerant(m.dir, "memory.swap.current"),
		Limit: tolerant(m.dir, "memory.swap.max"),
	}
	if kv, err := readKV(filepath.Join(m.dir, "memory.stat")); err == nil {
		st.Memory.Raw = kv
		st.Memory.Cache = kv["file"]
	}
	if kv, err := readKV(filepath.Join(m.dir, "memory.events")); err == nil {
		st.Memory.Usage.Failcnt = kv["max"]
		st.Memory.OOMKills = kv["oom_kill"]
	}
	st.Pids.Current = tolerant(m.dir, "pids.current")
	st.Pids.Limit = tolerant(m.dir, "pids.max")
	if b, err := os.ReadFile(filepath.Join(m.dir, "io.stat")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			maj, min, _ := strings.Cut(f[0], ":")
			majN, _ := strconv.ParseUint(maj, 10, 64)
			minN, _ := strconv.ParseUint(min, 10, 64)
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseUint(v, 10, 64)
				switch k {
				case "rbytes", "wbytes":
					op := map[string]string{"rbytes": "Read", "wbytes": "Write"}[k]
					st.Blkio.IoServiceBytesRecursive = append(st.Blkio.IoServiceBytesRecursive, BlkioEntry{Major: majN, Minor: minN, Op: op, Value: n})
				case "rios", "wios":
					op := map[string]string{"rios": "Read", "wios": "Write"}[k]
					st.Blkio.IoServicedRecursive = append(st.Blkio.IoServicedRecursive, BlkioEntry{Major: majN, Minor: minN, Op: op, Value: n})
				}
			}
		}
	}
	return st, nil
}
