package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/runtime/cgroups"
)

// Stats are a running container's usage counters at one moment.
type Stats struct {
	Read    time.Time                  `json:"read"`
	Cgroup  *cgroups.Stats             `json:"cgroup"`
	Network map[string]InterfaceCounts `json:"network,omitempty"`
	// SystemCPU is the host's CPU time in nanoseconds, all CPUs (the
	// denominator of a CPU percentage), and OnlineCPUs how many there are.
	SystemCPU  uint64 `json:"systemCpu"`
	OnlineCPUs int    `json:"onlineCpus"`
}

// InterfaceCounts are one network interface's counters.
type InterfaceCounts struct {
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// cgroup is the container's cgroup, wherever the runtime placed it: every
// runtime Berth runs is given the same absolute cgroupsPath.
func (e *Engine) cgroup(id string) (cgroups.Manager, error) {
	return cgroups.New(cgroups.Options{Path: path.Join(e.cfg.CgroupParent, id)})
}

// Stats reads a running container's counters: its cgroup's, and its
// network namespace's interfaces through its process.
func (e *Engine) Stats(ref string) (Stats, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return Stats{}, err
	}
	rec := c.snapshot()
	if rec.State.Status != Running {
		return Stats{}, fmt.Errorf("%w: %s", ErrNotRunning, rec.ID[:12])
	}
	cg, err := e.cgroup(rec.ID)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Read: time.Now().UTC()}
	if st.Cgroup, err = cg.Stats(); err != nil {
		return Stats{}, fmt.Errorf("cgroup stats: %w", err)
	}
	if rec.Spec.Network != "host" && rec.State.Pid > 0 {
		st.Network, _ = netDev(fmt.Sprintf("/proc/%d/net/dev", rec.State.Pid))
	}
	st.SystemCPU, st.OnlineCPUs = systemCPU()
	return st, nil
}

// netDev parses /proc/<pid>/net/dev, leaving out loopback.
func netDev(file string) (map[string]InterfaceCounts, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]InterfaceCounts{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "lo" || len(f) < 16 {
			continue
		}
		n := make([]uint64, 16)
		for i := range n {
			n[i], _ = strconv.ParseUint(f[i], 10, 64)
		}
		out[name] = InterfaceCounts{
			RxBytes: n[0], RxPackets: n[1], RxErrors: n[2], RxDropped: n[3],
			TxBytes: n[8], TxPackets: n[9], TxErrors: n[10], TxDropped: n[11],
		}
	}
	return out, nil
}

// systemCPU is the host's total CPU time from /proc/stat in nanoseconds
// (USER_HZ is 100 on every Linux Berth runs on), and the CPU count.
func systemCPU() (uint64, int) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	var total uint64
	cpus := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "cpu":
			for _, v := range f[1:8] {
				n, _ := strconv.ParseUint(v, 10, 64)
				total += n
			}
		case strings.HasPrefix(f[0], "cpu"):
			cpus++
		}
	}
	return total * (1e9 / 100), cpus
}

// Top lists a running container's processes as ps shows them: psArgs are
// ps's options (-ef when empty), and only rows of the container's
// processes are kept.
func (e *Engine) Top(ctx context.Context, ref string, psArgs string) (titles []string, rows [][]string, err error) {
	c, err := e.lookup(ref)
	if err != nil {
		return nil, nil, err
	}
	rec := c.snapshot()
	if rec.State.Status != Running {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotRunning, rec.ID[:12])
	}
	cg, err := e.cgroup(rec.ID)
	if err != nil {
		return nil, nil, err
	}
	pids, err := cg.Pids()
	if err != nil {
		return nil, nil, err
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	if psArgs == "" {
		psArgs = "-ef"
	}
	out, err := exec.CommandContext(ctx, "ps", strings.Fields(psArgs)...).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("ps %s: %w", psArgs, err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	titles = strings.Fields(lines[0])
	pidCol := -1
	for i, t := range titles {
		if t == "PID" {
			pidCol = i
		}
	}
	if pidCol < 0 {
		return nil, nil, fmt.Errorf("ps %s: its output has no PID column", psArgs)
	}
	for _, l := range lines[1:] {
		// The last column (the command) may hold spaces.
		f := strings.Fields(l)
		if len(f) < len(titles) {
			continue
		}
		row := append(f[:len(titles)-1:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		if pid, err := strconv.Atoi(row[pidCol]); err == nil && in[pid] {
			rows = append(rows, row)
		}
	}
	return titles, rows, nil
}
