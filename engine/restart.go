package engine

// Restart policies (--restart), kept by the container's monitor: a
// detached monitor does not end when the container exits if the policy
// says it runs again; it records "restarting", waits (docker's backoff)
// and starts the container again itself, through the same startContainer
// as the first start. Everything the run held (rootfs mount, cgroup,
// veths, addresses, published ports, volume users) is released between
// runs by finishContainer, exactly as after a final exit, so a restart
// leaks nothing and gets a fresh network attachment.
//
// Who decides what, all under the per-container lock:
//   - the monitor, when the main process exited (finishContainer →
//     restartAfterExit): it reads the record then, so `update --restart`
//     applies to the next exit;
//   - stop, kill (SIGKILL or the stop signal) and rm -f set
//     State.StoppedByUser before they signal; the monitor never restarts a
//     container with that flag, ends a backoff when it appears, and kills a
//     run it started just as the flag was set.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/state"
)

// Docker's restart backoff: 100 ms, doubled per consecutive restart, back
// to the start once a run lasted 10 s, at most a minute.
const (
	restartBackoffStart = 100 * time.Millisecond
	restartBackoffMax   = time.Minute
	restartResetAfter   = 10 * time.Second
)

// RestartBackoffMaxEnv caps the backoff (a Go duration, e.g. "1s"); it is
// read by the monitor. Docker has no such knob; it keeps tests of many
// restarts short.
const RestartBackoffMaxEnv = "BERTH_RESTART_BACKOFF_MAX"

// ParseRestartPolicy reads --restart: no, always, unless-stopped or
// on-failure[:N], as docker's CLI does.
func ParseRestartPolicy(s string) (container.RestartPolicy, error) {
	var p container.RestartPolicy
	if s == "" {
		p.Name = container.RestartPolicyDisabled
		return p, nil
	}
	name, count, hasCount := strings.Cut(s, ":")
	p.Name = container.RestartPolicyMode(name)
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil {
			return p, invalidf("invalid restart policy %q: maximum retry count %q is not a number", s, count)
		}
		p.MaximumRetryCount = n
	}
	if err := validateRestartPolicy(p, false); err != nil {
		return p, fmt.Errorf("%w (in %q)", err, s)
	}
	return p, nil
}

// validateRestartPolicy is docker's check, and its rule that --rm and a
// restart policy exclude each other.
func validateRestartPolicy(p container.RestartPolicy, autoRemove bool) error {
	if err := container.ValidateRestartPolicy(p); err != nil {
		return invalidf("%v", err)
	}
	if autoRemove && !p.IsNone() {
		return invalidf("conflicting options: cannot specify both --restart and --rm (restart policy %q)", p.Name)
	}
	return nil
}

// restartsItself tells whether a container with this host config is run
// by a detached monitor that may start it again.
func restartsItself(hc *container.HostConfig) bool {
	return hc != nil && !hc.RestartPolicy.IsNone()
}

// restartAfterExit decides, in the monitor and under the container's lock,
// whether the container whose exit is being recorded in st runs again. It
// reads the record afresh (update --restart). When it does, st becomes
// "restarting" and RestartCount counts the restart, as docker does.
func (e *Engine) restartAfterExit(id string, st *state.State) bool {
	if !e.supervising || st.StoppedByUser {
		return false
	}
	rec, err := e.containers.Record(id)
	if err != nil || rec.HostConfig == nil {
		return false
	}
	p := rec.HostConfig.RestartPolicy
	restart := false
	switch {
	case p.IsAlways(), p.IsUnlessStopped():
		restart = true
	case p.IsOnFailure():
		restart = st.ExitCode != 0 && (p.MaximumRetryCount == 0 || st.RestartCount < p.MaximumRetryCount)
	}
	if restart {
		st.Status = state.StatusRestarting
		st.RestartCount++
	}
	return restart
}

// restartBackoff is the wait before the next restart.
type restartBackoff struct {
	delay time.Duration
	max   time.Duration
}

func newRestartBackoff() *restartBackoff {
	b := &restartBackoff{max: restartBackoffMax}
	if d, err := time.ParseDuration(os.Getenv(RestartBackoffMaxEnv)); err == nil && d > 0 && d < b.max {
		b.max = d
	}
	return b
}

// next returns the wait after a run that lasted ran.
func (b *restartBackoff) next(ran time.Duration) time.Duration {
	if ran >= restartResetAfter {
		b.delay = 0
	}
	if b.delay == 0 {
		b.delay = restartBackoffStart
	} else {
		b.delay *= 2
	}
	if b.delay > b.max {
		b.delay = b.max
	}
	return b.delay
}

// superviseContainer is the detached monitor's loop: it runs the
// container, and again as long as its restart policy says so. newHub
// opens the attach socket of each run (attached clients are let go at
// every exit, as docker's are). started is called once, for the first run.
func (e *Engine) superviseContainer(id string, newHub func(first bool) (*attachHub, error), started func(error)) (int, error) {
	backoff := newRestartBackoff()
	for first := true; ; first = false {
		rec, err := e.containers.Record(id) // afresh: update changes it
		if err == nil && !first && rec.HostConfig.AutoRemove {
			err = fmt.Errorf("container %s is removed at exit: not restarted", id[:12])
		}
		var hub *attachHub
		if err == nil {
			hub, err = newHub(first)
		}
		if err != nil {
			if !first {
				e.recordStartFailure(id, 125, err)
			}
			return 125, err
		}
		go hub.serve()
		runStart := time.Now()
		code, restart, err := e.monitorContainer(rec, nil, hub, nil, started)
		if err != nil {
			hub.listener.Close() // no run, no client to wait for
			if !first {
				e.recordStartFailure(id, code, err) // as docker: it stays stopped
			}
			return code, err
		}
		if !restart {
			return code, nil
		}
		if !e.waitToRestart(id, backoff.next(time.Since(runStart))) {
			return code, nil
		}
	}
}

// waitToRestart waits out the backoff of a restarting container. It
// returns false, with the exit recorded, if the user stopped the container
// meanwhile (or removed it).
func (e *Engine) waitToRestart(id string, delay time.Duration) bool {
	deadline := time.Now().Add(delay)
	for {
		st, err := e.containers.State(id)
		if err != nil {
			return false // removed
		}
		if st.StoppedByUser || st.Status != state.StatusRestarting {
			e.updateState(id, func(st *state.State) {
				if st.Status == state.StatusRestarting {
					st.Status = state.StatusExited
					st.MonitorPid = 0
				}
			})
			return false
		}
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		time.Sleep(min(left, 50*time.Millisecond))
	}
}

// waitExitRecorded waits, once an attached client got the exit code of the
// run it was attached to (attachedTo), until the monitor has recorded that
// exit: restarting or already running again, or exited and released (the
// monitor has ended, as attach waited before restart policies). It does
// not wait for a monitor that restarts the container.
func (e *Engine) waitExitRecorded(id string, attachedTo *state.State) {
	if attachedTo == nil {
		return
	}
	deadline := time.Now().Add(monitorFinishWait)
	for delay := time.Millisecond; time.Now().Before(deadline); {
		st, err := e.containers.State(id)
		if err != nil || !e.monitorAlive(id) || !st.StartedAt.Equal(attachedTo.StartedAt) || st.Status == state.StatusRestarting {
			return
		}
		if !st.Active() {
			if left := time.Until(deadline); left > 0 { // (a negative timeout is none)
				e.waitStopped(id, left, 255)
			}
			return
		}
		time.Sleep(delay)
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}
