package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// StartError is a failure of the container's setup or of its command's
// exec, with the exit code Docker would give (125, 126, 127).
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

// ForkOptions says how to fork a container's init child.
type ForkOptions struct {
	Exe         string // the berth binary to re-exec (see SealedExe)
	HostNetwork bool   // share the host's network namespace
	// JoinNetwork: the child joins another container's network namespace
	// (the spec's path) instead of getting a new one.
	JoinNetwork bool
	Terminal    bool // stdin is a pty slave that becomes the controlling terminal
	// LateMounts has the child make its mount namespace only when its spec
	// arrives, from the calling thread, so the rootfs may be mounted after
	// Fork returns. Not for --init: its pid 1 stays a Go process whose other
	// threads would keep the host's mounts.
	LateMounts bool
	// The container's standard streams. With a terminal all three are the
	// pty's slave side.
	Stdin          *os.File
	Stdout, Stderr *os.File
	// UidMappings and GidMappings, when set, give the child a user
	// namespace of its own with these maps (rootless --userns=keep-id),
	// in which it starts as root.
	UidMappings, GidMappings []syscall.SysProcIDMap
}

// Pending is an init child that has been forked into its namespaces and
// waits for its spec. Forking first lets the child's start-up overlap
// with the caller's mounting of the rootfs and making of the cgroup.
type Pending struct {
	cmd  *exec.Cmd
	sync *os.File
}

// Process is a started container process (its pid 1).
type Process struct {
	Pid int
	cmd *exec.Cmd
}

// Fork starts berth's init child in new namespaces. It waits, before
// touching anything, for Start to send it the spec.
func Fork(o ForkOptions) (*Pending, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating sync socket: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "sync-parent")
	child := os.NewFile(uintptr(fds[1]), "sync-child")
	var flags uintptr
	for _, ns := range Namespaces(o.HostNetwork) {
		switch ns.Type {
		case specs.PIDNamespace:
			flags |= unix.CLONE_NEWPID
		case specs.MountNamespace:
			if !o.LateMounts {
				flags |= unix.CLONE_NEWNS
			}
		case specs.UTSNamespace:
			flags |= unix.CLONE_NEWUTS
		case specs.IPCNamespace:
			flags |= unix.CLONE_NEWIPC
		case specs.NetworkNamespace:
			if !o.JoinNetwork {
				flags |= unix.CLONE_NEWNET
			}
		}
		// The cgroup namespace is unshared by the child itself, once it
		// is in its cgroup.
	}
	args := []string{"berth", InitArg}
	if o.LateMounts {
		args = append(args, lateMountsArg)
	}
	cmd := &exec.Cmd{
		Path: o.Exe,
		Args: args,
		// No periodic re-reading of the host's cgroup CPU limits: the Go
		// runtime would keep those host files open in the container's pid 1.
		Env:        []string{"GODEBUG=containermaxprocs=0,updatemaxprocs=0"},
		Stdin:      o.Stdin,
		Stdout:     o.Stdout,
		Stderr:     o.Stderr,
		ExtraFiles: []*os.File{child},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: flags,
			Setsid:     true,
			Setctty:    o.Terminal,
			Ctty:       0,
		},
	}
	if len(o.UidMappings) > 0 {
		// Exec'd through a descriptor: the container's root may not be
		// allowed to search the directories on the way to the binary
		// (--userns=nomap, auto: the user's own ids are not mapped).
		exe, err := os.Open(o.Exe)
		if err != nil {
			parent.Close()
			child.Close()
			return nil, &StartError{Code: 125, Msg: fmt.Sprintf("starting container init: %v", err)}
		}
		defer exe.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, exe)
		cmd.Path = fmt.Sprintf("/proc/self/fd/%d", 2+len(cmd.ExtraFiles))
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = o.UidMappings
		cmd.SysProcAttr.GidMappings = o.GidMappings
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	err = cmd.Start()
	child.Close()
	if err != nil {
		parent.Close()
		return nil, &StartError{Code: 125, Msg: fmt.Sprintf("starting container init: %v", err)}
	}
	return &Pending{cmd: cmd, sync: parent}, nil
}

// Pid is the forked child's pid.
func (p *Pending) Pid() int { return p.cmd.Process.Pid }

// Abort kills a forked child that will not be started.
func (p *Pending) Abort() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.sync.Close()
}

// Start puts the child in its cgroup, sends it the spec (its go-ahead),
// and returns once the command was exec'd, or with the child's error.
func (p *Pending) Start(spec *specs.Spec, cg *Cgroup) (*Process, error) {
	defer p.sync.Close()
	fail := func(err error) (*Process, error) {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		return nil, err
	}
	if cg != nil {
		if err := cg.Add(p.cmd.Process.Pid); err != nil {
			return fail(&StartError{Code: 125, Msg: err.Error()})
		}
	}
	msg, err := json.Marshal(spec)
	if err != nil {
		return fail(&StartError{Code: 125, Msg: fmt.Sprintf("encoding runtime spec: %v", err)})
	}
	if _, err := p.sync.Write(msg); err != nil {
		// The child died early: its message may still be readable.
		if serr := readInitResult(p.sync); serr != nil {
			return fail(serr)
		}
		return fail(&StartError{Code: 125, Msg: fmt.Sprintf("container init exited early: %v", err)})
	}
	if serr := readInitResult(p.sync); serr != nil {
		return fail(serr)
	}
	return &Process{Pid: p.cmd.Process.Pid, cmd: p.cmd}, nil
}

// readInitResult reads the sync socket until EOF (exec succeeded) or an
// error message from the child.
func readInitResult(r io.Reader) *StartError {
	buf := make([]byte, 64<<10)
	n, err := r.Read(buf)
	if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return nil
	}
	if n == 0 {
		return &StartError{Code: 125, Msg: fmt.Sprintf("reading from container init: %v", err)}
	}
	var ie initError
	if err := json.Unmarshal(buf[:n], &ie); err != nil {
		return &StartError{Code: 125, Msg: fmt.Sprintf("bad message from container init: %q", buf[:n])}
	}
	return &StartError{Code: ie.Code, Msg: ie.Msg}
}

// Wait waits for the container's pid 1 to exit and returns its exit code
// in the shell's convention (128+signal for a signal).
func (p *Process) Wait() (int, error) {
	err := p.cmd.Wait()
	if ps := p.cmd.ProcessState; ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			return exitCodeOf(unix.WaitStatus(ws)), nil
		}
	}
	return -1, fmt.Errorf("waiting for container process: %w", err)
}

// Signal sends sig to the container's pid 1.
func (p *Process) Signal(sig syscall.Signal) error {
	return unix.Kill(p.Pid, sig)
}
