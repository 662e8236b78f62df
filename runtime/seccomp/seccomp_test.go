package seccomp

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// call is one syscall as the kernel presents it to the filter.
type call struct {
	arch uint32
	nr   uint32
	args [6]uint64
}

// run evaluates the program in x/net/bpf's interpreter. Its loads are
// big-endian, so the seccomp_data words are written big-endian at the
// offsets the kernel would use (low word of each argument first).
func run(t *testing.T, raw []bpf.RawInstruction, c call) uint32 {
	t.Helper()
	insns := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		insns[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("program rejected by the interpreter: %v", err)
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], c.nr)
	binary.BigEndian.PutUint32(data[4:], c.arch)
	for i, a := range c.args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
	}
	out, err := vm.Run(data)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return uint32(out)
}

func nr(a *archInfo, name string) uint32 {
	n, ok := a.lookup(name)
	if !ok {
		panic("no syscall " + name + " on " + a.name)
	}
	return n
}

func x64(name string, args ...uint64) call {
	c := call{arch: archX86_64.audit, nr: nr(archX86_64, name)}
	copy(c.args[:], args)
	return c
}

func compile(t *testing.T, s *specs.LinuxSeccomp) []bpf.RawInstruction {
	t.Helper()
	raw, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func u(v uint) *uint { return &v }

func TestDefaultActionAppliesToUnlistedSyscalls(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
	})
	if got := run(t, p, x64("mkdir")); got != retErrno|uint32(unix.EPERM) {
		t.Errorf("mkdir: got %#x, want ERRNO(EPERM)", got)
	}
	if got := run(t, p, x64("getpid")); got != retAllow {
		t.Errorf("getpid: got %#x, want ALLOW", got)
	}
}

func TestErrnoRetIsReturned(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: u(uint(unix.EACCES)),
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: u(uint(unix.ENOSYS))},
		},
	})
	if got := run(t, p, x64("write")); got != retErrno|uint32(unix.EACCES) {
		t.Errorf("write: got %#x, want ERRNO(EACCES)", got)
	}
	if got := run(t, p, x64("clone3")); got != retErrno|uint32(unix.ENOSYS) {
		t.Errorf("clone3: got %#x, want ERRNO(ENOSYS)", got)
	}
}

func TestSyscallsNewerThanTheProfileGetENOSYS(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"read", "write", "openat2"}, Action: specs.ActAllow}},
	})
	newer := call{arch: archX86_64.audit, nr: nr(archX86_64, "openat2") + 1}
	if got := run(t, p, newer); got != retErrno|uint32(unix.ENOSYS) {
		t.Errorf("syscall past the profile: got %#x, want ERRNO(ENOSYS)", got)
	}
	if got := run(t, p, x64("mkdir")); got != retErrno|uint32(unix.EPERM) {
		t.Errorf("older unlisted syscall: got %#x, want the default ERRNO(EPERM)", got)
	}
}

func TestArgumentConditions(t *testing.T) {
	const big = uint64(1) << 40
	cases := []struct {
		op    specs.LinuxSeccompOperator
		value uint64
		arg   uint64
		match bool
	}{
		{specs.OpEqualTo, 5, 5, true},
		{specs.OpEqualTo, 5, 6, false},
		{specs.OpEqualTo, big + 5, 5, false},
		{specs.OpEqualTo, big + 5, big + 5, true},
		{specs.OpNotEqual, 5, 5, false},
		{specs.OpNotEqual, 5, big + 5, true},
		{specs.OpGreaterThan, 5, 6, true},
		{specs.OpGreaterThan, 5, 5, false},
		{specs.OpGreaterThan, big, 7, false},
		{specs.OpGreaterThan, 7, big, true},
		{specs.OpGreaterEqual, 5, 5, true},
		{specs.OpGreaterEqual, big + 1, big, false},
		{specs.OpLessThan, 5, 4, true},
		{specs.OpLessThan, 5, 5, false},
		{specs.OpLessThan, big, 1 << 31, true},
		{specs.OpLessThan, 1 << 31, big, false},
		{specs.OpLessEqual, 5, 5, true},
		{specs.OpLessEqual, big, big + 1, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s_%d_%d", c.op, c.value, c.arg), func(t *testing.T) {
			p := compile(t, &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls: []specs.LinuxSyscall{{
					Names: []string{"personality"}, Action: specs.ActErrno,
					Args: []specs.LinuxSeccompArg{{Index: 2, Value: c.value, Op: c.op}},
				}},
			})
			got := run(t, p, x64("personality", 0, 0, c.arg)) == retErrno|uint32(unix.EPERM)
			if got != c.match {
				t.Errorf("arg %d %s %d: matched=%v, want %v", c.arg, c.op, c.value, got, c.match)
			}
		})
	}
}

