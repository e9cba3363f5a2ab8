package seccomp

import (
	"fmt"
	"unsafe"

	secbpf "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Offsets into struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
)

// x32SyscallBit marks x32-ABI syscall numbers on x86_64 (__X32_SYSCALL_BIT);
// x32 and x86_64 share the audit arch value, only this bit tells them apart.
const x32SyscallBit = 0x40000000

// badArchAction is returned for syscalls made with an architecture (ABI) the
// filter does not cover. Killing the whole process (not just the thread) is
// the safe choice: the profile's rules cannot be evaluated for that ABI.
const badArchAction = uint32(unix.SECCOMP_RET_KILL_PROCESS)

// bpfMaxInsns is the kernel's limit for one classic BPF program (BPF_MAXINSNS).
const bpfMaxInsns = 4096

// specArches maps the profile's architecture names to syscall tables. Only
// architectures with a syscall table in go-seccomp-bpf can be supported.
var specArches = map[specs.Arch]*arch.Info{
	specs.ArchX86_64:  arch.X86_64,
	specs.ArchX86:     arch.I386,
	specs.ArchX32:     arch.X32,
	specs.ArchAARCH64: arch.AARCH64,
	specs.ArchARM:     arch.ARM,
}

// condRule is one rule with argument conditions; all conds must hold.
type condRule struct {
	action secbpf.Action
	conds  []specs.LinuxSeccompArg
}

// syscallRules collects everything the profile says about one syscall number
// of one architecture.
type syscallRules struct {
	name   string
	nr     uint32 // including the arch's syscall-number mask (x32)
	uncond *secbpf.Action
	conds  []condRule
}

// archRules is the rule set for one architecture.
type archRules struct {
	info     *arch.Info
	syscalls []*syscallRules // in order of first appearance in the profile
}

// compiled is the intermediate form: the default action and per-arch rules.
type compiled struct {
	defaultAction secbpf.Action
	arches        []*archRules // native first
	flags         uintptr
}

func compileResolved(lsc *specs.LinuxSeccomp) (*Filter, error) {
	c, err := collect(lsc)
	if err != nil {
		return nil, err
	}
	insns, err := c.assemble()
	if err != nil {
		return nil, err
	}
	if len(insns) > bpfMaxInsns {
		return nil, fmt.Errorf("seccomp: filter too large: %d instructions (max %d)", len(insns), bpfMaxInsns)
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assembling BPF: %w", err)
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return &Filter{prog: prog, insns: insns, flags: c.flags}, nil
}

// collect validates the resolved profile and sorts its rules per
// architecture and syscall number.
func collect(lsc *specs.LinuxSeccomp) (*compiled, error) {
	if lsc.ListenerPath != "" {
		return nil, fmt.Errorf("seccomp: listenerPath (SCMP_ACT_NOTIFY) is not supported")
	}
	c := &compiled{flags: unix.SECCOMP_FILTER_FLAG_TSYNC}
	for _, fl := range lsc.Flags {
		switch fl {
		case specs.LinuxSeccompFlagLog:
			c.flags |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			c.flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case specs.LinuxSeccompFlagWaitKillableRecv:
			// Only meaningful with a user-notification listener, which is
			// not supported (and the kernel rejects it without one).
		default:
			return nil, fmt.Errorf("seccomp: unsupported flag %q", fl)
		}
	}
	var err error
	if c.defaultAction, err = convertAction(lsc.DefaultAction, lsc.DefaultErrnoRet); err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}

	// The native arch is always covered (as with libseccomp), then the
	// arches listed by the profile that we have syscall tables for. Arches
	// without a table cannot be used on this host anyway (the kernel would
	// never report them), so they are ignored.
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	infos := []*arch.Info{native}
	for _, a := range lsc.Architectures {
		info, ok := specArches[a]
		if !ok || containsInfo(infos, info) {
			continue
		}
		infos = append(infos, info)
	}

	for _, info := range infos {
		ar := &archRules{info: info}
		byNr := map[uint32]*syscallRules{}
		for _, sc := range lsc.Syscalls {
			act, err := convertAction(sc.Action, sc.ErrnoRet)
			if err != nil {
				return nil, fmt.Errorf("seccomp: syscalls %v: %w", sc.Names, err)
			}
			sets, conditional, err := argSets(sc.Args)
			if err != nil {
				return nil, fmt.Errorf("seccomp: syscalls %v: %w", sc.Names, err)
			}
			for _, name := range sc.Names {
				num, ok := info.SyscallNames[name]
				if !ok {
					continue // not a syscall of this arch
				}
				nr := uint32(num | info.SeccompMask)
				s := byNr[nr]
				if s == nil {
					s = &syscallRules{name: name, nr: nr}
					byNr[nr] = s
					ar.syscalls = append(ar.syscalls, s)
				}
				if !conditional {
					if s.uncond != nil && *s.uncond != act {
						return nil, fmt.Errorf("seccomp: conflicting actions for syscall %s", name)
					}
					s.uncond = &act
					continue
				}
				for _, set := range sets {
					s.conds = append(s.conds, condRule{action: act, conds: set})
				}
			}
		}
		c.arches = append(c.arches, ar)
	}
	return c, nil
}

