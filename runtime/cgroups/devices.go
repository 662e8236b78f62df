package cgroups

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
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

func withDefaultDevices(rules []specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
	out := make([]specs.LinuxDeviceCgroup, 0, len(rules)+len(defaultDeviceRules))
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
func DeviceFilter(rules []specs.LinuxDeviceCgroup) (asm.Instructions, error) {
	// R1 points at struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }.
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.Mov.Reg32(asm.R3, asm.R2),
		asm.And.Imm32(asm.R3, 0xffff), // device type
		asm.Mov.Reg32(asm.R4, asm.R2),
		asm.RSh.Imm32(asm.R4, 16), // access requested
		asm.LoadMem(asm.R5, asm.R1, 4, asm.Word),
		asm.LoadMem(asm.R6, asm.R1, 8, asm.Word),
	}
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		if err := ValidateDeviceRule(r); err != nil {
			return nil, fmt.Errorf("devices[%d]: %w", i, err)
		}
		next := fmt.Sprintf("rule%d", i)
		var block asm.Instructions
		switch r.Type {
		case "b":
			block = append(block, asm.JNE.Imm(asm.R3, devcgDevBlock, next))
		case "c":
			block = append(block, asm.JNE.Imm(asm.R3, devcgDevChar, next))
		}
		if r.Major != nil && *r.Major >= 0 {
			block = append(block, asm.JNE.Imm(asm.R5, int32(*r.Major), next))
		}
		if r.Minor != nil && *r.Minor >= 0 {
			block = append(block, asm.JNE.Imm(asm.R6, int32(*r.Minor), next))
		}
		acc := accessBits(r.Access)
		block = append(block, asm.Mov.Reg32(asm.R7, asm.R4))
		if r.Allow {
			block = append(block,
				asm.And.Imm32(asm.R7, ^acc&7),
				asm.JNE.Imm(asm.R7, 0, next),
				asm.Mov.Imm(asm.R0, 1),
				asm.Return(),
			)
		} else {
			block = append(block,
				asm.And.Imm32(asm.R7, acc),
				asm.JEq.Imm(asm.R7, 0, next),
				asm.Mov.Imm(asm.R0, 0),
				asm.Return(),
			)
		}
		insns = append(insns, block...)
		// The jump target is whatever comes after this rule's block.
		insns = append(insns, asm.Mov.Imm(asm.R0, 1).WithSymbol(next))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, 1), asm.Return())
	return insns, nil
}

// attachDeviceFilter loads the program for rules and attaches it to the
// cgroup directory, replacing a program attached there before. The legacy
// attach keeps the program in place after this process exits.
func attachDeviceFilter(dir string, rules []specs.LinuxDeviceCgroup) error {
	insns, err := DeviceFilter(withDefaultDevices(rules))
	if err != nil {
		return err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.CGroupDevice,
		License:      "Apache-2.0",
		Instructions: insns,
	})
	if err != nil {
		return fmt.Errorf("load device filter: %w", err)
	}
	defer prog.Close()
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(fd)

	old, _ := attachedDevicePrograms(fd)
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  fd,
		Program: prog,
		Attach:  ebpf.AttachCGroupDevice,
		Flags:   unix.BPF_F_ALLOW_MULTI,
	}); err != nil {
		return fmt.Errorf("attach device filter to %s: %w", dir, err)
	}
	var errs []error
	for _, p := range old {
		if err := link.RawDetachProgram(link.RawDetachProgramOptions{Target: fd, Program: p, Attach: ebpf.AttachCGroupDevice}); err != nil {
			errs = append(errs, err)
		}
		p.Close()
	}
	if len(errs) > 0 {
		return fmt.Errorf("detach old device filter: %w", errors.Join(errs...))
	}
	return nil
}

// attachedDevicePrograms returns the device programs attached directly to
// the cgroup open as fd.
func attachedDevicePrograms(fd int) ([]*ebpf.Program, error) {
	ids, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return nil, err
	}
	var progs []*ebpf.Program
	for _, p := range ids.Programs {
		prog, err := ebpf.NewProgramFromID(p.ID)
		if err != nil {
			continue
		}
		progs = append(progs, prog)
	}
	return progs, nil
}
