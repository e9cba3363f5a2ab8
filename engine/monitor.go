package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/netns"
	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/state"
)

// MonitorArg is the hidden first argument of a re-exec'd monitor process.
const MonitorArg = "__monitor"

// attachPendingEnv asks a monitor to keep the container's first output
// for the client that is about to attach (run -it).
const attachPendingEnv = "BERTH_ATTACH_PENDING"

// Streams connect a container's standard streams to a caller in the
// foreground. Stdin is nil when the container gets no input.
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TerminalSize gives the caller's terminal size for -t (nil: 24x80).
	TerminalSize func() (rows, cols uint16, ok bool)
	// Resize receives a value whenever the caller's terminal changed size.
	Resize <-chan os.Signal
	// Signals are forwarded to the container's pid 1.
	Signals <-chan os.Signal
}

// monitorContainer runs a container from start to exit: it is the body of
// the per-container monitor, whether that is a re-exec'd `berth` process
// (detached) or the CLI itself (foreground). started is called once the
// command runs, or with the reason it could not start. The caller holds
// the container's monitor lock. restart: its restart policy runs it again
// (engine/restart.go), it is "restarting".
//
// The loop here starts the container again only for
// --health-on-failure=restart (engine/health.go: restartUnhealthy), which
// cannot be combined with a restart policy.
func (e *Engine) monitorContainer(rec *state.Record, streams *Streams, hub *attachHub, l *launch, started func(error)) (int, bool, error) {
	for {
		code, proc, wait, err := e.startContainer(rec, streams, hub, l)
		started(err) // MonitorMain reports once; start's callback only cleans up a failed --rm
		if err != nil {
			return code, false, err
		}
		health := e.startHealthcheck(rec, proc.Pid) // engine/health.go; nil without a healthcheck
		exitCode := wait()
		if !health.stop(e, rec.ID) {
			restart := e.finishContainer(rec, proc.Pid, exitCode)
			return exitCode, restart, nil
		}
		// --health-on-failure=restart stopped the container: record the
		// exit and start it again in this monitor (engine/health.go).
		if hub, err = e.restartUnhealthy(rec, proc.Pid, exitCode, hub); err != nil {
			return exitCode, false, nil
		}
		l = nil
	}
}

