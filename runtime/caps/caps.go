// Package caps names Linux capabilities and turns the OCI spec's capability
// sets into the masks the kernel takes.
package caps

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// names lists every capability by number, as the kernel headers name them.
var names = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// Names returns every capability name this package knows, in number order.
func Names() []string { return append([]string(nil), names...) }

// Number returns the number of a capability name ("CAP_" prefix optional,
// any case), or -1.
func Number(name string) int {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range names {
		if c == n {
			return i
		}
	}
	return -1
}

var lastCap = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return len(names) - 1
})

// Last is the highest capability the running kernel knows.
func Last() int { return lastCap() }

// Known reports whether the running kernel knows a capability name.
func Known(name string) bool {
	n := Number(name)
	return n >= 0 && n <= Last()
}

// Unknown returns the names in c that this kernel does not know. The spec
// asks runtimes to log such names and go on, not to fail.
func Unknown(c *specs.LinuxCapabilities) []string {
	if c == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, set := range [][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient} {
		for _, n := range set {
			if !Known(n) && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// Bounding returns the calling thread's bounding set, as far as this
// package knows the capabilities' names.
func Bounding() []string {
	var out []string
	for c := 0; c <= min(Last(), len(names)-1); c++ {
		if r, _ := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); r == 1 {
			out = append(out, names[c])
		}
	}
	return out
}

// CheckAvailable returns an error naming the first capability in c that the
// calling thread's bounding set lacks: no process can grant it.
func CheckAvailable(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	sets := []struct {
		name string
		list []string
	}{{"bounding", c.Bounding}, {"effective", c.Effective}, {"permitted", c.Permitted}, {"inheritable", c.Inheritable}, {"ambient", c.Ambient}}
	for _, s := range sets {
		for _, n := range s.list {
			num := Number(n)
			if num < 0 || num > Last() {
				continue
			}
			if r, _ := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(num), 0, 0, 0); r != 1 {
				return fmt.Errorf("process.capabilities.%s: %s is not in the runtime's own bounding set, so no process it starts can have it", s.name, n)
			}
		}
	}
	return nil
}

// Mask is a set of capability names as a bit mask, skipping names the
// running kernel does not know.
func Mask(set []string) uint64 {
	var m uint64
	for _, n := range set {
		if c := Number(n); c >= 0 && c <= Last() {
			m |= 1 << uint(c)
		}
	}
	return m
}
