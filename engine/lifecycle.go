package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/moby/sys/signal"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/state"
)

// RunOptions is `run`: create, then start attached or detached.
type RunOptions struct {
	Create CreateOptions
	Detach bool
	// Streams connect a foreground container to the caller; nil with Detach.
	Streams    *Streams
	DetachKeys string
}

// RunResult says what ran and how it ended.
type RunResult struct {
	ID       string
	ExitCode int // foreground only
}

// Run creates a container and starts it. In the foreground the caller's
// process is the container's monitor, which saves one process start on
// every run; detached, a monitor process owns the container.
func (e *Engine) Run(ctx context.Context, o RunOptions) (*RunResult, error) {
	if _, err := ParseDetachKeys(o.DetachKeys); err != nil {
		return nil, err // refused before anything is created
	}
	// In the foreground the init child is forked first: it starts up and
	// joins its cgroup while the container is being created (not with
	// --userns=auto: its maps are chosen by the creation).
	var l *launch
	if c := o.Create; c.Config != nil && c.HostConfig != nil && isForeground(o.Detach, c.Config, o.Streams) && !withInit(c.HostConfig) && !restartsItself(c.HostConfig) && usernsOf(c.HostConfig).kind != usernsAuto {
		id, err := newID()
		if err != nil {
			return nil, err
		}
		if l, err = e.forkInit(id, c.Config, c.HostConfig, o.Streams, nil); err != nil {
			return nil, err
		}
		o.Create.id = id
	}
	rec, err := e.Create(ctx, o.Create)
	if err != nil {
		if l != nil {
			l.abort()
		}
		return nil, err
	}
	code, err := e.start(rec, o.Detach, o.Streams, o.DetachKeys, l)
	return &RunResult{ID: rec.ID, ExitCode: code}, err
}

// StartOptions is `start`.
type StartOptions struct {
	Attach     bool
	Streams    *Streams // with Attach
	DetachKeys string
}

// Start starts a created or stopped container. Attached, it returns when
// the container exits, with its exit code.
func (e *Engine) Start(ctx context.Context, ref string, o StartOptions) (int, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return 125, err
	}
	st, err := e.State(id)
	if err != nil {
		return 125, err
	}
	if st.Active() {
		if o.Attach {
			return e.Attach(ctx, id, AttachOptions{Streams: o.Streams, DetachKeys: o.DetachKeys})
		}
		return 0, nil // like docker: starting a running container is a no-op
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return 125, err
	}
	return e.start(rec, !o.Attach, o.Streams, o.DetachKeys, nil)
}

func (e *Engine) start(rec *state.Record, detach bool, streams *Streams, detachKeys string, l *launch) (int, error) {
	// An interactive terminal session can be detached from (ctrl-p
	// ctrl-q), so it gets a monitor of its own and attaches to it. Other
	// foreground runs are monitored by the caller's process, which may
	// have forked the init child already (l).
	// A container with a restart policy is always kept by a detached
	// monitor (engine/restart.go); in the foreground the caller attaches
	// to its first run.
	restarts := restartsItself(rec.HostConfig)
	interactive := !detach && (!isForeground(detach, rec.Config, streams) || restarts)
	if detach || interactive {
		var keys []byte
		if interactive {
			var err error
			if keys, err = ParseDetachKeys(detachKeys); err != nil {
				return 125, err
			}
		}
		if err := e.spawnMonitor(rec.ID, interactive); err != nil {
			if rec.HostConfig.AutoRemove {
				e.removeContainer(rec.ID)
			}
			var xe *ExitError
			if errors.As(err, &xe) {
				return xe.Code, err
			}
			return 125, err
		}
		if interactive && restarts {
			return e.attach(rec.ID, rec.Config.Tty, rec.Config.OpenStdin && streams != nil && streams.Stdin != nil, keys, streams)
		}
		if interactive {
			return e.attach(rec.ID, true, true, keys, streams)
		}
		return 0, nil
	}
	lock, err := e.lockMonitor(rec.ID)
	if err != nil {
		return 125, err
	}
	defer lock.Unlock()
	code, _, err := e.monitorContainer(rec, streams, nil, l, func(err error) {
		if err != nil && rec.HostConfig.AutoRemove {
			e.removeContainer(rec.ID)
		}
	})
	if err != nil {
		var xe *ExitError
		if errors.As(err, &xe) {
			return xe.Code, err
		}
		return 125, err
	}
	return code, nil
}

