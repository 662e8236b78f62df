package seccomp

import (
	"fmt"
	"runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Load compiles s and installs it on the calling thread (every thread with
// the TSYNC flag). The caller must have set no_new_privs or hold
// CAP_SYS_ADMIN. If the profile notifies a supervisor, the returned
// descriptor is the listener for it; otherwise it is -1.
func Load(s *specs.LinuxSeccomp) (int, error) {
	raw, err := Compile(s)
	if err != nil {
		return -1, err
	}
	filters := SockFilters(raw)
	flags := FlagBits(s)
	if NeedsListener(s) {
		flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	}
	prog := unix.SockFprog{Len: uint16(len(filters)), Filter: &filters[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filters)
	if errno != 0 {
		return -1, fmt.Errorf("install seccomp filter (flags %#x): %w", flags, errno)
	}
	if flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
		return int(r), nil
	}
	return -1, nil
}

// FlagBits returns the seccomp(2) flags the profile asks for.
func FlagBits(s *specs.LinuxSeccomp) uint {
	var flags uint
	for _, f := range s.Flags {
		flags |= knownFlags[f]
	}
	return flags
}
