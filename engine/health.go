package engine

// Healthchecks without a daemon: docker's HEALTHCHECK semantics, run by
// the container's monitor (the detached `berth __monitor` process or the
// foreground CLI) in a goroutine that execs the check into the container
// through the same path as `berth exec`. Results go into state.json
// (State.Health, docker's types and JSON names), read by inspect and ps.
//
// The monitor's hooks are three calls in engine/monitor.go:
// healthAtStart (the state written when the container runs),
// startHealthcheck after the start, and healthMonitor.stop after the
// exit, which says whether --health-on-failure=restart asked for a new
// start (see restartUnhealthy).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/sys/signal"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/state"
)

// Docker's defaults for the fields a healthcheck leaves at zero.
const (
	defaultHealthInterval      = 30 * time.Second
	defaultHealthTimeout       = 30 * time.Second
	defaultHealthStartInterval = 5 * time.Second
	defaultHealthRetries       = 3
	// healthMaxOutput is how much of a check's output is kept (docker's 4 KiB).
	healthMaxOutput = 4096
	// healthMaxLog is how many results State.Health.Log keeps (docker's 5).
	healthMaxLog = 5
)

// Actions of --health-on-failure (podman's names).
const (
	HealthOnFailureNone    = "none"
	HealthOnFailureKill    = "kill"
	HealthOnFailureRestart = "restart"
	HealthOnFailureStop    = "stop"
)

// ValidHealthOnFailure tells whether s is a --health-on-failure action.
func ValidHealthOnFailure(s string) bool {
	switch s {
	case "", HealthOnFailureNone, HealthOnFailureKill, HealthOnFailureRestart, HealthOnFailureStop:
		return true
	}
	return false
}

// mergeHealthcheck applies docker's rules: without a healthcheck of its
// own the container takes the image's; with one, each field left at zero
// (an empty Test too) comes from the image's.
func mergeHealthcheck(user *container.HealthConfig, img *v1.HealthConfig) *container.HealthConfig {
	if img == nil {
		return user
	}
	if user == nil {
		return &container.HealthConfig{
			Test: append([]string(nil), img.Test...), Interval: img.Interval, Timeout: img.Timeout,
			StartPeriod: img.StartPeriod, Retries: img.Retries,
		}
	}
	out := *user
	if len(out.Test) == 0 {
		out.Test = append([]string(nil), img.Test...)
	}
	if out.Interval == 0 {
		out.Interval = img.Interval
	}
	if out.Timeout == 0 {
		out.Timeout = img.Timeout
	}
	if out.StartPeriod == 0 {
		out.StartPeriod = img.StartPeriod
	}
	if out.Retries == 0 {
		out.Retries = img.Retries
	}
	return &out
}

// validateHealthcheck refuses what docker's daemon refuses: durations
// below 1ms (zero means "default"), negative retries, unknown test kinds.
func validateHealthcheck(h *container.HealthConfig) error {
	if h == nil {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", h.Interval}, {"Timeout", h.Timeout}, {"StartPeriod", h.StartPeriod}, {"StartInterval", h.StartInterval}} {
		if d.v != 0 && d.v < container.MinimumDuration {
			return invalidf("%s in Healthcheck cannot be less than %s", d.name, container.MinimumDuration)
		}
	}
	if h.Retries < 0 {
		return invalidf("Retries in Healthcheck cannot be negative")
	}
	if len(h.Test) == 0 {
		return nil
	}
	switch h.Test[0] {
	case "NONE":
	case "CMD":
		if len(h.Test) < 2 {
			return invalidf("healthcheck CMD needs a command")
		}
	case "CMD-SHELL":
		if len(h.Test) != 2 || h.Test[1] == "" {
			return invalidf("healthcheck CMD-SHELL needs exactly one command string")
		}
	default:
		return invalidf("unknown healthcheck type %q (want NONE, CMD or CMD-SHELL)", h.Test[0])
	}
	return nil
}

