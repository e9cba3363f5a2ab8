package oci

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/oci/nsenter"
)

// ExecArg is the hidden first argument of berth's exec helper. The C
// constructor of package nsenter acts on it before the Go runtime starts
// (it joins the container's namespaces and forks); ExecMain then runs in
// the forked child, inside the container.
const ExecArg = nsenter.Arg

// AnnotationExecPrivileged marks the spec of an `exec --privileged`
// process (whose capabilities are then all of them, as docker's).
const AnnotationExecPrivileged = "io.berth.exec.privileged"

// execSyncFd and execReportFd are the exec helper's descriptors
// (ExtraFiles[0] and [1]).
const (
	execSyncFd   = 3
	execReportFd = 4
)

// ExecConfig is what `exec` asks for on top of the container's own spec.
type ExecConfig struct {
	Args     []string
	Env      []string // added to the container's environment; same names replaced
	Cwd      string   // "" keeps the container's working directory
	User     string   // "" keeps the container's user
	Terminal bool
	// ConsoleSize is the terminal's initial size (with Terminal).
	Rows, Cols uint16
	Privileged bool
}

// ExecSpec derives the spec of a process exec'd into a running container
// from the container's spec (config.json): its environment, working
// directory, user, capabilities, rlimits and no_new_privs, with exec's
// overrides. base is not changed.
func ExecSpec(base *specs.Spec, c ExecConfig) *specs.Spec {
	s := *base
	p := specs.Process{}
	if base.Process != nil {
		p = *base.Process
	}
	p.Args = append([]string(nil), c.Args...)
	p.Terminal = c.Terminal
	p.ConsoleSize = nil
	if c.Terminal && c.Rows > 0 && c.Cols > 0 {
		p.ConsoleSize = &specs.Box{Height: uint(c.Rows), Width: uint(c.Cols)}
	}
	p.Env = mergeEnv(p.Env, c.Env)
	if c.Terminal && !hasEnv(p.Env, "TERM") {
		p.Env = append(p.Env, "TERM=xterm") // as docker
	}
	if c.Cwd != "" {
		p.Cwd = c.Cwd
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	p.User = specs.User{}
	if p.Capabilities != nil {
		caps := *p.Capabilities
		p.Capabilities = &caps
	}
	s.Annotations = map[string]string{}
	for k, v := range base.Annotations {
		s.Annotations[k] = v
	}
	if c.User != "" {
		s.Annotations[AnnotationUser] = c.User
	}
	if c.Privileged {
		all := boundedCapabilities()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
		s.Annotations[AnnotationExecPrivileged] = "true"
	}
	s.Process = &p
	return &s
}

// boundedCapabilities is every capability that berth itself may pass on
// (its own bounding set): more would fail to apply.
func boundedCapabilities() []string {
	byName := capsByName()
	var out []string
	for _, n := range AllCapabilities() {
		if c, ok := byName[n]; ok {
			if in, err := capability.GetBound(c); err == nil && !in {
				continue
			}
		}
		out = append(out, n)
	}
	return out
}

// mergeEnv adds env to base, replacing variables of the same name.
func mergeEnv(base, env []string) []string {
	out := append([]string(nil), base...)
	index := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

// ExecOptions says how to start a process in a running container.
type ExecOptions struct {
	Exe    string      // the berth binary to re-exec (see SealedExe)
	Pid    int         // the container's pid 1, whose namespaces are joined
	Cgroup *Cgroup     // the container's cgroup (nil: none)
	Spec   *specs.Spec // from ExecSpec
	// Detach: the process is not waited for; it becomes a child of the
	// container's init, and StartExec returns once it was exec'd.
	Detach bool
	// The process's standard streams. With a terminal (Spec.Process.
	// Terminal) the process makes its own pty inside the container and
	// these serve only until then (use /dev/null).
	Stdin, Stdout, Stderr *os.File
}

// ExecProcess is a process started in a container by StartExec. The
// calling process is its parent (a child subreaper), so Wait can reap it.
type ExecProcess struct {
	Pid int // as berth sees it
	// Console is the master side of the process's terminal (a pty of the
	// container's own devpts), with a terminal; the caller closes it.
	Console *os.File
}

// StartExec runs o.Spec's command inside the running container whose pid
// 1 is o.Pid, and returns once the command was exec'd, or with its error
// (a *StartError: 126, 127 or 125). It makes the calling process a child
// subreaper: the helper that joins the namespaces exits, and its child,
// the process that execs the command, becomes ours to wait for.
func StartExec(o ExecOptions) (*ExecProcess, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, &StartError{Code: 125, Msg: fmt.Sprintf("becoming a child subreaper: %v", err)}
	}
	msg, err := json.Marshal(o.Spec)
	if err != nil {
		return nil, &StartError{Code: 125, Msg: fmt.Sprintf("encoding exec spec: %v", err)}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &StartError{Code: 125, Msg: fmt.Sprintf("creating sync socket: %v", err)}
	}
	sync := os.NewFile(uintptr(fds[0]), "exec-sync")
	syncChild := os.NewFile(uintptr(fds[1]), "exec-sync-child")
	defer sync.Close()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		syncChild.Close()
		return nil, &StartError{Code: 125, Msg: fmt.Sprintf("creating report pipe: %v", err)}
	}
	defer reportR.Close()
	env := []string{
		// As for the init child: the Go runtime in the container must not
		// keep cgroup files open to re-read CPU limits.
		"GODEBUG=containermaxprocs=0,updatemaxprocs=0",
		nsenter.PidEnv + "=" + strconv.Itoa(o.Pid),
		nsenter.SyncEnv + "=" + strconv.Itoa(execSyncFd),
		nsenter.ReportEnv + "=" + strconv.Itoa(execReportFd),
	}
	if o.Detach {
		env = append(env, nsenter.DetachEnv+"=1")
	}
	helper := &exec.Cmd{
		Path:        o.Exe,
		Args:        []string{"berth", ExecArg},
		Env:         env,
		Stdin:       o.Stdin,
		Stdout:      o.Stdout,
		Stderr:      o.Stderr,
		ExtraFiles:  []*os.File{syncChild, reportW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}, // off the caller's terminal
	}
	err = helper.Start()
	syncChild.Close()
	reportW.Close()
	if err != nil {
		return nil, &StartError{Code: 125, Msg: fmt.Sprintf("starting exec helper: %v", err)}
	}
	report, _ := io.ReadAll(reportR)
	helper.Wait() // it exits right after its fork
	pid, err := strconv.Atoi(string(report))
	if err != nil || pid <= 0 {
		msg := strings.TrimPrefix(string(report), "!")
		if msg == "" {
			msg = "exec helper exited without a report"
		}
		return nil, &StartError{Code: 125, Msg: "entering the container: " + msg}
	}
	p := &ExecProcess{Pid: pid}
	fail := func(err *StartError) (*ExecProcess, error) {
		unix.Kill(pid, unix.SIGKILL)
		p.Wait()
		return nil, err
	}
	if o.Cgroup != nil {
		if err := o.Cgroup.Add(pid); err != nil {
			return fail(&StartError{Code: 125, Msg: err.Error()})
		}
		if !o.Cgroup.V2 {
			joinUnifiedOf(o.Pid, pid)
		}
	}
	if _, err := sync.Write(msg); err != nil {
		if serr := readInitResult(sync); serr != nil {
			return fail(serr)
		}
		return fail(&StartError{Code: 125, Msg: fmt.Sprintf("exec helper exited early: %v", err)})
	}
	if o.Spec.Process.Terminal {
		console, serr := receiveConsole(sync)
		if serr != nil {
			return fail(serr)
		}
		p.Console = console
	}
	if serr := readInitResult(sync); serr != nil {
		if p.Console != nil {
			p.Console.Close()
		}
		return fail(serr)
	}
	if o.Detach {
		// The command runs as the container init's child; the process
		// reported (its parent) has exited or is about to.
		p.Wait()
		return &ExecProcess{}, nil
	}
	return p, nil
}