// startContainer mounts the rootfs, writes the spec and starts the init
// child, forked here or already by the caller (l). It returns a function
// that waits for the exit, drains the output and returns the exit code.
func (e *Engine) startContainer(rec *state.Record, streams *Streams, hub *attachHub, l *launch) (code int, proc *oci.Process, wait func() int, err error) {
	images, err := e.Images()
	if err != nil {
		return 125, nil, nil, err
	}
	dir := e.containers.Dir(rec.ID)
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()
	rootfs := ""
	var volumeSources map[string]string
	mount := func() error {
		if rootfs, err = images.MountRootfs(rec.ID); err != nil {
			return fmt.Errorf("mounting container rootfs: %w", err)
		}
		cleanups = append(cleanups, func() { images.UnmountRootfs(rec.ID) })
		// Volumes are mounted (tmpfs volumes) and seeded on the host
		// before the child makes its mount namespace.
		cleanups = append(cleanups, func() { e.releaseVolumes(rec) })
		if volumeSources, err = e.prepareVolumes(rec, rootfs); err != nil {
			return err
		}
		return nil
	}
	if l == nil {
		// With --init the child's mount namespace is a copy of ours at
		// the fork: the rootfs must be mounted first.
		if withInit(rec.HostConfig) {
			if err := mount(); err != nil {
				return 125, nil, nil, err
			}
		}
		if l, err = e.forkInit(rec.ID, rec.Config, rec.HostConfig, streams, hub); err != nil {
			return 125, nil, nil, err
		}
	}
	started := false
	cleanups = append(cleanups, func() {
		if !started {
			l.abort()
		}
	})
	// The container's interfaces are made from the host side (netlink in
	// the child's namespace) while the rootfs is mounted and the spec
	// is built.
	netDone := make(chan error, 1)
	var slirp *slirp // rootless slirp4netns: engine/slirp.go
	go func() {
		if kind, _ := networkMode(rec.HostConfig); kind == modeSlirp {
			var err error
			slirp, err = e.startSlirp(l.pending.Pid())
			netDone <- err
			return
		}
		netDone <- e.connectNetworks(rec, l.pending.Pid())
	}()
	netWaited := false
	cleanups = append(cleanups, func() {
		if !netWaited {
			<-netDone
		}
		slirp.stop()
		e.releaseNetworks(rec, false)
	})
	defer func() {
		if !netWaited {
			netWaited = true
			<-netDone
		}
	}()
	if rootfs == "" {
		if err := mount(); err != nil {
			return 125, nil, nil, err
		}
	}
	var log *jsonLog // nil: --log-driver none or passthrough
	if logDriver(rec.HostConfig) == LogDriverJSONFile {
		if log, err = openJSONLog(filepath.Join(dir, "ctr.log")); err != nil {
			return 125, nil, nil, err
		}
		cleanups = append(cleanups, func() { log.Close() })
	}
	io := l.cio
	io.startCopying(log)
	spec, err := e.specFor(rec, rootfs, l.cg.Name, volumeSources)
	if err != nil {
		return 125, nil, nil, err
	}
	// $NOTIFY_SOCKET (a systemd unit of Type=notify): engine/systemd.go.
	notifier, err := e.newSdNotifier(rec)
	if err != nil {
		return 125, nil, nil, err
	}
	cleanups = append(cleanups, notifier.close)
	notifier.addToSpec(spec)
	if err := oci.PrecompileSeccomp(spec, e.seccompCache()); err != nil {
		return 125, nil, nil, err
	}
	if err := l.cg.SetResources(spec.Linux.Resources); err != nil {
		return 125, nil, nil, fmt.Errorf("applying resource limits: %w", err)
	}
	// Kept for inspection (and for an OCI runtime); the child gets the
	// spec over its sync socket.
	if err := oci.WriteSpec(filepath.Join(dir, "config.json"), spec, state.ReplaceFile); err != nil {
		return 125, nil, nil, err
	}
	if err := <-l.joined; err != nil {
		l.joined <- err
		return 125, nil, nil, err
	}
	l.joined <- nil
	netWaited = true
	if err := <-netDone; err != nil {
		return 125, nil, nil, err
	}
	var pub *netns.Published
	if slirp != nil {
		pub, err = e.publishSlirp(rec, l.pending.Pid()) // engine/slirp.go
	} else {
		pub, err = e.publishAttached(rec) // -p/-P: engine/ports.go
	}
	if err != nil {
		return 125, nil, nil, err
	}
	cleanups = append(cleanups, func() { pub.Close() })
	started = true // Start kills the child itself when it fails
	cleanups = append(cleanups, func() { l.cg.Remove(); l.cio.closeAll() })
	proc, err = l.pending.Start(spec, nil)
	if err != nil {
		var se *oci.StartError
		code = 125
		if errors.As(err, &se) {
			code = se.Code
		}
		e.recordStartFailure(rec.ID, code, err)
		return code, nil, nil, exitErrorFrom(err)
	}
	io.closeChildSide()
	startTime, _ := pidStartTime(proc.Pid)
	stoppedMeanwhile := false
	if err := e.updateState(rec.ID, func(st *state.State) {
		// Restart policies (engine/restart.go): a restart by the monitor
		// keeps the count and a stop that came during the start; a
		// start by the user begins anew, as docker's does.
		restartCount := 0
		if st.Status == state.StatusRestarting {
			restartCount, stoppedMeanwhile = st.RestartCount, st.StoppedByUser
		}
		*st = state.State{
			Status: state.StatusRunning, Pid: proc.Pid, PidStart: startTime,
			MonitorPid: os.Getpid(), StartedAt: time.Now().UTC(), RestartCount: restartCount,
			StoppedByUser: stoppedMeanwhile, Networks: st.Networks, Ports: st.Ports,
			Health: healthAtStart(rec, st.Health), // engine/health.go
		}
	}); err != nil {
		proc.Signal(unix.SIGKILL)
		proc.Wait()
		return 125, nil, nil, err
	}
	notifier.started(proc.Pid)
	if stoppedMeanwhile {
		proc.Signal(unix.SIGKILL) // stopped by the user while restarting
	}
	stopForwarding := forwardSignals(proc.Signal, io.pty, streams)
	wait = func() int {
		code, _ := proc.Wait()
		notifier.close()
		pub.Close()
		slirp.stop()
		stopForwarding()
		io.drain()
		if hub != nil {
			hub.close(code)
		}
		log.Close()
		return code
	}
	return 0, proc, wait, nil
}

