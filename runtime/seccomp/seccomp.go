// Package seccomp compiles the OCI runtime spec's linux.seccomp section into
// a classic BPF program and installs it.
//
// The semantics follow libseccomp's, as runc and crun expose them: every
// listed architecture gets its own block keyed on seccomp_data.arch (x32
// shares x86_64's and is told apart by the syscall number's x32 bit), rules
// for one syscall are tried in order with their argument conditions ANDed,
// conditions that repeat an argument index are split into separate rules, a
// call on an architecture that is not listed kills the thread, and anything
// else takes the default action. When the default action refuses, a syscall
// newer than every syscall the profile names fails with ENOSYS instead, so
// that libc falls back from calls the profile's author did not know about
// (clone3 before clone).
package seccomp

import (
	"fmt"
	goruntime "runtime"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Return values of a seccomp filter (linux/seccomp.h).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retUserNotif   = 0x7fc00000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

// maxInstructions is the kernel's BPF_MAXINSNS for classic filters.
const maxInstructions = 4096

const x32Bit = 0x40000000

// seccomp_data offsets.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

//go:generate go run gen_syscalls.go

// sysEntry is a syscall's name and number on one architecture.
type sysEntry struct {
	name string
	nr   uint32
}

type archInfo struct {
	name  string
	table []sysEntry // sorted by name
	audit uint32
	mask  uint32 // added to every number (x32's bit 30)
	is32  bool
}

// lookup returns the number of a syscall on a.
func (a *archInfo) lookup(name string) (uint32, bool) {
	i := sort.Search(len(a.table), func(i int) bool { return a.table[i].name >= name })
	if i < len(a.table) && a.table[i].name == name {
		return a.table[i].nr | a.mask, true
	}
	return 0, false
}

var (
	archX86_64  = &archInfo{name: "x86_64", table: syscalls_x86_64[:], audit: unix.AUDIT_ARCH_X86_64}
	archX86     = &archInfo{name: "x86", table: syscalls_x86[:], audit: unix.AUDIT_ARCH_I386, is32: true}
	archX32     = &archInfo{name: "x32", table: syscalls_x32[:], audit: unix.AUDIT_ARCH_X86_64, mask: x32Bit}
	archAARCH64 = &archInfo{name: "aarch64", table: syscalls_aarch64[:], audit: unix.AUDIT_ARCH_AARCH64}
	archARM     = &archInfo{name: "arm", table: syscalls_arm[:], audit: unix.AUDIT_ARCH_ARM, is32: true}
	archPPC64LE = &archInfo{name: "ppc64le", table: syscalls_ppc64le[:], audit: unix.AUDIT_ARCH_PPC64LE}
	archS390X   = &archInfo{name: "s390x", table: syscalls_s390x[:], audit: unix.AUDIT_ARCH_S390X}
	archRISCV64 = &archInfo{name: "riscv64", table: syscalls_riscv64[:], audit: unix.AUDIT_ARCH_RISCV64}
)

// archByName maps the spec's SCMP_ARCH_* names to syscall tables. Names the
// spec knows but this package has no table for are accepted and skipped: a
// filter for them could only matter on such a host.
var archByName = map[specs.Arch]*archInfo{
	specs.ArchX86_64: archX86_64, specs.ArchX86: archX86, specs.ArchX32: archX32,
	specs.ArchAARCH64: archAARCH64, specs.ArchARM: archARM, specs.ArchPPC64LE: archPPC64LE,
	specs.ArchS390X: archS390X, specs.ArchRISCV64: archRISCV64,
}

var knownArches = map[specs.Arch]bool{
	specs.ArchX86: true, specs.ArchX86_64: true, specs.ArchX32: true, specs.ArchARM: true,
	specs.ArchAARCH64: true, specs.ArchMIPS: true, specs.ArchMIPS64: true, specs.ArchMIPS64N32: true,
	specs.ArchMIPSEL: true, specs.ArchMIPSEL64: true, specs.ArchMIPSEL64N32: true, specs.ArchPPC: true,
	specs.ArchPPC64: true, specs.ArchPPC64LE: true, specs.ArchS390: true, specs.ArchS390X: true,
	specs.ArchPARISC: true, specs.ArchPARISC64: true, specs.ArchRISCV64: true, "SCMP_ARCH_LOONGARCH64": true,
	"SCMP_ARCH_M68K": true, "SCMP_ARCH_SH": true, "SCMP_ARCH_SHEB": true,
}

// nativeArch is the architecture this binary runs as; it is always filtered.
var nativeArch = map[string]specs.Arch{
	"amd64": specs.ArchX86_64, "386": specs.ArchX86, "arm64": specs.ArchAARCH64, "arm": specs.ArchARM,
	"ppc64le": specs.ArchPPC64LE, "s390x": specs.ArchS390X, "riscv64": specs.ArchRISCV64,
}[goruntime.GOARCH]

var knownFlags = map[specs.LinuxSeccompFlag]uint{
	specs.LinuxSeccompFlagLog:              unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow:        unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	specs.LinuxSeccompFlagWaitKillableRecv: 1 << 5,
	"SECCOMP_FILTER_FLAG_TSYNC":            unix.SECCOMP_FILTER_FLAG_TSYNC,
	"SECCOMP_FILTER_FLAG_TSYNC_ESRCH":      1 << 4,
}

// action converts a spec action to a filter return value.
func action(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := func(def uint) uint32 {
		if errnoRet != nil {
			return uint32(*errnoRet) & 0xffff
		}
		return uint32(def)
	}
	if errnoRet != nil && a != specs.ActErrno && a != specs.ActTrace {
		return 0, fmt.Errorf("errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not %s", a)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActErrno:
		return retErrno | data(uint(unix.EPERM)), nil
	case specs.ActTrace:
		return retTrace | data(uint(unix.EPERM)), nil
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActNotify:
		return retUserNotif, nil
	}
	return 0, fmt.Errorf("unknown action %q", a)
}

// Validate checks a seccomp section without compiling it, with errors that
// name the offending field. Compile makes the same checks.
func Validate(s *specs.LinuxSeccomp) error {
	if _, _, err := checkProfile(s); err != nil {
		return err
	}
	for i, sc := range s.Syscalls {
		if _, _, err := checkSyscall(i, sc); err != nil {
			return err
		}
	}
	return nil
}

// NeedsListener reports whether the profile uses SCMP_ACT_NOTIFY.
func NeedsListener(s *specs.LinuxSeccomp) bool {
	if s == nil {
		return false
	}
	if s.DefaultAction == specs.ActNotify {
		return true
	}
	for _, sc := range s.Syscalls {
		if sc.Action == specs.ActNotify {
			return true
		}
	}
	return false
}

// rule is one alternative for a syscall: conditions ANDed, then an action.
type rule struct {
	conds []specs.LinuxSeccompArg
	ret   uint32
}

// sysRules are the alternatives for one syscall number, tried in order.
type sysRules struct {
	nr    uint32
	rules []rule
}

// Compile translates s into a BPF program for the native architecture and
// the ones s lists.
func Compile(s *specs.LinuxSeccomp) ([]bpf.RawInstruction, error) {
	defRet, arches, err := checkProfile(s)
	if err != nil {
		return nil, err
	}
	// Rules per arch, per syscall number, in the order the profile gives.
	perArch := make([]map[uint32]*sysRules, len(arches))
	for i := range perArch {
		perArch[i] = map[uint32]*sysRules{}
	}
	for i, sc := range s.Syscalls {
		ret, alts, err := checkSyscall(i, sc)
		if err != nil {
			return nil, err
		}
		for _, name := range sc.Names {
			for ai, a := range arches {
				n, ok := a.lookup(name)
				if !ok {
					// libseccomp ignores names an architecture lacks.
					continue
				}
				sr := perArch[ai][n]
				if sr == nil {
					sr = &sysRules{nr: n}
					perArch[ai][n] = sr
				}
				for _, conds := range alts {
					sr.rules = append(sr.rules, rule{conds: conds, ret: ret})
				}
			}
		}
	}
	return emitProgram(arches, perArch, defRet)
}

// checkProfile checks the profile's own fields and returns the default
// action's return value and the architectures to filter, native first.
func checkProfile(s *specs.LinuxSeccomp) (uint32, []*archInfo, error) {
	defRet, err := action(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return 0, nil, fmt.Errorf("linux.seccomp.defaultAction: %w", err)
	}
	for i, f := range s.Flags {
		if _, ok := knownFlags[f]; !ok {
			return 0, nil, fmt.Errorf("linux.seccomp.flags[%d]: unknown flag %q", i, f)
		}
	}
	if s.ListenerPath != "" && !strings.HasPrefix(s.ListenerPath, "/") {
		return 0, nil, fmt.Errorf("linux.seccomp.listenerPath: %q is not absolute", s.ListenerPath)
	}
	if NeedsListener(s) && s.ListenerPath == "" {
		return 0, nil, fmt.Errorf("linux.seccomp: SCMP_ACT_NOTIFY needs a listenerPath")
	}
	// The notify descriptor leaves the container process by sendmsg(2),
	// under the filter already: notifications for it would wait for an
	// agent that has no descriptor yet. runc refuses the same (for its
	// write(2)).
	if s.DefaultAction == specs.ActNotify {
		return 0, nil, fmt.Errorf("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY is not allowed as the default action (the runtime's own sendmsg to hand over the listener would wait for it)")
	}
	for i, sc := range s.Syscalls {
		if sc.Action != specs.ActNotify {
			continue
		}
		for _, name := range sc.Names {
			if name == "sendmsg" || name == "socketcall" {
				return 0, nil, fmt.Errorf("linux.seccomp.syscalls[%d]: SCMP_ACT_NOTIFY cannot be used for %s, which hands the listener to the agent", i, name)
			}
		}
	}

	var arches []*archInfo
	seen := map[*archInfo]bool{}
	addArch := func(a *archInfo) {
		if !seen[a] {
			seen[a] = true
			arches = append(arches, a)
		}
	}
	native := archByName[nativeArch]
	if native == nil {
		return 0, nil, fmt.Errorf("linux.seccomp: no syscall table for this machine (%s)", goruntime.GOARCH)
	}
	addArch(native)
	for i, name := range s.Architectures {
		if !knownArches[name] {
			return 0, nil, fmt.Errorf("linux.seccomp.architectures[%d]: unknown architecture %q", i, name)
		}
		if a := archByName[name]; a != nil {
			addArch(a)
		}
	}

	return defRet, arches, nil
}

// checkSyscall checks syscalls[i] and returns its action's return value and
// the alternatives its conditions stand for.
func checkSyscall(i int, sc specs.LinuxSyscall) (uint32, [][]specs.LinuxSeccompArg, error) {
	field := fmt.Sprintf("linux.seccomp.syscalls[%d]", i)
	ret, err := action(sc.Action, sc.ErrnoRet)
	if err != nil {
		return 0, nil, fmt.Errorf("%s.action: %w", field, err)
	}
	if len(sc.Names) == 0 {
		return 0, nil, fmt.Errorf("%s.names: empty", field)
	}
	alts, err := splitConditions(field+".args", sc.Args)
	if err != nil {
		return 0, nil, err
	}
	return ret, alts, nil
}

// emitProgram lays the rules out as BPF: a dispatch on the architecture,
// then each architecture's rules.
func emitProgram(arches []*archInfo, perArch []map[uint32]*sysRules, defRet uint32) ([]bpf.RawInstruction, error) {
	p := &program{}
	refuses := defRet != retAllow && defRet != retLog
	// Dispatch on the architecture. x86_64 and x32 share an audit value.
	p.ld(offArch)
	audits := map[uint32]bool{}
	for _, a := range arches {
		if audits[a.audit] {
			continue
		}
		audits[a.audit] = true
		p.jeq(a.audit, "arch:"+fmt.Sprint(a.audit), "")
	}
	p.ret(retKillThread)

	hasX32 := slices.Contains(arches, archX32)
	for ai, a := range arches {
		if a == archX32 {
			continue // emitted with x86_64
		}
		p.label("arch:" + fmt.Sprint(a.audit))
		p.ld(offNr)
		if a == archX86_64 {
			if hasX32 {
				p.jge(x32Bit, "x32", "x86_64")
			} else {
				p.jge(x32Bit, "badarch", "x86_64")
			}
			p.label("x86_64")
		}
		emitArch(p, perArch[ai], defRet, refuses, a, "arch"+fmt.Sprint(ai))
		if a == archX86_64 && hasX32 {
			p.label("x32")
			for xi, xa := range arches {
				if xa == archX32 {
					emitArch(p, perArch[xi], defRet, refuses, xa, "arch"+fmt.Sprint(xi))
				}
			}
		}
	}
	p.label("badarch")
	p.ret(retKillThread)

	return p.assemble()
}

// splitConditions returns the alternatives a rule's conditions stand for: all
// of them ANDed, or, if an argument index repeats, each one on its own (the
// behaviour runc has always given such profiles).
func splitConditions(field string, args []specs.LinuxSeccompArg) ([][]specs.LinuxSeccompArg, error) {
	count := map[uint]int{}
	for i, a := range args {
		if a.Index > 5 {
			return nil, fmt.Errorf("%s[%d].index: %d is beyond the 6 syscall arguments", field, i, a.Index)
		}
		switch a.Op {
		case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
			specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
		default:
			return nil, fmt.Errorf("%s[%d].op: unknown operator %q", field, i, a.Op)
		}
		count[a.Index]++
	}
	if len(args) == 0 {
		return [][]specs.LinuxSeccompArg{nil}, nil
	}
	for _, c := range count {
		if c > 1 {
			out := make([][]specs.LinuxSeccompArg, len(args))
			for i, a := range args {
				out[i] = []specs.LinuxSeccompArg{a}
			}
			return out, nil
		}
	}
	return [][]specs.LinuxSeccompArg{args}, nil
}

// chunk bounds how many syscall checks share one set of return
// instructions, so that every conditional jump stays within the 255
// instructions classic BPF can skip.
const chunk = 200

// emitArch writes one architecture's block; the syscall number is loaded.
func emitArch(p *program, rules map[uint32]*sysRules, defRet uint32, refuses bool, a *archInfo, prefix string) {
	nrs := make([]uint32, 0, len(rules))
	var maxNr uint32
	for nr := range rules {
		nrs = append(nrs, nr)
		if nr > maxNr {
			maxNr = nr
		}
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })
	def := prefix + ":default"
	if refuses && len(nrs) > 0 {
		p.jgt(maxNr, prefix+":enosys", "")
	}

	// Syscalls whose first rule is unconditional jump straight to a shared
	// return; the others get a block of their own after these.
	var plain, conditional []uint32
	for _, nr := range nrs {
		if len(rules[nr].rules[0].conds) == 0 {
			plain = append(plain, nr)
		} else {
			conditional = append(conditional, nr)
		}
	}
	for c := 0; c < len(plain); c += chunk {
		end := min(c+chunk, len(plain))
		rets := map[uint32]string{}
		var order []uint32
		for _, nr := range plain[c:end] {
			ret := rules[nr].rules[0].ret
			l, ok := rets[ret]
			if !ok {
				l = fmt.Sprintf("%s:c%d:r%d", prefix, c, len(rets))
				rets[ret] = l
				order = append(order, ret)
			}
			p.jeq(nr, l, "")
		}
		next := fmt.Sprintf("%s:c%d:next", prefix, c)
		p.ja(next)
		for _, ret := range order {
			p.label(rets[ret])
			p.ret(ret)
		}
		p.label(next)
	}
	for _, nr := range conditional {
		skip := fmt.Sprintf("%s:s%d", prefix, nr)
		p.jeq(nr, "", skip)
		for ri, r := range rules[nr].rules {
			fail := fmt.Sprintf("%s:s%d:r%d", prefix, nr, ri)
			for _, c := range r.conds {
				emitCondition(p, c, a.is32, fail)
			}
			p.ret(r.ret)
			p.label(fail)
			if len(r.conds) == 0 {
				break // later rules are unreachable
			}
		}
		p.ja(def)
		p.label(skip)
	}
	p.label(def)
	p.ret(defRet)
	if refuses && len(nrs) > 0 {
		p.label(prefix + ":enosys")
		p.ret(retErrno | uint32(unix.ENOSYS))
	}
}