// State reads a container's state and corrects it when the record no
// longer matches the truth: a "running" container whose monitor and
// process are both gone has exited (the cleanup is done here, then).
func (e *Engine) State(id string) (*state.State, error) {
	st, err := e.containers.State(id)
	if err == nil && !st.Active() && len(st.Networks) > 0 && !e.monitorAlive(id) {
		// A start that crashed half-way left interfaces behind.
		if rec, err := e.containers.Record(id); err == nil {
			e.releaseNetworks(rec, false)
			st.Networks = nil
		}
	}
	if err != nil || !st.Active() || e.monitorAlive(id) || pidAlive(st.Pid, st.PidStart) {
		return st, err
	}
	return e.markLost(id, 255)
}

// markLost records the exit of a container whose monitor died.
func (e *Engine) markLost(id string, code int) (*state.State, error) {
	var out *state.State
	changed := false
	err := e.updateState(id, func(st *state.State) {
		out = st
		if !st.Active() || e.monitorAlive(id) || pidAlive(st.Pid, st.PidStart) {
			return
		}
		changed = true
		st.Status = state.StatusExited
		st.ExitCode = code
		st.Error = "container monitor died; exit status unknown"
		if code != 255 {
			st.Error = ""
		}
		st.Pid, st.MonitorPid = 0, 0
		st.FinishedAt = time.Now().UTC()
	})
	if err != nil {
		return nil, err
	}
	if changed {
		if rec, err := e.containers.Record(id); err == nil {
			e.releaseResources(rec)
		}
	}
	return out, nil
}

// monitorAlive tells whether some process holds the container's monitor
// lock.
func (e *Engine) monitorAlive(id string) bool {
	f, err := os.Open(e.containers.MonitorLockPath(id))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return err == unix.EWOULDBLOCK
	}
	return false
}

// waitStopped waits until the container has stopped and its monitor has
// finished (exit recorded, rootfs unmounted, cgroup removed), or until
// timeout (negative: no limit). It reports whether that happened.
func (e *Engine) waitStopped(id string, timeout time.Duration, lostCode int) bool {
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; ; {
		if !e.monitorAlive(id) {
			st, err := e.containers.State(id)
			if err != nil || !st.Active() {
				return true
			}
			if !pidAlive(st.Pid, st.PidStart) {
				e.markLost(id, lostCode)
				return true
			}
		}
		if timeout >= 0 && time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}

// StopOptions is `stop`.
type StopOptions struct {
	Timeout *int // seconds; nil: the container's --stop-timeout, else 10
	Signal  string
	// Shutdown: the system is going down, the user did not stop the
	// container; restart-policy=unless-stopped starts it again at boot
	// (its monitor still does not restart it now).
	Shutdown bool
}

// Stop sends the stop signal, waits, then kills.
func (e *Engine) Stop(ctx context.Context, ref string, o StopOptions) error {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return err
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return err
	}
	st, err := e.State(id)
	if err != nil || !st.Active() {
		return err
	}
	sigName := o.Signal
	if sigName == "" {
		sigName = rec.Config.StopSignal
	}
	sig := unix.SIGTERM
	if sigName != "" {
		s, err := signal.ParseSignal(sigName)
		if err != nil {
			return invalidf("stop signal %q: %v", sigName, err)
		}
		sig = s
	}
	timeout := 10
	if rec.Config.StopTimeout != nil {
		timeout = *rec.Config.StopTimeout
	}
	if o.Timeout != nil {
		timeout = *o.Timeout
	}
	st = e.markStoppedByUser(id, st)
	if err := signalPid(st.Pid, sig); err != nil {
		return fmt.Errorf("sending %v to container %s: %w", sig, id[:12], err)
	}
	e.thawIfPaused(id, st)
	wait := time.Duration(timeout) * time.Second
	if timeout < 0 {
		wait = -1
	}
	if !e.waitStopped(id, wait, 128+int(sig)) {
		signalPid(st.Pid, unix.SIGKILL)
		e.waitStopped(id, -1, 137)
	}
	if o.Shutdown { // the monitor is gone: nothing restarts it now
		e.updateState(id, func(st *state.State) {
			if !st.Active() {
				st.StoppedByUser = false
			}
		})
	}
	return nil
}

