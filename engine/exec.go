package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/oci"
)

// ExecOptions is `exec`.
type ExecOptions struct {
	Cmd        []string
	Env        []string // KEY=VALUE, added to the container's
	User       string   // "" keeps the container's
	WorkingDir string   // "" keeps the container's
	Tty        bool
	// Interactive connects Streams.Stdin to the process (else /dev/null).
	Interactive bool
	// Detach returns once the command was exec'd; it keeps running with
	// its standard streams on /dev/null.
	Detach     bool
	Privileged bool
	// DetachKeys is validated only: detaching from an exec session is not
	// supported (the keys reach the process like any other input).
	DetachKeys string
	Streams    *Streams // nil with Detach
}

// execOutputGrace bounds the wait for the output pipes after the exec'd
// process exited: a background child of the command that keeps them open
// must not hold `exec` forever (its later output is lost).
const execOutputGrace = 250 * time.Millisecond

// Exec runs a command inside a running container, as `docker exec`: in the
// container's namespaces and cgroup, with its environment, working
// directory and user unless overridden. In the foreground it returns the
// command's exit code; 126 and 127 come back as an *ExitError, like run's.
func (e *Engine) Exec(ctx context.Context, ref string, o ExecOptions) (int, error) {
	if len(o.Cmd) == 0 {
		return 125, invalidf("no command specified")
	}
	if _, err := ParseDetachKeys(o.DetachKeys); err != nil {
		return 125, err
	}
	if o.WorkingDir != "" && !strings.HasPrefix(o.WorkingDir, "/") {
		return 125, invalidf("the working directory %q is invalid, it needs to be an absolute path", o.WorkingDir)
	}
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return 125, err
	}
	st, err := e.State(id)
	if err != nil {
		return 125, err
	}
	if !st.Active() || !pidAlive(st.Pid, st.PidStart) {
		return 125, fmt.Errorf("container %s is not running", id[:12])
	}
	base, err := readSpec(filepath.Join(e.containers.Dir(id), "config.json"))
	if err != nil {
		return 125, err
	}
	tty := o.Tty && !o.Detach // a detached process has no one to read its terminal
	ec := oci.ExecConfig{
		Args: o.Cmd, Env: o.Env, Cwd: o.WorkingDir, User: o.User,
		Terminal: tty, Privileged: o.Privileged,
	}
	if tty && o.Streams != nil && o.Streams.TerminalSize != nil {
		if rows, cols, ok := o.Streams.TerminalSize(); ok {
			ec.Rows, ec.Cols = rows, cols
		}
	}
	if tty && ec.Rows == 0 {
		ec.Rows, ec.Cols = 24, 80 // the caller has no terminal
	}
	spec := oci.ExecSpec(base, ec)
	if err := oci.PrecompileSeccomp(spec, e.seccompCache()); err != nil {
		return 125, err
	}
	exe, err := oci.SealedExe(e.cfg.RunRoot)
	if err != nil {
		return 125, err
	}
	var cg *oci.Cgroup
	if dirs, v2 := oci.CgroupPaths(cgroupName(id)); len(dirs) > 0 {
		cg = &oci.Cgroup{Name: cgroupName(id), V2: v2}
		for _, d := range dirs {
			if _, err := os.Stat(d); err == nil {
				cg.Dirs = append(cg.Dirs, d)
			}
		}
	}
	eio, err := newExecIO(o, tty)
	if err != nil {
		return 125, err
	}
	defer eio.closeAll()
	proc, err := oci.StartExec(oci.ExecOptions{
		Exe: exe, Pid: st.Pid, Cgroup: cg, Spec: spec, Detach: o.Detach,
		Stdin: eio.childStdin, Stdout: eio.childStdout, Stderr: eio.childStderr,
	})
	eio.closeChildSide()
	if err != nil {
		var se *oci.StartError
		if errors.As(err, &se) && (se.Code == 126 || se.Code == 127) {
			return se.Code, &ExitError{Code: se.Code, Msg: se.Msg}
		}
		return 125, err
	}
	if o.Detach {
		return 0, nil
	}
	if proc.Console != nil {
		eio.attachConsole(proc.Console, o)
	}
	stop := forwardSignals(proc.Signal, eio.pty, o.Streams)
	killOnDone(ctx, proc.Pid)() // returns once it exited, not yet reaped
	code, err := proc.Wait()
	stop()
	eio.drain(execOutputGrace)
	if err != nil {
		return 125, err
	}
	return code, nil
}

