// Command berth is a daemonless container engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/commands"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/rootless"
	"github.com/berth-dev/berth/storage"
)

func main() {
	// Re-exec'd roles come first, before anything else is set up.
	if storage.ReexecInit() {
		return
	}
	// A unit or a script may start berth with stdin, stdout or stderr
	// closed: the next file berth opens would take that number and be
	// mistaken for a standard stream (and handed to a container).
	openStdDescriptors()
	// Descriptors inherited without close-on-exec (a shell's, a CI
	// runner's) must not travel on into monitors and containers.
	oci.CloseOnExecAll()
	if len(os.Args) > 1 && os.Args[1] == rootless.PauseArg {
		rootless.PauseMain()
	}
	if len(os.Args) > 1 && os.Args[1] == oci.InitArg {
		oci.InitMain()
	}
	if len(os.Args) > 1 && os.Args[1] == oci.ExecArg {
		oci.ExecMain() // inside a container already: see package oci/nsenter
	}
	if os.Geteuid() != 0 && os.Getenv(rootless.UidEnv) == "" {
		// An ordinary user: run as root in the user's namespace (made on
		// first use). Join returns only on error. (Berth's own helpers
		// started inside have joined already, and are root there, except
		// in a --userns=keep-id container: UidEnv says so.)
		// The pause process is recorded in the runtime directory: the
		// global --runroot moves it too, as BERTH_RUNROOT does.
		runRoot := engine.DefaultConfig().RunRoot
		if v := rootless.RunRootArg(os.Args); v != "" {
			runRoot = v
		}
		err := rootless.Join(runRoot)
		fmt.Fprintf(os.Stderr, "Error: rootless: %s\n", oneLine(err.Error()))
		os.Exit(125)
	}
	if len(os.Args) > 2 {
		switch os.Args[1] {
		case engine.MonitorArg:
			os.Exit(engine.MonitorMain(engine.DefaultConfig(), os.Args[2]))
		}
	}
	if len(os.Args) > 1 && os.Args[1] == engine.NetnsKeeperArg {
		os.Exit(engine.NetnsKeeperMain(engine.DefaultConfig()))
	}
	app := commands.NewApp(os.Stdout, os.Stderr)
	err := commands.Run(context.Background(), app, os.Args)
	os.Exit(exitCode(err))
}

// openStdDescriptors puts /dev/null on any of descriptors 0, 1 and 2
// that is closed.
func openStdDescriptors() {
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			continue
		}
		null, err := unix.Open(os.DevNull, unix.O_RDWR, 0)
		if err != nil {
			return
		}
		if null != fd {
			unix.Dup3(null, fd, 0)
			unix.Close(null)
		}
	}
}

// exitCode prints err and maps it to berth's exit codes, docker's way:
// the container's own code, 126 (cannot invoke), 127 (not found), and 125
// for every error of berth itself.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var xe *engine.ExitError
	if errors.As(err, &xe) {
		if xe.Msg != "" {
			fmt.Fprintf(os.Stderr, "Error: %s\n", oneLine(xe.Msg))
		}
		return xe.Code
	}
	fmt.Fprintf(os.Stderr, "Error: %s\n", oneLine(err.Error()))
	return 125
}

// oneLine keeps an error to one line on the terminal, except for usage
// hints that follow on a second line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "\n"); i >= 0 && !strings.HasPrefix(s[i+1:], "Usage:") {
		return strings.ReplaceAll(s, "\n", " ")
	}
	return s
}