// emitCondition falls through when the argument satisfies c and jumps to
// fail otherwise. Arguments are compared as unsigned 64-bit values, high
// word first; 32-bit architectures compare the low word only.
func emitCondition(p *program, c specs.LinuxSeccompArg, is32 bool, fail string) {
	lo := uint32(offArgs + 8*c.Index)
	hi := lo + 4
	ok := p.fresh()
	v, v2 := c.Value, c.ValueTwo
	vlo, vhi := uint32(v), uint32(v>>32)
	switch c.Op {
	case specs.OpEqualTo:
		if !is32 {
			p.ld(hi)
			p.jeq(vhi, "", fail)
		}
		p.ld(lo)
		p.jeq(vlo, "", fail)
	case specs.OpNotEqual:
		if !is32 {
			p.ld(hi)
			p.jeq(vhi, "", ok)
		}
		p.ld(lo)
		p.jeq(vlo, fail, "")
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		if !is32 {
			p.ld(hi)
			p.jgt(vhi, ok, "")
			p.jeq(vhi, "", fail)
		}
		p.ld(lo)
		if c.Op == specs.OpGreaterThan {
			p.jgt(vlo, "", fail)
		} else {
			p.jge(vlo, "", fail)
		}
	case specs.OpLessThan, specs.OpLessEqual:
		if !is32 {
			p.ld(hi)
			p.jgt(vhi, fail, "")
			p.jeq(vhi, "", ok)
		}
		p.ld(lo)
		if c.Op == specs.OpLessThan {
			p.jge(vlo, fail, "")
		} else {
			p.jgt(vlo, fail, "")
		}
	case specs.OpMaskedEqual:
		// value is the mask, valueTwo the datum, as libseccomp takes them.
		if !is32 {
			p.ld(hi)
			p.and(vhi)
			p.jeq(uint32(v2>>32), "", fail)
		}
		p.ld(lo)
		p.and(vlo)
		p.jeq(uint32(v2), "", fail)
	}
	p.label(ok)
}

// FlagBits returns the seccomp(2) flags the profile asks for.
func FlagBits(s *specs.LinuxSeccomp) uint {
	var flags uint
	for _, f := range s.Flags {
		flags |= knownFlags[f]
	}
	return flags
}
