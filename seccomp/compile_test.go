package seccomp

import (
	"encoding/binary"
	"math/rand"
	"runtime"
	"sort"
	"testing"

	secbpf "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// dockerDefaultCaps is Docker's default capability set for containers.
var dockerDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// allCaps is every capability Linux knows about (as of 6.x).
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

const (
	retAllow = uint32(unix.SECCOMP_RET_ALLOW)
	retKill  = uint32(unix.SECCOMP_RET_KILL_PROCESS)
)

func retErrno(e unix.Errno) uint32 { return uint32(unix.SECCOMP_RET_ERRNO) | uint32(e) }

// evaluator runs a compiled filter in x/net/bpf's VM. The VM loads 32-bit
// words big-endian, so every 32-bit field of seccomp_data is stored
// big-endian at its native (little-endian layout) offset.
type evaluator struct {
	t  *testing.T
	vm *bpf.VM
}

func newEvaluator(t *testing.T, f *Filter) *evaluator {
	t.Helper()
	vm, err := bpf.NewVM(f.insns)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return &evaluator{t: t, vm: vm}
}

func (e *evaluator) run(auditArch, nr uint32, args [6]uint64) uint32 {
	e.t.Helper()
	buf := make([]byte, 64)
	binary.BigEndian.PutUint32(buf[0:], nr)
	binary.BigEndian.PutUint32(buf[4:], auditArch)
	for i, a := range args {
		binary.BigEndian.PutUint32(buf[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(buf[20+8*i:], uint32(a>>32))
	}
	r, err := e.vm.Run(buf)
	if err != nil {
		e.t.Fatalf("vm: %v", err)
	}
	return uint32(r)
}

func compileOrFail(t *testing.T, p *Profile, caps []string) *Filter {
	t.Helper()
	f, err := Compile(p, Options{Capabilities: caps})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return f
}

func requireAmd64(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("test expectations are for x86_64")
	}
}

var (
	x86_64 = uint32(arch.X86_64.ID)
	i386   = uint32(arch.I386.ID)
)

func nr64(t *testing.T, name string) uint32 {
	n, ok := arch.X86_64.SyscallNames[name]
	if !ok {
		t.Fatalf("no x86_64 syscall %s", name)
	}
	return uint32(n)
}

func TestCompileDefaultSize(t *testing.T) {
	requireAmd64(t)
	for _, tc := range []struct {
		name string
		caps []string
	}{
		{"docker-default-caps", dockerDefaultCaps},
		{"all-caps", allCaps},
		{"no-caps", nil},
	} {
		f := compileOrFail(t, Default(), tc.caps)
		t.Logf("%s: %d instructions", tc.name, f.Len())
		// x86_64 + x32 + i386 blocks of ~350-400 syscalls each.
		if f.Len() < 800 || f.Len() > 2500 {
			t.Errorf("%s: implausible filter size %d", tc.name, f.Len())
		}
		if len(f.prog) != len(f.insns) {
			t.Errorf("raw program and instructions differ in length")
		}
	}
	// A profile compiled twice gives the same program (Compile must not
	// mutate the profile).
	p := Default()
	a := compileOrFail(t, p, dockerDefaultCaps)
	b := compileOrFail(t, p, dockerDefaultCaps)
	if a.Len() != b.Len() {
		t.Errorf("recompiling the same profile: %d vs %d instructions", a.Len(), b.Len())
	}
}

// TestDefaultProfileSemantics spot-checks Docker's documented behaviour of
// the default profile in the BPF VM.
func TestDefaultProfileSemantics(t *testing.T) {
	requireAmd64(t)
	def := newEvaluator(t, compileOrFail(t, Default(), dockerDefaultCaps))
	all := newEvaluator(t, compileOrFail(t, Default(), allCaps))
	var noArgs [6]uint64
	args := func(a0, a1 uint64) [6]uint64 { return [6]uint64{a0, a1} }

	check := func(e *evaluator, what string, auditArch, nr uint32, a [6]uint64, want uint32) {
		t.Helper()
		if got := e.run(auditArch, nr, a); got != want {
			t.Errorf("%s: got %#x, want %#x", what, got, want)
		}
	}
	nsFlags := uint64(unix.CLONE_NEWUSER)

	check(def, "read", x86_64, nr64(t, "read"), noArgs, retAllow)
	check(def, "getpid", x86_64, nr64(t, "getpid"), noArgs, retAllow)
	check(def, "keyctl", x86_64, nr64(t, "keyctl"), noArgs, retErrno(unix.EPERM))
	check(def, "mount", x86_64, nr64(t, "mount"), noArgs, retErrno(unix.EPERM))
	check(def, "unshare", x86_64, nr64(t, "unshare"), args(nsFlags, 0), retErrno(unix.EPERM))
	check(def, "clone3", x86_64, nr64(t, "clone3"), noArgs, retErrno(unix.ENOSYS))
	check(def, "clone plain", x86_64, nr64(t, "clone"), args(unix.CLONE_VM|unix.CLONE_THREAD, 0), retAllow)
	check(def, "clone NEWUSER", x86_64, nr64(t, "clone"), args(nsFlags|unix.CLONE_VM, 0), retErrno(unix.EPERM))
	check(def, "clone NEWNS", x86_64, nr64(t, "clone"), args(unix.CLONE_NEWNS, 0), retErrno(unix.EPERM))
	// Flags in the upper half of the 64-bit register are not namespace flags.
	check(def, "clone hi bits", x86_64, nr64(t, "clone"), args(1<<40, 0), retAllow)
	check(def, "personality query", x86_64, nr64(t, "personality"), args(0xffffffff, 0), retAllow)
	check(def, "personality linux", x86_64, nr64(t, "personality"), args(0, 0), retAllow)
	check(def, "personality READ_IMPLIES_EXEC", x86_64, nr64(t, "personality"), args(0x0400000, 0), retErrno(unix.EPERM))
	check(def, "personality 64-bit", x86_64, nr64(t, "personality"), args(1<<32, 0), retErrno(unix.EPERM))
	check(def, "socket inet", x86_64, nr64(t, "socket"), args(unix.AF_INET, 0), retAllow)
	check(def, "socket netlink", x86_64, nr64(t, "socket"), args(unix.AF_NETLINK, 0), retAllow)
	check(def, "socket vsock", x86_64, nr64(t, "socket"), args(unix.AF_VSOCK, 0), retErrno(unix.EPERM))
	check(def, "chroot (CAP_SYS_CHROOT)", x86_64, nr64(t, "chroot"), noArgs, retAllow)
	check(def, "ptrace (minKernel 4.8)", x86_64, nr64(t, "ptrace"), noArgs, retAllow)
	check(def, "arch_prctl", x86_64, nr64(t, "arch_prctl"), noArgs, retAllow)
	check(def, "reboot", x86_64, nr64(t, "reboot"), noArgs, retErrno(unix.EPERM))
	check(def, "bogus syscall", x86_64, 1000, noArgs, retErrno(unix.EPERM))
	check(def, "syscall -1", x86_64, 0xffffffff, noArgs, retErrno(unix.EPERM))

	// Sub-architectures from the archMap: i386 and x32 rules use their own
	// syscall numbers.
	i386Getpid := uint32(arch.I386.SyscallNames["getpid"])
	i386Keyctl := uint32(arch.I386.SyscallNames["keyctl"])
	check(def, "i386 getpid", i386, i386Getpid, noArgs, retAllow)
	check(def, "i386 keyctl", i386, i386Keyctl, noArgs, retErrno(unix.EPERM))
	check(def, "i386 socketcall", i386, uint32(arch.I386.SyscallNames["socketcall"]), noArgs, retAllow)
	x32 := func(name string) uint32 { return uint32(arch.X32.SyscallNames[name]) | x32SyscallBit }
	check(def, "x32 getpid", x86_64, x32("getpid"), noArgs, retAllow)
	check(def, "x32 keyctl", x86_64, x32("keyctl"), noArgs, retErrno(unix.EPERM))
	check(def, "x32 clone3", x86_64, x32("clone3"), noArgs, retErrno(unix.ENOSYS))
	// Foreign architectures are killed.
	check(def, "aarch64", uint32(arch.AARCH64.ID), 172, noArgs, retKill)
	check(def, "arm", uint32(arch.ARM.ID), 20, noArgs, retKill)

	// With all capabilities the CAP_SYS_ADMIN etc. rules are included.
	check(all, "all caps: mount", x86_64, nr64(t, "mount"), noArgs, retAllow)
	check(all, "all caps: unshare", x86_64, nr64(t, "unshare"), args(nsFlags, 0), retAllow)
	check(all, "all caps: clone3", x86_64, nr64(t, "clone3"), noArgs, retAllow)
	check(all, "all caps: clone NEWUSER", x86_64, nr64(t, "clone"), args(nsFlags, 0), retAllow)
	check(all, "all caps: reboot", x86_64, nr64(t, "reboot"), noArgs, retAllow)
	check(all, "all caps: bpf", x86_64, nr64(t, "bpf"), noArgs, retAllow)
	check(all, "all caps: keyctl", x86_64, nr64(t, "keyctl"), noArgs, retErrno(unix.EPERM))
	check(all, "all caps: personality 8", x86_64, nr64(t, "personality"), args(8, 0), retAllow)
}

// reference evaluates the collected rules directly (not through BPF), with
// the documented semantics: argument rules in order, then the unconditional
// rule, then the default.
func reference(c *compiled, ar *archRules, nr uint32, args [6]uint64) uint32 {
	ret := func(a secbpf.Action) uint32 { return uint32(a) }
	for _, s := range ar.syscalls {
		if s.nr != nr {
			continue
		}
		for _, r := range s.conds {
			ok := true
			for _, cond := range r.conds {
				ok = ok && condHolds(cond, args[cond.Index])
			}
			if ok {
				return ret(r.action)
			}
		}
		if s.uncond != nil {
			return ret(*s.uncond)
		}
	}
	return ret(c.defaultAction)
}

func condHolds(c specs.LinuxSeccompArg, v uint64) bool {
	switch c.Op {
	case specs.OpEqualTo:
		return v == c.Value
	case specs.OpNotEqual:
		return v != c.Value
	case specs.OpLessThan:
		return v < c.Value
	case specs.OpLessEqual:
		return v <= c.Value
	case specs.OpGreaterThan:
		return v > c.Value
	case specs.OpGreaterEqual:
		return v >= c.Value
	case specs.OpMaskedEqual:
		return v&c.Value == c.ValueTwo
	}
	panic("bad op")
}

// checkAgainstReference runs many (arch, nr, args) inputs through the BPF
// program and compares with the reference evaluator.
func checkAgainstReference(t *testing.T, p *Profile, caps []string) {
	t.Helper()
	lsc, err := resolve(p, Options{Capabilities: caps})
	if err != nil {
		t.Fatal(err)
	}
	c, err := collect(lsc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := compileResolved(lsc)
	if err != nil {
		t.Fatal(err)
	}
	e := newEvaluator(t, f)
	rng := rand.New(rand.NewSource(1))

	// Interesting argument values: those in the rules and their neighbours.
	var interesting []uint64
	for _, ar := range c.arches {
		for _, s := range ar.syscalls {
			for _, r := range s.conds {
				for _, cond := range r.conds {
					for _, v := range []uint64{cond.Value, cond.ValueTwo} {
						interesting = append(interesting, v, v-1, v+1, v^(1<<32), v|^cond.Value)
					}
				}
			}
		}
	}
	interesting = append(interesting, 0, 1, 0xffffffff, 1<<32, ^uint64(0))
	randomArgs := func() (a [6]uint64) {
		for i := range a {
			a[i] = interesting[rng.Intn(len(interesting))]
		}
		return a
	}

	checked := 0
	for _, ar := range c.arches {
		mask := uint32(ar.info.SeccompMask)
		for n := uint32(0); n < 600; n++ {
			nr := n | mask
			tries := 1
			for _, s := range ar.syscalls {
				if s.nr == nr && len(s.conds) > 0 {
					tries = 300
				}
			}
			for i := 0; i < tries; i++ {
				a := randomArgs()
				want := reference(c, ar, nr, a)
				if got := e.run(uint32(ar.info.ID), nr, a); got != want {
					t.Fatalf("%s nr %d (%s) args %x: got %#x, want %#x",
						ar.info.Name, n, ar.info.SyscallNumbers[int(n)], a, got, want)
				}
				checked++
			}
		}
	}
	t.Logf("%d inputs agree with the reference evaluator", checked)
}

func TestDefaultProfileMatchesReference(t *testing.T) {
	checkAgainstReference(t, Default(), dockerDefaultCaps)
	checkAgainstReference(t, Default(), allCaps)
	checkAgainstReference(t, Default(), nil)
}

// TestOperators exercises every comparison operator, 64-bit values, AND of
// conditions on different arguments and OR of conditions on one argument.
func TestOperators(t *testing.T) {
	requireAmd64(t)
	p, err := ParseProfile([]byte(`{
	  "defaultAction": "SCMP_ACT_ALLOW",
	  "syscalls": [
	    {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
	     "args": [{"index": 0, "value": 4294967300, "op": "SCMP_CMP_GT"}]},
	    {"names": ["write"], "action": "SCMP_ACT_ERRNO",
	     "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_GE"},
	              {"index": 2, "value": 4294967296, "op": "SCMP_CMP_LT"}]},
	    {"names": ["close"], "action": "SCMP_ACT_KILL_PROCESS",
	     "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"},
	              {"index": 0, "value": 9, "op": "SCMP_CMP_EQ"}]},
	    {"names": ["dup"], "action": "SCMP_ACT_ERRNO",
	     "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_LE"}]},
	    {"names": ["dup2"], "action": "SCMP_ACT_ERRNO",
	     "args": [{"index": 1, "value": 2, "op": "SCMP_CMP_NE"}]},
	    {"names": ["fcntl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
	     "args": [{"index": 1, "value": 81604378640, "valueTwo": 12884901904, "op": "SCMP_CMP_MASKED_EQ"}]},
	    {"names": ["ioctl"], "action": "SCMP_ACT_TRAP",
	     "args": [{"index": 1, "value": 255, "valueTwo": 256, "op": "SCMP_CMP_MASKED_EQ"}]},
	    {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
	    {"names": ["getpid"], "action": "SCMP_ACT_KILL",
	     "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
	    {"names": ["gettid"], "action": "SCMP_ACT_LOG"},
	    {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0}
	  ]}`))
	if err != nil {
		t.Fatal(err)
	}
	f := compileOrFail(t, p, nil)
	e := newEvaluator(t, f)
	cases := []struct {
		name string
		args [6]uint64
		want uint32
	}{
		{"read", [6]uint64{4294967300}, retAllow},
		{"read", [6]uint64{4294967301}, retErrno(unix.EIO)},
		{"read", [6]uint64{1 << 33}, retErrno(unix.EIO)},
		{"read", [6]uint64{0xffffffff}, retAllow},
		{"write", [6]uint64{3, 0, 5}, retErrno(unix.EPERM)},
		{"write", [6]uint64{2, 0, 5}, retAllow},
		{"write", [6]uint64{3, 0, 1 << 32}, retAllow},
		{"write", [6]uint64{1 << 32, 0, 0xffffffff}, retErrno(unix.EPERM)},
		{"close", [6]uint64{7}, retKill},
		{"close", [6]uint64{9}, retKill},
		{"close", [6]uint64{8}, retAllow},
		{"close", [6]uint64{7 | 1<<32}, retAllow},
		{"dup", [6]uint64{10}, retErrno(unix.EPERM)},
		{"dup", [6]uint64{11}, retAllow},
		{"dup", [6]uint64{1 << 32}, retAllow},
		{"dup2", [6]uint64{0, 2}, retAllow},
		{"dup2", [6]uint64{0, 2 | 1<<32}, retErrno(unix.EPERM)},
		{"dup2", [6]uint64{0, 3}, retErrno(unix.EPERM)},
		// mask 0x13_0000_0010, want 0x3_0000_0010
		{"fcntl", [6]uint64{0, 0x3_0000_0010}, retErrno(unix.EINVAL)},
		{"fcntl", [6]uint64{0, 0xf_ffff_ffef | 0x3_0000_0010}, retErrno(unix.EINVAL)},
		{"fcntl", [6]uint64{0, 0x13_0000_0010}, retAllow},
		{"fcntl", [6]uint64{0, 0x2_0000_0010}, retAllow},
		{"fcntl", [6]uint64{0, 0x3_0000_0000}, retAllow},
		{"ioctl", [6]uint64{0, 256}, retAllow}, // unsatisfiable rule dropped
		{"getpid", [6]uint64{0}, retErrno(unix.EPERM)},
		{"getpid", [6]uint64{1}, uint32(unix.SECCOMP_RET_KILL_THREAD)},
		{"gettid", [6]uint64{}, uint32(unix.SECCOMP_RET_LOG)},
		{"mkdir", [6]uint64{}, retAllow},
		{"getuid", [6]uint64{}, retErrno(0)},
	}
	for _, tc := range cases {
		if got := e.run(x86_64, nr64(t, tc.name), tc.args); got != tc.want {
			t.Errorf("%s%x: got %#x, want %#x", tc.name, tc.args[:3], got, tc.want)
		}
	}
	// No archMap/architectures: only native x86_64; x32 and i386 are killed.
	if got := e.run(x86_64, 39|x32SyscallBit, [6]uint64{}); got != retKill {
		t.Errorf("x32 syscall without x32 in profile: got %#x, want kill", got)
	}
	if got := e.run(i386, 20, [6]uint64{}); got != retKill {
		t.Errorf("i386 syscall without x86 in profile: got %#x, want kill", got)
	}
	if got := e.run(x86_64, 0xffffffff, [6]uint64{}); got != retAllow {
		t.Errorf("syscall -1: got %#x, want default", got)
	}
	checkAgainstReference(t, p, nil)
}

// TestBigProfile makes conditional blocks and jump distances large enough
// to need the assembler's long-jump handling everywhere.
func TestBigProfile(t *testing.T) {
	p, err := ParseProfile([]byte(`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}`))
	if err != nil {
		t.Fatal(err)
	}
	// Names in sorted order so the test is deterministic.
	var names []string
	for name := range arch.X86_64.SyscallNames {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		sc := &mobyseccomp.Syscall{}
		sc.Names = []string{name}
		switch {
		case i%100 == 0:
			// 80 alternatives on one argument: a ~320-instruction block.
			sc.Action = specs.ActAllow
			for v := uint64(0); v < 80; v++ {
				sc.Args = append(sc.Args, specs.LinuxSeccompArg{Index: 0, Value: v * 0x1_0000_0001, Op: specs.OpEqualTo})
			}
		case i%50 == 25:
			// 18 ANDed conditions on different arguments.
			sc.Action = specs.ActTrace
			for v := uint64(0); v < 18; v++ {
				sc.Args = append(sc.Args, specs.LinuxSeccompArg{Index: uint(v % 6), Value: v << 31, Op: specs.OpGreaterEqual})
			}
		case i%2 == 0:
			sc.Action = specs.ActAllow
		default:
			sc.Action = specs.ActKillThread
		}
		p.Syscalls = append(p.Syscalls, sc)
	}
	f, err := Compile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("big profile: %d instructions", f.Len())
	checkAgainstReference(t, p, nil)
}

func TestProfileErrors(t *testing.T) {
	for _, js := range []string{
		`{"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}`,
		`{"defaultAction": "SCMP_ACT_BOGUS"}`,
		`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}`,
		`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["read"], "action": "SCMP_ACT_KILL"}]}`,
		`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}`,
		`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}`,
		`{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}`,
	} {
		p, err := ParseProfile([]byte(js))
		if err == nil {
			_, err = Compile(p, Options{})
		}
		if err == nil {
			t.Errorf("no error for %s", js)
		}
	}
}

func TestFilterBytesRoundTrip(t *testing.T) {
	f, err := Compile(Default(), Options{Capabilities: []string{"CAP_CHOWN", "CAP_KILL"}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := FilterFromBytes(f.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if g.flags != f.flags || len(g.prog) != len(f.prog) {
		t.Fatalf("round trip changed the filter: %d/%d instructions, flags %x/%x", len(g.prog), len(f.prog), g.flags, f.flags)
	}
	for i := range f.prog {
		if f.prog[i] != g.prog[i] {
			t.Fatalf("instruction %d differs: %+v vs %+v", i, f.prog[i], g.prog[i])
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 12), make([]byte, 8)} {
		if _, err := FilterFromBytes(bad); err == nil {
			t.Errorf("FilterFromBytes(%d bytes) accepted", len(bad))
		}
	}
}