// receiveConsole reads the pty master that the exec'd process sends before
// its exec, or its error.
func receiveConsole(sync *os.File) (*os.File, *StartError) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sync.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, &StartError{Code: 125, Msg: fmt.Sprintf("receiving the exec's terminal: %v", err)}
	}
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil && len(msgs) == 1 {
			if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
				var st unix.Stat_t
				if unix.Fstat(fds[0], &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
					unix.Close(fds[0])
					return nil, &StartError{Code: 125, Msg: "the exec's terminal is not a character device"}
				}
				return os.NewFile(uintptr(fds[0]), "pty-master"), nil
			}
		}
		return nil, &StartError{Code: 125, Msg: "bad terminal message from the exec helper"}
	}
	if serr := readInitResult(bytes.NewReader(buf[:n])); serr != nil {
		return nil, serr
	}
	return nil, &StartError{Code: 125, Msg: "exec helper exited before sending its terminal"}
}

// joinUnifiedOf puts pid in the cgroup v2 (unified) group of target on a
// hybrid cgroup v1 host, where berth makes no cgroup of its own, so that
// /proc/self/cgroup reads the same for both. Best effort.
func joinUnifiedOf(target, pid int) {
	want, ok := unifiedCgroupOf(target)
	if !ok {
		return
	}
	if have, ok := unifiedCgroupOf(pid); ok && have == want {
		return
	}
	os.WriteFile(filepath.Join(cgroupRoot, "unified", want, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

func unifiedCgroupOf(pid int) (string, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if path, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return path, !strings.Contains(path, "..")
		}
	}
	return "", false
}

// Wait waits for the exec'd process and returns its exit code in the
// shell's convention (128+signal for a signal).
func (p *ExecProcess) Wait() (int, error) {
	if p.Pid <= 0 {
		return 0, nil
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(p.Pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("waiting for exec'd process %d: %w", p.Pid, err)
		}
		return exitCodeOf(ws), nil
	}
}

// Signal sends sig to the exec'd process.
func (p *ExecProcess) Signal(sig syscall.Signal) error {
	if p.Pid <= 0 {
		return unix.ESRCH
	}
	return unix.Kill(p.Pid, sig)
}

// ExecMain is the Go side of the exec helper's child: the nsenter
// constructor has put it in the container's namespaces (and berth has put
// it in the container's cgroup before sending its spec). It reads the
// spec on the sync socket, resolves the user in the container's
// /etc/passwd, looks the command up, confines itself as the container's
// spec says and execs. Errors go back as initError JSON, like the init
// child's. It never returns.
func ExecMain() {
	runtime.LockOSThread() // the credentials and capabilities are this thread's
	sync := os.NewFile(execSyncFd, "sync")
	unix.CloseOnExec(execSyncFd) // a successful exec closes it: berth reads EOF
	code, err := execInContainer(sync)
	if err == nil {
		err = errors.New("exec returned")
	}
	if code == 0 {
		code = 125
	}
	msg, _ := json.Marshal(initError{Code: code, Msg: err.Error()})
	sync.Write(msg)
	os.Exit(code)
}

func execInContainer(sync *os.File) (int, error) {
	if !nsenter.Entered() {
		return 125, errors.New("exec helper is not inside the container (berth built without cgo?)")
	}
	buf := make([]byte, 4<<20)
	n, err := sync.Read(buf)
	if err != nil || n == 0 {
		return 125, fmt.Errorf("waiting for the exec request from berth: %v", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(buf[:n], &spec); err != nil {
		return 125, fmt.Errorf("decoding exec request: %w", err)
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return 125, errors.New("no command specified")
	}
	// A session of its own: berth forwards signals, and a terminal's
	// job control must not reach berth's process group.
	if _, err := unix.Setsid(); err != nil {
		return 125, fmt.Errorf("creating session: %w", err)
	}
	if spec.Process.Terminal {
		if err := openExecTerminal(sync, spec.Process.ConsoleSize); err != nil {
			return 125, err
		}
	}
	cred, err := resolveUser(&spec)
	if err != nil {
		return 125, err
	}
	env := withDefaultEnv(spec.Process.Env, cred.Home)
	if err := os.Chdir(spec.Process.Cwd); err != nil {
		// docker (runc) does not create an exec's working directory.
		return 126, fmt.Errorf("changing to working directory %s: %w", spec.Process.Cwd, err)
	}
	path, code, err := lookPath(spec.Process.Args[0], env)
	if err != nil {
		return code, err
	}
	// The same confinement, in the same order, as the container's init.
	if err := setRlimits(spec.Process.Rlimits); err != nil {
		return 125, err
	}
	if err := dropBoundingSet(&spec); err != nil {
		return 125, err
	}
	return confineAndExec(&spec, cred, path, env)
}

// openExecTerminal gives the process a terminal of the container's own
// devpts (so that ttyname and `tty` work inside), as its standard streams
// and controlling terminal, and sends the master side to berth over the
// sync socket. The container could have replaced /dev/ptmx: the opened
// file must be a ptmx of a devpts, and the slave is opened from the master
// (TIOCGPTPEER), never by path.
func openExecTerminal(sync *os.File, size *specs.Box) error {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening a terminal in the container: %w", err)
	}
	defer unix.Close(master)
	var st unix.Stat_t
	var fs unix.Statfs_t
	if unix.Fstat(master, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR ||
		unix.Major(st.Rdev) != 5 || unix.Minor(st.Rdev) != 2 ||
		unix.Fstatfs(master, &fs) != nil || fs.Type != unix.DEVPTS_SUPER_MAGIC {
		return errors.New("opening a terminal in the container: /dev/ptmx is not a devpts ptmx")
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlocking the terminal: %w", err)
	}
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return fmt.Errorf("opening the terminal's slave side: %w", errno)
	}
	slave := int(r)
	if size != nil {
		unix.IoctlSetWinsize(slave, unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)})
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return fmt.Errorf("connecting the terminal: %w", err)
		}
	}
	if slave > 2 {
		unix.Close(slave)
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("setting the controlling terminal: %w", err)
	}
	if err := unix.Sendmsg(int(sync.Fd()), []byte("console"), unix.UnixRights(master), nil, 0); err != nil {
		return fmt.Errorf("sending the terminal to berth: %w", err)
	}
	return nil
}
