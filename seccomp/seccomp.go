// Package seccomp turns Docker seccomp profiles into classic-BPF seccomp
// filters and installs them, in pure Go (no libseccomp).
//
// Profiles use Docker's JSON format (github.com/moby/profiles/seccomp); the
// profile's conditional rules ("includes"/"excludes" by capability, arch and
// minimum kernel) are resolved exactly as Docker does, against the container's
// capabilities given in Options. The resulting OCI-style rule list is then
// compiled to classic BPF (golang.org/x/net/bpf instructions), using the
// per-architecture syscall tables and action values of
// github.com/elastic/go-seccomp-bpf. Jump targets are resolved by a small
// assembler in this package (asm.go): go-seccomp-bpf's own Program assembler
// miscomputes long jumps to non-return instructions, which large argument
// rules need.
//
// Typical use, in the process that is about to execve the container command:
//
//	f, err := seccomp.Compile(seccomp.Default(), seccomp.Options{Capabilities: caps})
//	...
//	runtime.LockOSThread()
//	// drop privileges / set no_new_privs as required (see Filter.Load)
//	err = f.Load()
//	// execve
//
// Semantics of the generated filter (they mirror libseccomp as used by runc):
//
//   - The architecture of every syscall is checked first. The native
//     architecture is always accepted; additional architectures come from the
//     profile ("archMap" entry of the native arch, or "architectures"). A syscall
//     made with any other architecture (or, on x86_64, with the x32 ABI when x32
//     is not listed) kills the process.
//   - Each architecture gets its own rule block, with syscall numbers taken from
//     that architecture's table. Syscall names unknown to an architecture are
//     skipped for it (libseccomp/runc do the same).
//   - Per syscall, rules with argument conditions are tried first, in profile
//     order, and the first whose conditions all hold decides. Then an
//     unconditional rule for that syscall (if any) applies, else the profile's
//     default action. Two unconditional rules with different actions for the
//     same syscall are an error.
//   - Conditions of one rule are ANDed, except that when all of a rule's
//     conditions test the same argument they are ORed (a rule per condition),
//     which is what runc does.
//   - Argument comparisons are unsigned 64-bit.
package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Profile is a seccomp profile in Docker's JSON format, including its
// conditional rules. It is the type from github.com/moby/profiles/seccomp.
type Profile = mobyseccomp.Seccomp

// Options describe the container the profile is compiled for.
type Options struct {
	// Capabilities are the container's capabilities, e.g. "CAP_SYS_ADMIN".
	// Profile rules with "includes": {"caps": [...]} are kept only if all of
	// the listed capabilities are present; rules with "excludes": {"caps":
	// [...]} are dropped if any of them is present (as Docker does with the
	// bounding set).
	Capabilities []string
}

// Filter is a compiled seccomp BPF program, ready to be loaded.
type Filter struct {
	prog  []unix.SockFilter
	insns []bpf.Instruction // same program, kept for inspection in tests
	flags uintptr           // SECCOMP_FILTER_FLAG_* passed to seccomp(2)
}

// Default returns Docker's default seccomp profile.
func Default() *Profile {
	return mobyseccomp.DefaultProfile()
}

// LoadProfile reads a Docker JSON seccomp profile from a file, as given with
// `--security-opt seccomp=PATH`.
func LoadProfile(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seccomp: reading profile: %w", err)
	}
	p, err := ParseProfile(data)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %s: %w", path, err)
	}
	return p, nil
}

// ParseProfile decodes a Docker JSON seccomp profile.
func ParseProfile(data []byte) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("seccomp: decoding profile: %w", err)
	}
	if p.DefaultAction == "" {
		return nil, errors.New("seccomp: profile has no defaultAction")
	}
	return &p, nil
}

// Compile resolves the profile's conditional rules for the given options and
// the running host (architecture, kernel version) and compiles the result into
// a BPF filter for the native architecture and the sub-architectures the
// profile allows.
func Compile(p *Profile, o Options) (*Filter, error) {
	if p == nil {
		return nil, errors.New("seccomp: nil profile")
	}
	lsc, err := resolve(p, o)
	if err != nil {
		return nil, err
	}
	return compileResolved(lsc)
}

// Len returns the number of BPF instructions of the filter.
func (f *Filter) Len() int {
	return len(f.prog)
}

// resolve applies Docker's rule selection (caps, arch, minKernel) and returns
// the resulting flat OCI rule list. The moby helper mutates the profile it is
// given, so it works on a deep copy made through JSON; the caller's profile
// can be compiled again with other options.
func resolve(p *Profile, o Options) (*specs.LinuxSeccomp, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("seccomp: encoding profile: %w", err)
	}
	spec := &specs.Spec{Process: &specs.Process{
		Capabilities: &specs.LinuxCapabilities{Bounding: o.Capabilities},
	}}
	lsc, err := mobyseccomp.LoadProfile(string(data), spec)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	if lsc == nil {
		return nil, errors.New("seccomp: profile has no defaultAction and no syscalls")
	}
	return lsc, nil
}
