package cgroups

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A cgroup device filter is a small eBPF program of loads, 32-bit ALU
// operations, forward jumps and exits. This is just enough of an assembler
// and of bpf(2) for it: a general eBPF library costs every run of the
// binary a dozen more packages to load and initialize.

// Insn is one eBPF instruction as the kernel reads it (struct bpf_insn).
type Insn struct {
	Code uint8
	Regs uint8 // dst in the low four bits, src in the high four
	Off  int16
	Imm  int32
}

type reg uint8

const (
	r0 reg = iota
	r1
	r2
	r3
	r4
	r5
	r6
	r7
)

// Instruction classes and operations (linux/bpf_common.h, linux/bpf.h).
const (
	bpfLDX   = 0x01
	bpfALU   = 0x04
	bpfJMP   = 0x05
	bpfALU64 = 0x07
	bpfW     = 0x00
	bpfMEM   = 0x60
	bpfK     = 0x00
	bpfX     = 0x08
	bpfAND   = 0x50
	bpfRSH   = 0x70
	bpfMOV   = 0xb0
	bpfJEQ   = 0x10
	bpfJNE   = 0x50
	bpfEXIT  = 0x90
)

type label int

type bpfProgram struct {
	insns  []Insn
	jumps  map[int]label // instruction index -> target label
	labels []int         // label -> instruction index (-1 until bound)
}

func (p *bpfProgram) emit(i Insn) { p.insns = append(p.insns, i) }

func (p *bpfProgram) loadWord(dst, src reg, off int16) {
	p.emit(Insn{Code: bpfLDX | bpfMEM | bpfW, Regs: uint8(dst) | uint8(src)<<4, Off: off})
}
func (p *bpfProgram) movReg32(dst, src reg) {
	p.emit(Insn{Code: bpfALU | bpfMOV | bpfX, Regs: uint8(dst) | uint8(src)<<4})
}
func (p *bpfProgram) andImm32(dst reg, v int32) {
	p.emit(Insn{Code: bpfALU | bpfAND | bpfK, Regs: uint8(dst), Imm: v})
}
func (p *bpfProgram) rshImm32(dst reg, v int32) {
	p.emit(Insn{Code: bpfALU | bpfRSH | bpfK, Regs: uint8(dst), Imm: v})
}
func (p *bpfProgram) ret(v int32) {
	p.emit(Insn{Code: bpfALU64 | bpfMOV | bpfK, Regs: uint8(r0), Imm: v})
	p.emit(Insn{Code: bpfJMP | bpfEXIT})
}
func (p *bpfProgram) jump(op uint8, dst reg, v int32, to label) {
	if p.jumps == nil {
		p.jumps = map[int]label{}
	}
	p.jumps[len(p.insns)] = to
	p.emit(Insn{Code: bpfJMP | op | bpfK, Regs: uint8(dst), Imm: v})
}
func (p *bpfProgram) jneImm(dst reg, v int32, to label) { p.jump(bpfJNE, dst, v, to) }
func (p *bpfProgram) jeqImm(dst reg, v int32, to label) { p.jump(bpfJEQ, dst, v, to) }

func (p *bpfProgram) newLabel() label {
	p.labels = append(p.labels, -1)
	return label(len(p.labels) - 1)
}

// bind places a label at the next instruction.
func (p *bpfProgram) bind(l label) { p.labels[l] = len(p.insns) }

func (p *bpfProgram) assemble() ([]Insn, error) {
	for at, l := range p.jumps {
		to := p.labels[l]
		if to < 0 {
			return nil, fmt.Errorf("device filter: unbound label %d", l)
		}
		off := to - at - 1
		if off < 0 || off > 0x7fff {
			return nil, fmt.Errorf("device filter: jump of %d instructions", off)
		}
		p.insns[at].Off = int16(off)
	}
	return p.insns, nil
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// loadDeviceProgram loads a BPF_PROG_TYPE_CGROUP_DEVICE program and returns
// its descriptor. The verifier's log comes back in the error.
func loadDeviceProgram(insns []Insn) (int, error) {
	license := []byte("Apache-2.0\x00")
	log := make([]byte, 4096)
	// union bpf_attr, BPF_PROG_LOAD member.
	var attr struct {
		progType           uint32
		insnCnt            uint32
		insns              uint64
		license            uint64
		logLevel           uint32
		logSize            uint32
		logBuf             uint64
		kernVersion        uint32
		progFlags          uint32
		progName           [16]byte
		progIfindex        uint32
		expectedAttachType uint32
	}
	attr.progType = unix.BPF_PROG_TYPE_CGROUP_DEVICE
	attr.insnCnt = uint32(len(insns))
	attr.insns = uint64(uintptr(unsafe.Pointer(&insns[0])))
	attr.license = uint64(uintptr(unsafe.Pointer(&license[0])))
	attr.expectedAttachType = unix.BPF_CGROUP_DEVICE
	copy(attr.progName[:], "berth_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		// Ask again with the verifier's reasons.
		attr.logLevel, attr.logSize = 1, uint32(len(log))
		attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
		if _, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err2 != nil {
			n := 0
			for n < len(log) && log[n] != 0 {
				n++
			}
			if n > 0 {
				err = fmt.Errorf("%w: %s", err, log[:n])
			}
		}
	}
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	runtime.KeepAlive(log)
	return fd, err
}

// bpfAttach attaches (BPF_PROG_ATTACH) or detaches (BPF_PROG_DETACH) a
// device program on a cgroup; attachments stack (BPF_F_ALLOW_MULTI).
func bpfAttach(cmd int, cgroup, prog int) error {
	attr := struct {
		targetFD     uint32
		attachBPFFD  uint32
		attachType   uint32
		attachFlags  uint32
		replaceBPFFD uint32
	}{uint32(cgroup), uint32(prog), unix.BPF_CGROUP_DEVICE, 0, 0}
	if cmd == unix.BPF_PROG_ATTACH {
		attr.attachFlags = unix.BPF_F_ALLOW_MULTI
	}
	_, err := bpf(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// attachedDevicePrograms returns descriptors of the device programs
// attached directly to the cgroup open as cg.
func attachedDevicePrograms(cg int) ([]int, error) {
	ids := make([]uint32, 64)
	attr := struct {
		targetFD    uint32
		attachType  uint32
		queryFlags  uint32
		attachFlags uint32
		progIDs     uint64
		progCnt     uint32
		_           uint32
	}{targetFD: uint32(cg), attachType: unix.BPF_CGROUP_DEVICE, progIDs: uint64(uintptr(unsafe.Pointer(&ids[0]))), progCnt: uint32(len(ids))}
	_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(ids)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, id := range ids[:attr.progCnt] {
		get := struct{ progID, nextID, openFlags uint32 }{progID: id}
		fd, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
		if err == nil {
			fds = append(fds, fd)
		}
	}
	return fds, nil
}