// healthcheckOf is the container's healthcheck, or nil when it has none
// (or it is disabled with NONE).
func healthcheckOf(cfg *container.Config) *container.HealthConfig {
	if cfg == nil || cfg.Healthcheck == nil {
		return nil
	}
	h := cfg.Healthcheck
	if len(h.Test) < 2 || h.Test[0] == "NONE" {
		return nil
	}
	return h
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// healthArgv is the command a check execs: CMD's arguments, or
// CMD-SHELL's string run by the image's SHELL (default /bin/sh -c).
func healthArgv(cfg *container.Config, h *container.HealthConfig) []string {
	if h.Test[0] == "CMD" {
		return append([]string(nil), h.Test[1:]...)
	}
	shell := []string{"/bin/sh", "-c"}
	if len(cfg.Shell) > 0 {
		shell = cfg.Shell
	}
	return append(append([]string(nil), shell...), h.Test[1])
}

// healthAtStart is State.Health for a run that is starting: "starting",
// no failures, the previous runs' log kept (as docker does); nil without
// a healthcheck.
func healthAtStart(rec *state.Record, prev *container.Health) *container.Health {
	if healthcheckOf(rec.Config) == nil {
		return nil
	}
	h := &container.Health{Status: container.Starting}
	if prev != nil {
		h.Log = prev.Log
	}
	return h
}

// limitedBuffer keeps the first healthMaxOutput bytes written to it;
// String marks a cut with "...".
type limitedBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := min(healthMaxOutput-b.buf.Len(), len(p))
	if keep > 0 {
		b.buf.Write(p[:keep])
	}
	if keep < len(p) {
		b.truncated = true
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.truncated {
		return b.buf.String() + "..."
	}
	return b.buf.String()
}

// probe runs the check once inside the container, through Exec; past the
// timeout the check's process group is killed and the result is docker's
// exit -1 "Health check exceeded timeout".
func (e *Engine) probe(ctx context.Context, rec *state.Record, h *container.HealthConfig) *container.HealthcheckResult {
	timeout := orDefault(h.Timeout, defaultHealthTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &limitedBuffer{}
	res := &container.HealthcheckResult{Start: time.Now().UTC()}
	code, err := e.Exec(ctx, rec.ID, ExecOptions{
		Cmd:     healthArgv(rec.Config, h),
		Streams: &Streams{Stdout: out, Stderr: out},
	})
	res.End = time.Now().UTC()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.ExitCode = -1
		res.Output = fmt.Sprintf("Health check exceeded timeout (%v)", timeout)
	case err != nil:
		res.ExitCode = -1
		res.Output = err.Error()
	default:
		res.ExitCode = code
		res.Output = out.String()
	}
	return res
}

// recordHealth adds a result to the health of the container's run whose
// pid 1 is pid (a result of an earlier run is dropped), with docker's
// rules: a success makes it healthy and ends the start period's grace; a
// failure during the start period, before any success, does not count;
// retries consecutive failures make it unhealthy. It returns the new
// status ("" when the result was dropped).
func (e *Engine) recordHealth(id string, pid int, h *container.HealthConfig, res *container.HealthcheckResult) (container.HealthStatus, error) {
	var status container.HealthStatus
	err := e.updateState(id, func(st *state.State) {
		if !st.Active() || st.Pid != pid {
			return
		}
		hs := st.Health
		if hs == nil {
			hs = &container.Health{Status: container.Starting}
			st.Health = hs
		}
		if res.ExitCode == 0 {
			hs.FailingStreak = 0
			hs.Status = container.Healthy
		} else if !(hs.Status == container.Starting && res.Start.Sub(st.StartedAt) < h.StartPeriod) {
			hs.FailingStreak++
			retries := h.Retries
			if retries <= 0 {
				retries = defaultHealthRetries
			}
			if hs.FailingStreak >= retries {
				hs.Status = container.Unhealthy
			}
		}
		hs.Log = append(hs.Log, res)
		if n := len(hs.Log); n > healthMaxLog {
			hs.Log = append([]*container.HealthcheckResult(nil), hs.Log[n-healthMaxLog:]...)
		}
		status = hs.Status
	})
	return status, err
}

// HealthcheckRun runs a running container's healthcheck once now
// (podman's `healthcheck run`), records the result as the monitor's
// checks do, and returns it with the container's health status after it.
func (e *Engine) HealthcheckRun(ctx context.Context, ref string) (*container.HealthcheckResult, container.HealthStatus, error) {
	rec, st, err := e.running(ref)
	if err != nil {
		return nil, "", err
	}
	h := healthcheckOf(rec.Config)
	if h == nil {
		return nil, "", invalidf("container %s has no defined healthcheck", ref)
	}
	if st.Status == state.StatusPaused {
		return nil, "", fmt.Errorf("container %s is paused", ref)
	}
	res := e.probe(ctx, rec, h)
	status, err := e.recordHealth(rec.ID, st.Pid, h, res)
	return res, status, err
}

// healthMonitor is the goroutine that checks a running container's
// health for its monitor.
type healthMonitor struct {
	stopCh  chan struct{}
	done    chan struct{}
	restart bool // set before done closes: the check stopped the container to restart it
}

// startHealthcheck starts checking the health of the container run whose
// pid 1 is pid; nil (a no-op) without a healthcheck.
func (e *Engine) startHealthcheck(rec *state.Record, pid int) *healthMonitor {
	h := healthcheckOf(rec.Config)
	if h == nil {
		return nil
	}
	m := &healthMonitor{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		m.run(e, rec, pid, h)
	}()
	return m
}

// stop ends the checks once the container has exited, and reports
// whether --health-on-failure=restart stopped it to be started again
// (not when a user stopped it meanwhile).
func (m *healthMonitor) stop(e *Engine, id string) bool {
	if m == nil {
		return false
	}
	close(m.stopCh)
	<-m.done
	if !m.restart {
		return false
	}
	st, err := e.containers.State(id)
	return err == nil && !st.StoppedByUser
}

// run checks at docker's pace: every StartInterval while the container is
// starting within its start period, else every Interval, the first check
// one interval after the start. Paused containers are not checked.
func (m *healthMonitor) run(e *Engine, rec *state.Record, pid int, h *container.HealthConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stopCh:
			cancel() // the container exited: a check under way ends
		case <-ctx.Done():
		}
	}()
	started := time.Now()
	status := container.Starting
	if st, err := e.containers.State(rec.ID); err == nil {
		started = st.StartedAt
	}
	next := func() time.Duration {
		if status == container.Starting && time.Since(started) < h.StartPeriod {
			return orDefault(h.StartInterval, defaultHealthStartInterval)
		}
		return orDefault(h.Interval, defaultHealthInterval)
	}
	timer := time.NewTimer(next())
	defer timer.Stop()
	for {
		select {
		case <-m.stopCh:
			return
		case <-timer.C:
		}
		st, err := e.containers.State(rec.ID)
		if err != nil || st.Pid != pid || !st.Active() {
			return
		}
		if st.Health != nil { // `berth healthcheck run` may have changed it
			status = st.Health.Status
		}
		if st.Status != state.StatusPaused {
			res := e.probe(ctx, rec, h)
			if ctx.Err() != nil {
				return
			}
			if s, err := e.recordHealth(rec.ID, pid, h, res); err == nil && s != "" {
				status = s
			}
			if status == container.Unhealthy && rec.HealthOnFailure != "" && rec.HealthOnFailure != HealthOnFailureNone {
				m.onFailure(e, rec, pid)
				return
			}
		}
		timer.Reset(next())
	}
}