// finishContainer records the exit and releases what the running
// container held; with --rm it removes the container. It returns true
// when the restart policy runs the container again (the state is then
// "restarting" and the monitor stays).
func (e *Engine) finishContainer(rec *state.Record, pid, exitCode int) (restart bool) {
	oomKilled := oci.OpenCgroup(cgroupName(rec.ID)).OOMKilled()
	e.updateState(rec.ID, func(st *state.State) {
		st.OOMKilled = oomKilled
		st.Status = state.StatusExited
		st.ExitCode = exitCode
		st.Ports = nil // the monitor's pub.Close removed them
		st.Pid = 0
		st.MonitorPid = 0
		st.FinishedAt = time.Now().UTC()
		if restart = e.restartAfterExit(rec.ID, st); restart { // engine/restart.go
			st.MonitorPid = os.Getpid()
		}
	})
	e.releaseResources(rec)
	return restart
}

// releaseResources unmounts the rootfs and removes the cgroup of a
// container that stopped, and removes the container itself for --rm.
func (e *Engine) releaseResources(rec *state.Record) {
	e.releaseNetworks(rec, true)
	e.releaseVolumes(rec)
	cgroupGone := make(chan struct{})
	go func() {
		oci.RemoveCgroup(cgroupName(rec.ID))
		close(cgroupGone)
	}()
	defer func() { <-cgroupGone }()
	if rec.HostConfig.AutoRemove {
		e.removeContainer(rec.ID) // unmounts too
		return
	}
	if images, err := e.Images(); err == nil {
		images.UnmountRootfs(rec.ID)
	}
}

func (e *Engine) recordStartFailure(id string, code int, err error) {
	e.updateState(id, func(st *state.State) {
		st.ExitCode = code
		st.Error = err.Error()
		if st.Status != state.StatusCreated {
			st.Status = state.StatusExited
			st.FinishedAt = time.Now().UTC()
		}
	})
}

func cgroupName(id string) string { return "berth/" + id }

// updateState changes a container's state under its lock.
func (e *Engine) updateState(id string, change func(*state.State)) error {
	l, err := e.containers.LockContainer(id)
	if err != nil {
		return err
	}
	defer l.Unlock()
	st, err := e.containers.State(id)
	if err != nil {
		return err
	}
	change(st)
	return e.containers.SaveState(id, st)
}

// forwardSignals passes the caller's signals on (to a container's pid 1 or
// an exec'd process) and its terminal size changes to the pty (nil without
// -t), until the returned stop is called.
func forwardSignals(signal func(syscall.Signal) error, ptyMaster *os.File, streams *Streams) (stop func()) {
	if streams == nil || (streams.Signals == nil && streams.Resize == nil) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-streams.Signals:
				if s, ok := sig.(syscall.Signal); ok {
					signal(s)
				}
			case <-streams.Resize:
				if ptyMaster != nil && streams.TerminalSize != nil {
					if rows, cols, ok := streams.TerminalSize(); ok {
						pty.Setsize(ptyMaster, &pty.Winsize{Rows: rows, Cols: cols})
					}
				}
			}
		}
	}()
	return func() { close(done) }
}

// monitorResult is what a detached monitor tells the CLI that started it.
type monitorResult struct {
	Code int    `json:"code"`
	Msg  string `json:"msg,omitempty"`
}

// MonitorMain is the body of a re-exec'd monitor process (`berth
// __monitor ID`): it owns a detached container until it exits. The CLI
// that started it reads one monitorResult from fd 3.
func MonitorMain(cfg Config, id string) int {
	// Not signal.Ignore: ignored signals stay ignored across exec, and the
	// container must get default dispositions. The monitor has no terminal
	// (setsid, stdio on /dev/null), so no SIGHUP reaches it.
	report := os.NewFile(3, "report")
	reported := false
	send := func(err error) {
		if reported {
			return
		}
		reported = true
		res := monitorResult{}
		if err != nil {
			res.Code, res.Msg = 125, err.Error()
			var xe *ExitError
			if errors.As(err, &xe) {
				res.Code = xe.Code
			}
		}
		b, _ := json.Marshal(res)
		report.Write(b)
		report.Close()
	}
	e, err := New(cfg)
	if err != nil {
		send(err)
		return 125
	}
	defer e.Close()
	if _, err := e.containers.Record(id); err != nil {
		send(err)
		return 125
	}
	lock, err := e.lockMonitor(id)
	if err != nil {
		send(err)
		return 125
	}
	defer lock.Unlock()
	// The loop of restart policies is engine/restart.go; each run has its
	// own attach socket.
	e.supervising = true
	newHub := func(first bool) (*attachHub, error) {
		return listenAttach(e.containers.RunDir(id), first && os.Getenv(attachPendingEnv) == "1")
	}
	// Run from a systemd unit, the monitor is in the unit's cgroup and
	// gets its stop signal: it is passed on to the container, and the
	// monitor lives on to record the exit (engine/systemd.go). Its pid
	// file (PIDFile=) lasts across restarts.
	defer e.relaySignals(id)()
	e.writeMonitorPid(id)
	defer e.removeMonitorPid(id)
	code, err := e.superviseContainer(id, newHub, send)
	if err != nil {
		send(err)
	}
	return code
}

