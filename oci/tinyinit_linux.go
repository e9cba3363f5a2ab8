package oci

import (
	"fmt"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// runTinyInit is --init: berth stays pid 1, starts the command as its
// child, forwards every signal to it, reaps orphans, and exits with the
// command's exit code. It returns only if the command cannot start.
func runTinyInit(spec *specs.Spec, path string, env []string, cred *credential, sync *os.File) (int, error) {
	args := spec.Process.Args
	if err := CloseOnExecAll(); err != nil {
		return 125, err
	}
	// berth's pid 1 is confined like the command; the command inherits it
	// and switches to its user in the forked child.
	if err := loadSeccomp(spec); err != nil {
		return 125, err
	}
	if err := applyProcessSecurity(spec); err != nil {
		return 125, err
	}
	signals := make(chan os.Signal, 32)
	signal.Notify(signals)
	groups := make([]uint32, len(cred.groups))
	for i, g := range cred.groups {
		groups[i] = uint32(g)
	}
	attr := &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(cred.uid), Gid: uint32(cred.gid), Groups: groups},
		Setpgid:    true,
	}
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		attr.Foreground = true
		attr.Ctty = 0
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env: env, Files: []uintptr{0, 1, 2}, Sys: attr,
	})
	if err != nil {
		return execErrorCode(err), fmt.Errorf("exec: %q: %w", args[0], err)
	}
	sync.Close() // tells the parent the command runs
	for sig := range signals {
		switch sig {
		case unix.SIGCHLD:
			if code, done := reap(pid); done {
				os.Exit(code)
			}
		case unix.SIGURG: // the Go runtime's own preemption signal
		default:
			unix.Kill(pid, sig.(syscall.Signal))
		}
	}
	return 125, fmt.Errorf("signal channel closed")
}

// reap collects every exited child; done reports the main child's end.
func reap(main int) (code int, done bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return code, done
		}
		if pid == main {
			done = true
			code = exitCodeOf(ws)
		}
	}
}

// exitCodeOf maps a wait status to a shell-style exit code.
func exitCodeOf(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
