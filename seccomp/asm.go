package seccomp

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// label names a jump target in an assembler program. The special label
// next means "the following instruction".
type label int

const next label = -1

// assembler collects classic BPF instructions with symbolic forward jump
// targets and resolves them. Conditional jumps in classic BPF can skip at
// most 255 instructions; the code generator keeps them short by
// construction and uses "ja" (32-bit offset) for anything that may be far.
type assembler struct {
	insns  []bpf.Instruction
	labels []int // label -> instruction index, -1 while unbound
	jumps  []pendingJump
}

type pendingJump struct {
	at     int
	cond   bpf.JumpTest
	val    uint32
	jt, jf label
	always bool // "ja": target in jt
}

func newAssembler() *assembler { return &assembler{} }

func (a *assembler) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

// bind places l at the next instruction to be emitted.
func (a *assembler) bind(l label) { a.labels[l] = len(a.insns) }

func (a *assembler) emit(ins bpf.Instruction) { a.insns = append(a.insns, ins) }

func (a *assembler) ret(v uint32) { a.emit(bpf.RetConstant{Val: v}) }

// jump emits "if A <cond> val goto jt else goto jf".
func (a *assembler) jump(cond bpf.JumpTest, val uint32, jt, jf label) {
	a.jumps = append(a.jumps, pendingJump{at: len(a.insns), cond: cond, val: val, jt: jt, jf: jf})
	a.emit(nil) // placeholder
}

// ja emits an unconditional jump.
func (a *assembler) ja(l label) {
	a.jumps = append(a.jumps, pendingJump{at: len(a.insns), jt: l, always: true})
	a.emit(nil)
}

func (a *assembler) resolve() ([]bpf.Instruction, error) {
	skip := func(at int, l label) (int, error) {
		if l == next {
			return 0, nil
		}
		dest := a.labels[l]
		if dest < 0 {
			return 0, fmt.Errorf("seccomp: internal error: unbound label")
		}
		if dest <= at {
			return 0, fmt.Errorf("seccomp: internal error: backward jump")
		}
		return dest - at - 1, nil
	}
	for _, j := range a.jumps {
		t, err := skip(j.at, j.jt)
		if err != nil {
			return nil, err
		}
		if j.always {
			a.insns[j.at] = bpf.Jump{Skip: uint32(t)}
			continue
		}
		f, err := skip(j.at, j.jf)
		if err != nil {
			return nil, err
		}
		if t > 255 || f > 255 {
			return nil, fmt.Errorf("seccomp: rule too large (conditional jump of %d instructions)", max(t, f))
		}
		a.insns[j.at] = bpf.JumpIf{Cond: j.cond, Val: j.val, SkipTrue: uint8(t), SkipFalse: uint8(f)}
	}
	return a.insns, nil
}