// onFailure is --health-on-failure: kill (SIGKILL; a restart policy may
// still apply), stop (as `berth stop`: the stop signal, SIGKILL after the
// stop timeout; recorded as stopped by the user), restart (stopped the
// same way, then started again by the monitor: restartUnhealthy).
func (m *healthMonitor) onFailure(e *Engine, rec *state.Record, pid int) {
	st, err := e.containers.State(rec.ID)
	if err != nil || st.Pid != pid || !pidAlive(pid, st.PidStart) {
		return
	}
	if rec.HealthOnFailure == HealthOnFailureKill {
		unix.Kill(pid, unix.SIGKILL)
		return
	}
	if rec.HealthOnFailure == HealthOnFailureStop {
		e.updateState(rec.ID, func(st *state.State) { st.StoppedByUser = true })
	} else {
		m.restart = true
	}
	sig := unix.SIGTERM
	if rec.Config.StopSignal != "" {
		if s, err := signal.ParseSignal(rec.Config.StopSignal); err == nil {
			sig = s
		}
	}
	timeout := 10 * time.Second
	if rec.Config.StopTimeout != nil {
		timeout = time.Duration(*rec.Config.StopTimeout) * time.Second
	}
	unix.Kill(pid, sig)
	var kill <-chan time.Time // a negative stop timeout waits for ever, as stop does
	if timeout >= 0 {
		kill = time.After(timeout)
	}
	select {
	case <-m.stopCh: // it exited
	case <-kill:
		if pidAlive(pid, st.PidStart) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// restartUnhealthy records the exit of a container that
// --health-on-failure=restart stopped, counts the restart, and gives a
// detached monitor a new attach socket (the old one closed with the
// exit). The monitor then starts the container again. A minimal restart
// of its own: the restart policies' loop may take this over.
func (e *Engine) restartUnhealthy(rec *state.Record, pid, exitCode int, hub *attachHub) (*attachHub, error) {
	keep := *rec
	hc := *rec.HostConfig
	hc.AutoRemove = false // an --rm container is not removed between its runs
	keep.HostConfig = &hc
	e.finishContainer(&keep, pid, exitCode)
	// Recorded as restarting, so that the next start keeps the count
	// (startContainer resets it for a start from "exited").
	if err := e.updateState(rec.ID, func(st *state.State) {
		st.RestartCount++
		st.Status = state.StatusRestarting
		st.MonitorPid = os.Getpid()
	}); err != nil {
		return nil, err
	}
	if hub == nil {
		return nil, nil
	}
	hub, err := listenAttach(e.containers.RunDir(rec.ID), false)
	if err != nil {
		return nil, err
	}
	go hub.serve()
	return hub, nil
}