func containsInfo(infos []*arch.Info, info *arch.Info) bool {
	for _, i := range infos {
		if i == info {
			return true
		}
	}
	return false
}

// convertAction turns a profile action into the seccomp return value.
func convertAction(a specs.LinuxSeccompAction, errnoRet *uint) (secbpf.Action, error) {
	data := uint32(unix.EPERM) // libseccomp/runc default for ERRNO and TRACE
	if errnoRet != nil {
		if *errnoRet > unix.SECCOMP_RET_DATA {
			return 0, fmt.Errorf("errnoRet %d out of range", *errnoRet)
		}
		data = uint32(*errnoRet)
	}
	switch a {
	case specs.ActAllow:
		return secbpf.ActionAllow, nil
	case specs.ActErrno:
		// An explicit errnoRet of 0 makes the syscall return 0 without
		// running (kernel semantics, as with libseccomp).
		return secbpf.ActionErrno | secbpf.Action(data), nil
	case specs.ActKill, specs.ActKillThread:
		return secbpf.ActionKillThread, nil
	case specs.ActKillProcess:
		return secbpf.ActionKillProcess, nil
	case specs.ActTrap:
		return secbpf.ActionTrap, nil
	case specs.ActTrace:
		return secbpf.ActionTrace | secbpf.Action(data), nil
	case specs.ActLog:
		return secbpf.ActionLog, nil
	case specs.ActNotify:
		return 0, fmt.Errorf("action %s is not supported", a)
	default:
		return 0, fmt.Errorf("unknown action %q", a)
	}
}

// argSets splits a rule's argument conditions into alternative condition
// sets (each set is ANDed, the sets are ORed). conditional is false for a
// rule without arguments. A rule whose conditions all test the same argument
// index means "any of these" (runc's interpretation, since libseccomp cannot
// AND two comparisons of one argument); otherwise it is a single AND set.
// Sets that can never match (MASKED_EQ whose value has bits outside the mask)
// are dropped.
func argSets(args []specs.LinuxSeccompArg) (sets [][]specs.LinuxSeccompArg, conditional bool, err error) {
	if len(args) == 0 {
		return nil, false, nil
	}
	sameIndex := true
	for _, a := range args {
		if a.Index > 5 {
			return nil, false, fmt.Errorf("argument index %d out of range", a.Index)
		}
		switch a.Op {
		case specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual,
			specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpMaskedEqual:
		default:
			return nil, false, fmt.Errorf("unknown operator %q", a.Op)
		}
		if a.Index != args[0].Index {
			sameIndex = false
		}
	}
	satisfiable := func(a specs.LinuxSeccompArg) bool {
		return a.Op != specs.OpMaskedEqual || a.ValueTwo&^a.Value == 0
	}
	if len(args) > 1 && sameIndex {
		for _, a := range args {
			if satisfiable(a) {
				sets = append(sets, []specs.LinuxSeccompArg{a})
			}
		}
		return sets, true, nil
	}
	for _, a := range args {
		if !satisfiable(a) {
			return nil, true, nil
		}
	}
	return [][]specs.LinuxSeccompArg{args}, true, nil
}