// markStoppedByUser records, before any signal is sent, that the user
// stops the container, so that its restart policy does not start it again
// (engine/restart.go). It returns the state as it is then: the pid to
// signal is that of the current run (0 while restarting).
func (e *Engine) markStoppedByUser(id string, st *state.State) *state.State {
	cur := *st
	e.updateState(id, func(s *state.State) {
		s.StoppedByUser = true
		cur = *s
	})
	return &cur
}

// signalPid signals a container's process; pid 0 (a container waiting to
// restart) has none, and must never reach kill(2), which would signal our
// own process group.
func signalPid(pid int, sig unix.Signal) error {
	if pid <= 0 {
		return nil
	}
	if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
		return err
	}
	return nil
}

// Kill sends a signal (SIGKILL by default) to the container's pid 1.
func (e *Engine) Kill(ctx context.Context, ref, sigName string) error {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return err
	}
	sig := unix.SIGKILL
	if sigName != "" {
		s, err := signal.ParseSignal(sigName)
		if err != nil {
			return invalidf("invalid signal %q", sigName)
		}
		sig = s
	}
	st, err := e.State(id)
	if err != nil {
		return err
	}
	if !st.Active() {
		return fmt.Errorf("cannot kill container %s: %w", ref, ErrNotRunning)
	}
	// As docker: SIGKILL or the container's stop signal is a stop by the
	// user (no restart); another signal (SIGHUP to reload, …) is not.
	stopSig := unix.SIGTERM
	if rec, err := e.containers.Record(id); err == nil && rec.Config.StopSignal != "" {
		if s, err := signal.ParseSignal(rec.Config.StopSignal); err == nil {
			stopSig = s
		}
	}
	if sig == unix.SIGKILL || sig == stopSig {
		st = e.markStoppedByUser(id, st)
	}
	if err := signalPid(st.Pid, sig); err != nil {
		return fmt.Errorf("sending %v to container %s: %w", sig, id[:12], err)
	}
	if sig == unix.SIGKILL {
		e.thawIfPaused(id, st)
		e.waitStopped(id, 10*time.Second, 137)
	}
	return nil
}

// Restart stops the container if it runs, then starts it detached.
func (e *Engine) Restart(ctx context.Context, ref string, o StopOptions) error {
	if err := e.Stop(ctx, ref, o); err != nil {
		return err
	}
	_, err := e.Start(ctx, ref, StartOptions{})
	return err
}

// Wait conditions, as podman names them (docker's API has the first
// three).
const (
	WaitNotRunning = "not-running"
	WaitNextExit   = "next-exit"
	WaitRemoved    = "removed"
	WaitRunning    = "running"
	// Health conditions (podman's): the healthcheck's status.
	WaitHealthy   = "healthy"
	WaitUnhealthy = "unhealthy"
)

