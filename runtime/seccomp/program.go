package seccomp

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// program is a classic BPF program under construction, with jumps to named
// labels. Classic BPF's conditional jumps reach at most 255 instructions
// ahead; assemble rewrites the ones that do not fit into jumps over
// unconditional ones, whose reach is 32 bits.
type program struct {
	insns  []insn
	labels int
}

type insnKind int

const (
	kLoad insnKind = iota
	kAnd
	kJump // conditional
	kJa
	kRet
)

type insn struct {
	kind   insnKind
	k      uint32
	cond   bpf.JumpTest
	jt, jf string // labels; "" is the next instruction
	labels []string
}

func (p *program) emit(i insn) { p.insns = append(p.insns, i) }

// label names the position of the next instruction.
func (p *program) label(name string) {
	p.emit(insn{kind: -1, labels: []string{name}})
}

func (p *program) fresh() string {
	p.labels++
	return fmt.Sprintf(".L%d", p.labels)
}

func (p *program) ld(off uint32) { p.emit(insn{kind: kLoad, k: off}) }
func (p *program) and(v uint32)  { p.emit(insn{kind: kAnd, k: v}) }
func (p *program) ret(v uint32)  { p.emit(insn{kind: kRet, k: v}) }
func (p *program) ja(to string)  { p.emit(insn{kind: kJa, jt: to}) }
func (p *program) jeq(v uint32, jt, jf string) {
	p.emit(insn{kind: kJump, cond: bpf.JumpEqual, k: v, jt: jt, jf: jf})
}
func (p *program) jgt(v uint32, jt, jf string) {
	p.emit(insn{kind: kJump, cond: bpf.JumpGreaterThan, k: v, jt: jt, jf: jf})
}
func (p *program) jge(v uint32, jt, jf string) {
	p.emit(insn{kind: kJump, cond: bpf.JumpGreaterOrEqual, k: v, jt: jt, jf: jf})
}

// resolve folds label pseudo-instructions into the instruction after them.
func (p *program) resolve() []insn {
	var out []insn
	var pending []string
	for _, i := range p.insns {
		if i.kind == -1 {
			pending = append(pending, i.labels...)
			continue
		}
		i.labels = append(pending, i.labels...)
		pending = nil
		out = append(out, i)
	}
	if len(pending) > 0 {
		// A trailing label needs an instruction to point at; nothing
		// emits one, but keep the program well-formed if it happens.
		out = append(out, insn{kind: kRet, k: retKillThread, labels: pending})
	}
	return out
}

func positions(insns []insn) map[string]int {
	pos := map[string]int{}
	for i, in := range insns {
		for _, l := range in.labels {
			pos[l] = i
		}
	}
	return pos
}

// assemble lays the program out and encodes it.
func (p *program) assemble() ([]bpf.RawInstruction, error) {
	insns := p.resolve()
	for {
		pos := positions(insns)
		far := -1
		for i, in := range insns {
			if in.kind != kJump {
				continue
			}
			for _, t := range []string{in.jt, in.jf} {
				if t == "" {
					continue
				}
				to, ok := pos[t]
				if !ok {
					return nil, fmt.Errorf("seccomp: internal error: undefined label %q", t)
				}
				if to <= i {
					return nil, fmt.Errorf("seccomp: internal error: backward jump to %q", t)
				}
				if to-i-1 > 255 {
					far = i
				}
			}
			if far >= 0 {
				break
			}
		}
		if far < 0 {
			break
		}
		// Turn "jcond A, B" into "jcond T1, T2; T1: ja A; T2: ja B",
		// with fall-through targets made explicit first.
		in := insns[far]
		next := p.fresh()
		var tramp []insn
		retarget := func(t string) string {
			if t == "" {
				t = next
			}
			l := p.fresh()
			tramp = append(tramp, insn{kind: kJa, jt: t, labels: []string{l}})
			return l
		}
		in.jt, in.jf = retarget(in.jt), retarget(in.jf)
		insns[far] = in
		if far+1 < len(insns) {
			insns[far+1].labels = append(insns[far+1].labels, next)
		} else {
			return nil, fmt.Errorf("seccomp: internal error: jump at the end of the program")
		}
		rest := append(tramp, insns[far+1:]...)
		insns = append(insns[:far+1], rest...)
	}
	if len(insns) > maxInstructions {
		return nil, fmt.Errorf("linux.seccomp: the profile compiles to %d BPF instructions, more than the kernel's limit of %d", len(insns), maxInstructions)
	}
	pos := positions(insns)
	var prog []bpf.Instruction
	for i, in := range insns {
		skip := func(t string) uint32 {
			if t == "" {
				return 0
			}
			return uint32(pos[t] - i - 1)
		}
		switch in.kind {
		case kLoad:
			prog = append(prog, bpf.LoadAbsolute{Off: in.k, Size: 4})
		case kAnd:
			prog = append(prog, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: in.k})
		case kRet:
			prog = append(prog, bpf.RetConstant{Val: in.k})
		case kJa:
			prog = append(prog, bpf.Jump{Skip: skip(in.jt)})
		case kJump:
			prog = append(prog, bpf.JumpIf{Cond: in.cond, Val: in.k, SkipTrue: uint8(skip(in.jt)), SkipFalse: uint8(skip(in.jf))})
		}
	}
	return bpf.Assemble(prog)
}