// assemble builds the whole program:
//
//	A = arch
//	for each arch group: if A == audit arch -> jump to its block
//	return KILL_PROCESS                          (foreign arch)
//	block: A = nr; [x86_64: x32 split]; rules...; return default
//
// Every block is self-contained: all of its paths end in a return.
func (c *compiled) assemble() ([]bpf.Instruction, error) {
	// Group arches by audit arch value: x86_64 and x32 share one.
	type group struct {
		id            uint32
		plain, masked *archRules
		start         label
	}
	var groups []*group
	for _, ar := range c.arches {
		id := uint32(ar.info.ID)
		var g *group
		for _, x := range groups {
			if x.id == id {
				g = x
			}
		}
		if g == nil {
			g = &group{id: id}
			groups = append(groups, g)
		}
		if ar.info.SeccompMask != 0 {
			g.masked = ar
		} else {
			g.plain = ar
		}
	}

	a := newAssembler()
	a.emit(bpf.LoadAbsolute{Off: offArch, Size: 4})
	for _, g := range groups {
		g.start = a.newLabel()
		skip := a.newLabel()
		a.jump(bpf.JumpEqual, g.id, next, skip)
		a.ja(g.start) // "ja" reaches any distance, conditional jumps only 255
		a.bind(skip)
	}
	a.ret(badArchAction)

	for _, g := range groups {
		a.bind(g.start)
		a.emit(bpf.LoadAbsolute{Off: offNr, Size: 4})
		masked := a.newLabel()
		if g.id == uint32(arch.X32.ID) {
			// x86_64 audit arch: numbers with the x32 bit set are x32 ABI
			// syscalls, except -1 (a syscall skipped by a tracer), which
			// stays with x86_64 as in libseccomp.
			plain := a.newLabel()
			a.jump(bpf.JumpGreaterOrEqual, x32SyscallBit, next, plain)
			a.jump(bpf.JumpEqual, 0xffffffff, plain, next)
			if g.masked != nil {
				a.ja(masked)
			} else {
				a.ret(badArchAction)
			}
			a.bind(plain)
		}
		if g.plain != nil {
			c.assembleRules(a, g.plain)
		} else {
			a.ret(badArchAction)
		}
		if g.masked != nil {
			a.bind(masked)
			c.assembleRules(a, g.masked)
		}
	}
	return a.resolve()
}

// allowChunk bounds how many "if nr == N goto ret" tests share one return
// instruction, so that the conditional jumps stay within 255 instructions.
const allowChunk = 200

// assembleRules emits the rules of one arch. On entry A holds the syscall
// number. Layout:
//
//	for each syscall with argument rules:
//	    if nr != N goto next                       (jeq + ja)
//	    for each rule: if all conditions hold: return rule action
//	    return unconditional action (or default)
//	  next:
//	for each action, in chunks: if nr == N1 goto r; if nr == N2 goto r; ...
//	                            goto over; r: return action; over:
//	return default
//
// Argument checks clobber A, which is why every argument block ends with a
// return rather than falling through to further syscall-number tests.
func (c *compiled) assembleRules(a *assembler, ar *archRules) {
	def := c.defaultAction

	var uncond []*syscallRules
	for _, s := range ar.syscalls {
		fallback := def
		if s.uncond != nil {
			fallback = *s.uncond
		}
		// A conditional rule with the fallback action changes nothing.
		var rules []condRule
		for _, r := range s.conds {
			if r.action != fallback {
				rules = append(rules, r)
			}
		}
		if len(rules) == 0 {
			if fallback != def {
				uncond = append(uncond, s)
			}
			continue
		}
		nextSyscall, body := a.newLabel(), a.newLabel()
		a.jump(bpf.JumpEqual, s.nr, body, next)
		a.ja(nextSyscall)
		a.bind(body)
		for _, r := range rules {
			fail := a.newLabel()
			for _, cond := range r.conds {
				emitCondition(a, cond, fail)
			}
			a.ret(uint32(r.action))
			a.bind(fail)
		}
		a.ret(uint32(fallback))
		a.bind(nextSyscall)
	}

	// Unconditional rules, grouped by action.
	var order []secbpf.Action
	seen := map[secbpf.Action]bool{}
	for _, s := range uncond {
		if !seen[*s.uncond] {
			seen[*s.uncond] = true
			order = append(order, *s.uncond)
		}
	}
	for _, act := range order {
		var nrs []uint32
		for _, s := range uncond {
			if *s.uncond == act {
				nrs = append(nrs, s.nr)
			}
		}
		for len(nrs) > 0 {
			n := min(len(nrs), allowChunk)
			r, over := a.newLabel(), a.newLabel()
			for i, nr := range nrs[:n] {
				if i == n-1 {
					a.jump(bpf.JumpEqual, nr, r, over)
				} else {
					a.jump(bpf.JumpEqual, nr, r, next)
				}
			}
			a.bind(r)
			a.ret(uint32(act))
			a.bind(over)
			nrs = nrs[n:]
		}
	}
	a.ret(uint32(def))
}

