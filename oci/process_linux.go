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

// StartOptions says how to start a container's init child.
type StartOptions struct {
	Exe      string // the berth binary to re-exec (see SealedExe)
	SpecPath string
	Spec     *specs.Spec
	Cgroup   *Cgroup
	// The container's standard streams. With a terminal all three are the
	// pty's slave side.
	Stdin          *os.File
	Stdout, Stderr *os.File
}

// Process is a started container process (its pid 1).
type Process struct {
	Pid int
	cmd *exec.Cmd
}

// Start forks berth's init child into new namespaces, puts it in its
// cgroup, lets it exec the command, and returns once the exec happened.
func Start(o StartOptions) (*Process, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating sync socket: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "sync-parent")
	child := os.NewFile(uintptr(fds[1]), "sync-child")
	defer parent.Close()

	var flags uintptr
	for _, ns := range o.Spec.Linux.Namespaces {
		switch ns.Type {
		case specs.PIDNamespace:
			flags |= unix.CLONE_NEWPID
		case specs.MountNamespace:
			flags |= unix.CLONE_NEWNS
		case specs.UTSNamespace:
			flags |= unix.CLONE_NEWUTS
		case specs.IPCNamespace:
			flags |= unix.CLONE_NEWIPC
		case specs.NetworkNamespace:
			flags |= unix.CLONE_NEWNET
		}
	}
	cmd := &exec.Cmd{
		Path: o.Exe,
		Args: []string{"berth", InitArg, o.SpecPath},
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
			Setctty:    o.Spec.Process.Terminal,
			Ctty:       0,
		},
	}
	err = cmd.Start()
	child.Close()
	if err != nil {
		return nil, &StartError{Code: 125, Msg: fmt.Sprintf("starting container init: %v", err)}
	}
	p := &Process{Pid: cmd.Process.Pid, cmd: cmd}
	fail := func(err error) (*Process, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	if o.Cgroup != nil {
		if err := o.Cgroup.Add(p.Pid); err != nil {
			return fail(&StartError{Code: 125, Msg: err.Error()})
		}
	}
	if _, err := parent.Write([]byte{1}); err != nil {
		// The child died during setup: its message is still readable.
		if serr := readInitResult(parent); serr != nil {
			return fail(serr)
		}
		return fail(&StartError{Code: 125, Msg: fmt.Sprintf("container init exited early: %v", err)})
	}
	if serr := readInitResult(parent); serr != nil {
		return fail(serr)
	}
	return p, nil
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