// lockMonitor takes the lock a container's monitor holds for its whole
// life; it fails if the container is running already. A monitor whose
// container has exited still holds the lock while it releases what the
// container held: that short wait is waited out.
func (e *Engine) lockMonitor(id string) (*state.Lock, error) {
	if err := os.MkdirAll(e.containers.RunDir(id), 0o700); err != nil {
		return nil, fmt.Errorf("creating runtime directory: %w", err)
	}
	deadline := time.Now().Add(monitorFinishWait)
	for {
		l, ok, err := state.TryLockFile(e.containers.MonitorLockPath(id))
		if err != nil {
			return nil, err
		}
		if ok {
			return l, nil
		}
		st, err := e.containers.State(id)
		if err != nil || st.Active() || time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %s", ErrRunning, id[:12])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// monitorFinishWait bounds how long lockMonitor waits for the monitor of
// an exited container to finish its clean-up.
const monitorFinishWait = 10 * time.Second

// spawnMonitor starts a detached monitor process for the container and
// waits until it reports that the container runs (or why not).
func (e *Engine) spawnMonitor(id string, keepFirstOutput bool) error {
	env := append(os.Environ(), "BERTH_ROOT="+e.cfg.Root, "BERTH_RUNROOT="+e.cfg.RunRoot)
	if e.cfg.StorageDriver != "" {
		env = append(env, "BERTH_STORAGE_DRIVER="+e.cfg.StorageDriver)
	}
	if keepFirstOutput {
		env = append(env, attachPendingEnv+"=1")
	}
	var stdout, stderr *os.File // nil: /dev/null
	if rec, err := e.containers.Record(id); err == nil && logDriver(rec.HostConfig) == LogDriverPassthrough {
		// --log-driver passthrough: the container writes to the caller's
		// own stdout and stderr (a systemd unit's journal).
		stdout, stderr = os.Stdout, os.Stderr
	}
	p, r, err := startDetached([]string{MonitorArg, id}, env, stdout, stderr)
	if err != nil {
		return fmt.Errorf("starting container monitor: %w", err)
	}
	defer r.Close()
	p.Release()
	data, _ := io.ReadAll(r)
	if len(data) == 0 {
		return fmt.Errorf("container monitor exited before starting the container")
	}
	var res monitorResult
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("bad report from container monitor: %q", strings.TrimSpace(string(data)))
	}
	switch {
	case res.Code == 0:
		return nil
	case res.Code == 126 || res.Code == 127:
		return &ExitError{Code: res.Code, Msg: res.Msg}
	default:
		return errors.New(res.Msg)
	}
}

// startDetached starts berth itself (/proc/self/exe) with args, in a
// session of its own, for a process that outlives the caller (a monitor,
// the rootless network namespace's keeper): stdin on /dev/null, stdout
// and stderr as given (nil: /dev/null), and fd 3 the write end of a pipe
// whose read end is returned, for its report.
func startDetached(args, env []string, stdout, stderr *os.File) (*os.Process, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer w.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	defer null.Close()
	if stdout == nil {
		stdout = null
	}
	if stderr == nil {
		stderr = null
	}
	p, err := os.StartProcess("/proc/self/exe", append([]string{"berth"}, args...), &os.ProcAttr{
		Env:   env,
		Files: []*os.File{null, stdout, stderr, w},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	return p, r, nil
}

func removeCgroupQuietly(id string) { oci.RemoveCgroup(cgroupName(id)) }

// withHostname adds HOSTNAME to the environment as docker does, unless the
// container sets it itself.
func withHostname(env []string, hostname string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOSTNAME=") {
			return env
		}
	}
	return append([]string{"HOSTNAME=" + hostname}, env...)
}

// seccompCache is where compiled seccomp filters are kept (a cache: the
// run root is cleared at boot).
func (e *Engine) seccompCache() string { return filepath.Join(e.cfg.RunRoot, "seccomp") }