func TestMaskedEqualUsesValueAsMaskAndValueTwoAsDatum(t *testing.T) {
	const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUSER | unix.CLONE_NEWPID
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{{
			Names: []string{"clone"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: nsFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}},
		}},
	})
	if got := run(t, p, x64("clone", uint64(unix.SIGCHLD))); got != retAllow {
		t.Errorf("clone without namespace flags: got %#x, want ALLOW", got)
	}
	if got := run(t, p, x64("clone", unix.CLONE_NEWUSER|uint64(unix.SIGCHLD))); got == retAllow {
		t.Errorf("clone(CLONE_NEWUSER) was allowed")
	}
}

func TestConditionsOnDistinctArgsAreANDed(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names: []string{"socket"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: unix.AF_INET, Op: specs.OpEqualTo},
				{Index: 1, Value: unix.SOCK_RAW, Op: specs.OpEqualTo},
			},
		}},
	})
	if got := run(t, p, x64("socket", unix.AF_INET, unix.SOCK_RAW)); got == retAllow {
		t.Error("AF_INET+SOCK_RAW allowed")
	}
	if got := run(t, p, x64("socket", unix.AF_INET, unix.SOCK_STREAM)); got != retAllow {
		t.Error("AF_INET+SOCK_STREAM refused")
	}
}

func TestConditionsRepeatingAnArgumentAreORed(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{{
			Names: []string{"personality"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0, Op: specs.OpEqualTo},
				{Index: 0, Value: 8, Op: specs.OpEqualTo},
			},
		}},
	})
	for _, v := range []uint64{0, 8} {
		if got := run(t, p, x64("personality", v)); got != retAllow {
			t.Errorf("personality(%d) refused", v)
		}
	}
	if got := run(t, p, x64("personality", 3)); got == retAllow {
		t.Error("personality(3) allowed")
	}
}

func TestUnlistedArchitectureIsKilled(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}})
	if got := run(t, p, call{arch: archX86.audit, nr: 1}); got != retKillThread {
		t.Errorf("i386 call without SCMP_ARCH_X86: got %#x, want KILL", got)
	}
	if got := run(t, p, call{arch: archX86_64.audit, nr: x32Bit | 1}); got != retKillThread {
		t.Errorf("x32 call without SCMP_ARCH_X32: got %#x, want KILL", got)
	}
}

func TestEachArchitectureUsesItsOwnNumbers(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}},
	})
	for _, c := range []call{
		{arch: archX86_64.audit, nr: nr(archX86_64, "mkdir")},
		{arch: archX86.audit, nr: nr(archX86, "mkdir")},
		{arch: archX86_64.audit, nr: nr(archX32, "mkdir")},
	} {
		if got := run(t, p, c); got != retErrno|uint32(unix.EPERM) {
			t.Errorf("mkdir on arch %#x nr %#x: got %#x, want ERRNO", c.arch, c.nr, got)
		}
	}
	// i386's mkdir number (39) is x86_64's getpid: it must stay allowed there.
	if got := run(t, p, call{arch: archX86_64.audit, nr: nr(archX86, "mkdir")}); got != retAllow {
		t.Errorf("x86_64 syscall %d: got %#x, want ALLOW", nr(archX86, "mkdir"), got)
	}
}

// A whitelist as long as container engines' default profiles must still
// compile within the kernel's limits, with every listed call allowed.
func TestLongWhitelistFitsAndKeepsJumpsInRange(t *testing.T) {
	var names []string
	for _, e := range archX86_64.table {
		if e.name != "mkdir" {
			names = append(names, e.name)
		}
	}
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: names, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo}}},
		},
	})
	if len(p) > maxInstructions {
		t.Fatalf("%d instructions", len(p))
	}
	for _, name := range names {
		if got := run(t, p, x64(name)); got != retAllow {
			t.Fatalf("%s: got %#x, want ALLOW", name, got)
		}
	}
	if got := run(t, p, x64("mkdir")); got != retErrno|uint32(unix.EPERM) {
		t.Errorf("mkdir: got %#x", got)
	}
}