// emitCondition emits a 64-bit comparison of one syscall argument, built
// from 32-bit halves (seccomp_data holds arguments as u64, classic BPF
// compares 32 bits). If it holds, execution continues after the emitted
// code; otherwise it jumps to fail.
func emitCondition(a *assembler, c specs.LinuxSeccompArg, fail label) {
	hiOff, loOff := argOffsets(c.Index)
	hi, lo := uint32(c.Value>>32), uint32(c.Value)
	pass := a.newLabel()
	ldHi := func() { a.emit(bpf.LoadAbsolute{Off: hiOff, Size: 4}) }
	ldLo := func() { a.emit(bpf.LoadAbsolute{Off: loOff, Size: 4}) }

	// ordered emits "arg <op> value" for the ordering operators: decided by
	// the high halves unless they are equal, then by the low halves.
	ordered := func(hiStrict, loCond bpf.JumpTest) {
		ldHi()
		a.jump(hiStrict, hi, pass, next)
		a.jump(bpf.JumpEqual, hi, next, fail)
		ldLo()
		a.jump(loCond, lo, pass, fail)
	}

	switch c.Op {
	case specs.OpEqualTo:
		ldHi()
		a.jump(bpf.JumpEqual, hi, next, fail)
		ldLo()
		a.jump(bpf.JumpEqual, lo, pass, fail)
	case specs.OpNotEqual:
		ldHi()
		a.jump(bpf.JumpEqual, hi, next, pass)
		ldLo()
		a.jump(bpf.JumpEqual, lo, fail, pass)
	case specs.OpGreaterThan:
		ordered(bpf.JumpGreaterThan, bpf.JumpGreaterThan)
	case specs.OpGreaterEqual:
		ordered(bpf.JumpGreaterThan, bpf.JumpGreaterOrEqual)
	case specs.OpLessThan:
		ordered(bpf.JumpLessThan, bpf.JumpLessThan)
	case specs.OpLessEqual:
		ordered(bpf.JumpLessThan, bpf.JumpLessOrEqual)
	case specs.OpMaskedEqual:
		// (arg & Value) == ValueTwo, per half.
		mask, want := c.Value, c.ValueTwo
		ldHi()
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: uint32(mask >> 32)})
		a.jump(bpf.JumpEqual, uint32(want>>32), next, fail)
		ldLo()
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: uint32(mask)})
		a.jump(bpf.JumpEqual, uint32(want), pass, fail)
	}
	a.bind(pass)
}

// argOffsets returns the offsets of the high and low 32-bit halves of
// seccomp_data.args[i] (a native-endian u64).
func argOffsets(i uint) (hi, lo uint32) {
	off := uint32(16 + 8*i)
	if nativeLittleEndian() {
		return off + 4, off
	}
	return off, off + 4
}

func nativeLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
