package cgroups

import (
	"errors"
	"fmt"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func i64(v int64) *int64 { return &v }

// defaultDeviceRules are allowed after the config's own rules, so that the
// devices every container gets (/dev/null, the terminals, ...) stay usable
// whatever the config denies before them, and mknod of any node is
// permitted (using it still needs a rule of its own).
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	{Allow: true, Type: "c", Access: "m"},
	{Allow: true, Type: "b", Access: "m"},
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}, // null
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"}, // zero
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"}, // full
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"}, // random
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"}, // urandom
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"}, // tty
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(1), Access: "rwm"}, // console
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"}, // ptmx
	{Allow: true, Type: "c", Major: i64(136), Minor: nil, Access: "rwm"},  // pts/*
}

// withDefaultDevices is the complete rule list for a container: nothing
// unless allowed (a config need not start with its own deny-all rule, and
// a cgroup without rules would allow every device), then the config's
// rules, then the defaults.
func withDefaultDevices(rules []specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
	out := make([]specs.LinuxDeviceCgroup, 0, 1+len(rules)+len(defaultDeviceRules))
	out = append(out, specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"})
	out = append(out, rules...)
	return append(out, defaultDeviceRules...)
}

// ValidateDeviceRule checks one linux.resources.devices entry.
func ValidateDeviceRule(r specs.LinuxDeviceCgroup) error {
	switch r.Type {
	case "", "a", "b", "c":
	default:
		return fmt.Errorf("type %q is not one of a, b, c", r.Type)
	}
	for _, c := range r.Access {
		if c != 'r' && c != 'w' && c != 'm' {
			return fmt.Errorf("access %q has %q, which is not one of r, w, m", r.Access, c)
		}
	}
	return nil
}

// ruleString renders a rule as devices.allow and devices.deny take it.
func ruleString(r specs.LinuxDeviceCgroup) string {
	t := r.Type
	if t == "" {
		t = "a"
	}
	num := func(p *int64) string {
		if p == nil || *p < 0 {
			return "*"
		}
		return strconv.FormatInt(*p, 10)
	}
	access := r.Access
	if access == "" {
		access = "rwm"
	}
	return fmt.Sprintf("%s %s:%s %s", t, num(r.Major), num(r.Minor), access)
}

// Device access bits as the kernel passes them to a cgroup device program.
const (
	devcgDevBlock = 1
	devcgDevChar  = 2
	devcgAccMknod = 1
	devcgAccRead  = 2
	devcgAccWrite = 4
)

func accessBits(s string) int32 {
	if s == "" {
		s = "rwm"
	}
	var a int32
	for _, c := range s {
		switch c {
		case 'm':
			a |= devcgAccMknod
		case 'r':
			a |= devcgAccRead
		case 'w':
			a |= devcgAccWrite
		}
	}
	return a
}

// DeviceFilter compiles device rules into a cgroup v2 device program. Rules
// behave as they do in v1's devices.allow/deny: the last rule that matches a
// request decides it, and a request no rule matches is allowed. An allow
// rule matches only if it grants every access requested; a deny rule
// matches if it refuses any of them.
func DeviceFilter(rules []specs.LinuxDeviceCgroup) ([]Insn, error) {
	var p bpfProgram
	// R1 points at struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }.
	p.loadWord(r2, r1, 0)
	p.movReg32(r3, r2)
	p.andImm32(r3, 0xffff) // device type
	p.movReg32(r4, r2)
	p.rshImm32(r4, 16) // access requested
	p.loadWord(r5, r1, 4)
	p.loadWord(r6, r1, 8)
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		if err := ValidateDeviceRule(r); err != nil {
			return nil, fmt.Errorf("devices[%d]: %w", i, err)
		}
		next := p.newLabel()
		switch r.Type {
		case "b":
			p.jneImm(r3, devcgDevBlock, next)
		case "c":
			p.jneImm(r3, devcgDevChar, next)
		}
		if r.Major != nil && *r.Major >= 0 {
			p.jneImm(r5, int32(*r.Major), next)
		}
		if r.Minor != nil && *r.Minor >= 0 {
			p.jneImm(r6, int32(*r.Minor), next)
		}
		acc := accessBits(r.Access)
		p.movReg32(r7, r4)
		if r.Allow {
			p.andImm32(r7, ^acc&7)
			p.jneImm(r7, 0, next)
			p.ret(1)
		} else {
			p.andImm32(r7, acc)
			p.jeqImm(r7, 0, next)
			p.ret(0)
		}
		p.bind(next)
	}
	p.ret(1)
	return p.assemble()
}

// attachDeviceFilter loads the program for rules and attaches it to the
// cgroup directory, replacing a program attached there before. The attach
// belongs to the cgroup, so the filter stays after this process exits.
func attachDeviceFilter(dir string, rules []specs.LinuxDeviceCgroup) error {
	// Set has checked the rules (ValidateResources).
	insns, err := DeviceFilter(withDefaultDevices(rules))
	if err != nil {
		return err
	}
	prog, err := loadDeviceProgram(insns)
	if err != nil {
		return fmt.Errorf("load device filter: %w", err)
	}
	defer unix.Close(prog)
	cg, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(cg)
	old, _ := attachedDevicePrograms(cg)
	defer func() {
		for _, fd := range old {
			unix.Close(fd)
		}
	}()
	if err := bpfAttach(unix.BPF_PROG_ATTACH, cg, prog); err != nil {
		return fmt.Errorf("attach device filter to %s: %w", dir, err)
	}
	var errs []error
	for _, fd := range old {
		if err := bpfAttach(unix.BPF_PROG_DETACH, cg, fd); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("detach old device filter: %w", errors.Join(errs...))
	}
	return nil
}