// killOnDone kills the exec'd process and its process group (it leads a
// session of its own) when ctx ends before it exits (a healthcheck's
// timeout). The function it returns waits for the exit without reaping
// it, so that the kill can never reach a reused pid; the caller then
// reaps it.
func killOnDone(ctx context.Context, pid int) (waitExit func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	var mu sync.Mutex
	exited := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !exited {
			unix.Kill(-pid, unix.SIGKILL)
			unix.Kill(pid, unix.SIGKILL)
		}
	})
	return func() {
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				break
			}
		}
		mu.Lock()
		exited = true
		mu.Unlock()
		stop()
	}
}

func readSpec(path string) (*specs.Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the container's runtime spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decoding the container's runtime spec: %w", err)
	}
	return &s, nil
}

// execIO is the standard streams of an exec'd process: pipes, /dev/null
// for what is not connected, or with -t the pty the process made inside
// the container (attachConsole). Output is copied to the
// caller only (exec output is not logged, as docker's).
type execIO struct {
	childStdin, childStdout, childStderr *os.File
	childSide                            []*os.File
	pty                                  *os.File
	outputs                              []*os.File
	copiers                              sync.WaitGroup
}

func newExecIO(o ExecOptions, tty bool) (*execIO, error) {
	x := &execIO{}
	s := o.Streams
	if o.Detach || s == nil || tty {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		x.childStdin, x.childStdout, x.childStderr = null, null, null
		x.childSide = []*os.File{null}
		return x, nil
	}
	if o.Interactive && s.Stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		x.childStdin = r
		x.childSide = append(x.childSide, r)
		go func() {
			io.Copy(w, s.Stdin)
			w.Close()
		}()
	} else {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		x.childStdin = null
		x.childSide = append(x.childSide, null)
	}
	for _, out := range []struct {
		dst *(*os.File)
		to  io.Writer
	}{{&x.childStdout, s.Stdout}, {&x.childStderr, s.Stderr}} {
		r, w, err := os.Pipe()
		if err != nil {
			x.closeAll()
			return nil, err
		}
		*out.dst = w
		x.childSide = append(x.childSide, w)
		x.outputs = append(x.outputs, r)
		x.copyOut(r, out.to)
	}
	return x, nil
}

// attachConsole copies the terminal's output to the caller, and the
// caller's input to it with -i.
func (x *execIO) attachConsole(master *os.File, o ExecOptions) {
	x.pty = master
	x.copyOut(master, o.Streams.Stdout)
	if o.Interactive && o.Streams.Stdin != nil {
		go io.Copy(master, o.Streams.Stdin)
	}
}

func (x *execIO) copyOut(r io.Reader, w io.Writer) {
	x.copiers.Add(1)
	go func() {
		defer x.copiers.Done()
		io.Copy(w, r)
	}()
}

// closeChildSide closes our copies of the process's ends, so the copiers
// see EOF when it (and whatever inherited them) is done.
func (x *execIO) closeChildSide() {
	for _, f := range x.childSide {
		f.Close()
	}
	x.childSide = nil
}

// drain waits for the output to be copied, at most grace after the
// process exited.
func (x *execIO) drain(grace time.Duration) {
	done := make(chan struct{})
	go func() {
		x.copiers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
	}
}

func (x *execIO) closeAll() {
	x.closeChildSide()
	for _, f := range x.outputs {
		f.Close()
	}
	if x.pty != nil {
		x.pty.Close()
	}
}