func TestBadProfilesNameTheField(t *testing.T) {
	cases := []struct {
		s    specs.LinuxSeccomp
		want string
	}{
		{specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"}, "linux.seccomp.defaultAction"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_VAX"}}, "linux.seccomp.architectures[0]"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_NOPE"}}, "linux.seccomp.flags[0]"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: "bogus"}}}, "linux.seccomp.syscalls[0].action"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, ErrnoRet: u(1)}}}, "errnoRet"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}}, "syscalls[0].args[0].index"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_WAT"}}}}}, "syscalls[0].args[0].op"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActNotify}}}, "listenerPath"},
		// The listener itself leaves the process by sendmsg, under the filter.
		{specs.LinuxSeccomp{DefaultAction: specs.ActNotify, ListenerPath: "/run/agent.sock"}, "linux.seccomp.defaultAction"},
		{specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock", Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "sendmsg"}, Action: specs.ActNotify}}}, "linux.seccomp.syscalls[0]"},
	}
	for _, c := range cases {
		_, err := Compile(&c.s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Compile: got %v, want an error naming %s", err, c.want)
		}
		if err := Validate(&c.s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate: got %v, want an error naming %s", err, c.want)
		}
	}
}

func TestUnknownSyscallNamesAreIgnored(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"no_such_syscall", "mkdir"}, Action: specs.ActErrno}},
	})
	if got := run(t, p, x64("mkdir")); got != retErrno|uint32(unix.EPERM) {
		t.Errorf("mkdir: got %#x", got)
	}
}

func FuzzCompile(f *testing.F) {
	f.Add("SCMP_ACT_ERRNO", "read", uint(0), uint64(1), "SCMP_CMP_EQ", uint32(0))
	f.Add("SCMP_ACT_ALLOW", "personality", uint(2), uint64(1<<40), "SCMP_CMP_GT", uint32(3))
	f.Fuzz(func(t *testing.T, act, name string, idx uint, val uint64, op string, nrv uint32) {
		s := &specs.LinuxSeccomp{
			DefaultAction: specs.LinuxSeccompAction(act),
			Syscalls: []specs.LinuxSyscall{{
				Names: []string{name, "mkdir"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: idx, Value: val, Op: specs.LinuxSeccompOperator(op)}},
			}},
		}
		raw, err := Compile(s)
		if err != nil {
			return
		}
		// Whatever compiles must run to a return value for any call.
		run(t, raw, call{arch: archX86_64.audit, nr: nrv, args: [6]uint64{val, val + 1, val - 1}})
	})
}

// x32 shares x86_64's numbers but for the calls whose x86_64 version takes
// 64-bit structures: those have entries of their own from 512.
func TestX32UsesItsOwnEntriesForCompatCalls(t *testing.T) {
	if got := nr(archX32, "rt_sigaction"); got != x32Bit|512 {
		t.Errorf("x32 rt_sigaction = %#x, want %#x", got, x32Bit|512)
	}
	if got := nr(archX32, "read"); got != x32Bit|0 {
		t.Errorf("x32 read = %#x", got)
	}
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX32},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"rt_sigaction"}, Action: specs.ActErrno}},
	})
	if got := run(t, p, call{arch: archX86_64.audit, nr: x32Bit | 512}); got != retErrno|uint32(unix.EPERM) {
		t.Errorf("x32 rt_sigaction: got %#x", got)
	}
	if got := run(t, p, call{arch: archX86_64.audit, nr: x32Bit | 13}); got != retAllow {
		t.Errorf("x32 syscall 13 is not rt_sigaction: got %#x", got)
	}
}

func TestEveryTableIsSortedForLookup(t *testing.T) {
	for _, a := range archByName {
		for i := 1; i < len(a.table); i++ {
			if a.table[i-1].name >= a.table[i].name {
				t.Fatalf("%s: %q before %q", a.name, a.table[i-1].name, a.table[i].name)
			}
		}
		if _, ok := a.lookup("exit_group"); !ok {
			t.Errorf("%s has no exit_group", a.name)
		}
	}
}