// Wait blocks until the container meets the condition (by default: is
// not running) and returns its exit code.
func (e *Engine) Wait(ctx context.Context, ref string, condition string) (int, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return 125, err
	}
	poll := func(done func() (bool, error)) error {
		for {
			ok, err := done()
			if ok || err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	switch condition {
	case "", WaitNotRunning, "stopped", "exited":
		e.waitStopped(id, -1, 255)
	case WaitNextExit:
		// A stopped container must first start again.
		if err := poll(func() (bool, error) {
			st, err := e.State(id)
			return err == nil && st.Active(), err
		}); err != nil {
			return 125, err
		}
		e.waitStopped(id, -1, 255)
	case WaitRunning:
		if err := poll(func() (bool, error) {
			st, err := e.State(id)
			return err == nil && st.Active(), err
		}); err != nil {
			return 125, err
		}
		return 0, nil
	case WaitHealthy, WaitUnhealthy:
		return e.waitHealth(id, condition, poll)
	case WaitRemoved:
		st, _ := e.containers.State(id)
		code := 0
		if err := poll(func() (bool, error) {
			if cur, err := e.containers.State(id); err == nil {
				st = cur
				return false, nil
			}
			return true, nil
		}); err != nil {
			return 125, err
		}
		if st != nil {
			code = st.ExitCode
		}
		return code, nil
	default:
		return 125, invalidf("unknown wait condition %q (want not-running, next-exit, removed, running, healthy or unhealthy)", condition)
	}
	st, err := e.containers.State(id)
	if err != nil {
		if errors.Is(err, ErrNoSuchContainer) {
			return 125, fmt.Errorf("container %s was removed while waiting: %w", ref, err)
		}
		return 125, err
	}
	return st.ExitCode, nil
}

// RemoveOptions is `rm`.
type RemoveOptions struct {
	Force   bool
	Volumes bool
}

// waitHealth waits until the container's health status is condition. It
// fails at once for a container without a healthcheck, and when the
// container stops (its monitor gone) before getting there.
func (e *Engine) waitHealth(id, condition string, poll func(func() (bool, error)) error) (int, error) {
	rec, err := e.containers.Record(id)
	if err != nil {
		return 125, err
	}
	if healthcheckOf(rec.Config) == nil {
		return 125, invalidf("container %s has no healthcheck: cannot wait for %q", id[:12], condition)
	}
	err = poll(func() (bool, error) {
		st, err := e.State(id)
		if err != nil {
			return false, err
		}
		if st.Active() {
			return st.Health != nil && string(st.Health.Status) == condition, nil
		}
		// Exited: a monitor restarting it (--health-on-failure=restart)
		// keeps its lock meanwhile.
		if st.Status != state.StatusCreated && !e.monitorAlive(id) {
			return false, fmt.Errorf("container %s stopped before it was %s", id[:12], condition)
		}
		return false, nil
	})
	if err != nil {
		return 125, err
	}
	return 0, nil
}

// Remove deletes a container: its rootfs, cgroup, logs and record.
func (e *Engine) Remove(ctx context.Context, ref string, o RemoveOptions) error {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return err
	}
	st, err := e.State(id)
	if err != nil {
		return err
	}
	if st.Active() {
		if !o.Force {
			return fmt.Errorf("cannot remove container %q: %w: stop the container before removing or force remove", ref, ErrRunning)
		}
		st = e.markStoppedByUser(id, st)
		signalPid(st.Pid, unix.SIGKILL)
		e.thawIfPaused(id, st)
		e.waitStopped(id, 30*time.Second, 137)
	}
	lock, err := e.lockMonitor(id)
	if err != nil {
		if errors.Is(err, ErrNoSuchContainer) || !e.exists(id) {
			return nil // removed meanwhile (--rm)
		}
		return fmt.Errorf("cannot remove container %q: %w", ref, err)
	}
	defer lock.Unlock()
	if !e.exists(id) {
		// --rm: its monitor removed it when it exited; lockMonitor made
		// the run directory again.
		os.RemoveAll(e.containers.RunDir(id))
		return nil
	}
	return e.removeContainerVolumes(id, o.Volumes)
}

func (e *Engine) exists(id string) bool {
	_, err := e.containers.Record(id)
	return err == nil
}

// removeContainer deletes a stopped container. The caller holds its
// monitor lock.
func (e *Engine) removeContainer(id string) error {
	return e.removeContainerVolumes(id, false)
}

// removeContainerVolumes deletes a stopped container and, with volumes,
// its anonymous volumes that no other container uses (rm -v, and --rm as
// docker does). Named volumes always stay.
func (e *Engine) removeContainerVolumes(id string, volumes bool) error {
	rec, _ := e.containers.Record(id)
	if rec != nil {
		e.releaseVolumes(rec)
		volumes = volumes || rec.HostConfig.AutoRemove
	}
	if err := e.removeContainerOnly(id); err != nil {
		return err
	}
	if volumes && rec != nil {
		e.removeAnonymousVolumes(rec)
	}
	return nil
}

func (e *Engine) removeContainerOnly(id string) error {
	images, err := e.Images()
	if err != nil {
		return err
	}
	if err := images.RemoveRootfs(id); err != nil {
		return fmt.Errorf("removing container rootfs: %w", err)
	}
	removeCgroupQuietly(id)
	return e.containers.Remove(id)
}

// Rename gives a container a new name.
func (e *Engine) Rename(ctx context.Context, ref, newName string) error {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return err
	}
	l, err := e.containers.LockGlobal()
	if err != nil {
		return err
	}
	err = e.containers.Rename(id, newName)
	l.Unlock()
	if err != nil {
		return err
	}
	e.renameOnNetworks(id)
	return nil
}
