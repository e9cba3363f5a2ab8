package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/state"
)

// Log drivers. k8s-file is accepted for podman's command lines and
// written as json-file; passthrough hands the caller's own stdout and
// stderr to the container (a systemd unit's journal); none keeps nothing.
const (
	LogDriverJSONFile    = "json-file"
	LogDriverK8sFile     = "k8s-file"
	LogDriverNone        = "none"
	LogDriverPassthrough = "passthrough"
)

// sd_notify modes (--sdnotify).
const (
	SdNotifyConmon    = "conmon"
	SdNotifyContainer = "container"
	SdNotifyIgnore    = "ignore"
)

// notifyDir is where a container sees the notify socket berth forwards
// (--sdnotify=container), as podman mounts it.
const notifyDir = "/run/notify"

func validateLogging(cfg *container.Config, hc *container.HostConfig, sdnotify string) error {
	switch hc.LogConfig.Type {
	case "", LogDriverJSONFile, LogDriverK8sFile, LogDriverNone:
	case LogDriverPassthrough:
		if cfg.Tty {
			return invalidf("the passthrough log driver cannot be used with a terminal (-t)")
		}
	default:
		return invalidf("unknown log driver %q: want json-file, k8s-file, passthrough or none", hc.LogConfig.Type)
	}
	switch sdnotify {
	case "", SdNotifyConmon, SdNotifyContainer, SdNotifyIgnore:
	default:
		return invalidf("invalid --sdnotify %q: want container, conmon or ignore", sdnotify)
	}
	return nil
}

// logDriver is a container's log driver ("json-file" when unset).
func logDriver(hc *container.HostConfig) string {
	if hc == nil || hc.LogConfig.Type == "" || hc.LogConfig.Type == LogDriverK8sFile {
		return LogDriverJSONFile
	}
	return hc.LogConfig.Type
}

// checkLogsReadable refuses `logs` for the drivers that keep no log.
func checkLogsReadable(rec *state.Record) error {
	if d := logDriver(rec.HostConfig); d == LogDriverNone || d == LogDriverPassthrough {
		return fmt.Errorf("this container is using the %q log driver, cannot read logs", d)
	}
	return nil
}

// replaceNamed removes the container called name, if any, before a
// container of that name is created (--replace): it is stopped with its
// own stop signal and timeout, then removed.
func (e *Engine) replaceNamed(ctx context.Context, name string) error {
	if !e.containers.NameTaken(name) {
		return nil
	}
	id, err := e.containers.Resolve(name)
	if err != nil {
		return nil
	}
	if err := e.Stop(ctx, id, StopOptions{}); err != nil && !errors.Is(err, ErrNoSuchContainer) {
		return fmt.Errorf("replacing container %s: %w", name, err)
	}
	if err := e.Remove(ctx, id, RemoveOptions{Force: true}); err != nil && !errors.Is(err, ErrNoSuchContainer) {
		return fmt.Errorf("replacing container %s: %w", name, err)
	}
	return nil
}

// MonitorPidPath is the file holding the pid of the container's monitor
// while it runs (a systemd unit's PIDFile= for Type=forking).
func (e *Engine) MonitorPidPath(id string) string {
	return filepath.Join(e.containers.RunDir(id), "monitor.pid")
}

func (e *Engine) writeMonitorPid(id string) {
	state.ReplaceFile(e.MonitorPidPath(id), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

func (e *Engine) removeMonitorPid(id string) { os.Remove(e.MonitorPidPath(id)) }

// sdNotifier talks to systemd's notify socket ($NOTIFY_SOCKET of the
// process that starts the container) for a container.
type sdNotifier struct {
	mode   string
	socket string        // the host's notify socket
	proxy  *net.UnixConn // container mode: the socket the container sees
	dir    string        // its directory on the host
	done   chan struct{} // closed when the forwarding ends
}

// newSdNotifier returns nil when there is nothing to notify: no
// NOTIFY_SOCKET, or --sdnotify=ignore.
func (e *Engine) newSdNotifier(rec *state.Record) (*sdNotifier, error) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" || rec.SdNotify == SdNotifyIgnore {
		return nil, nil
	}
	n := &sdNotifier{mode: rec.SdNotify, socket: sock}
	if n.mode == "" {
		n.mode = SdNotifyConmon
	}
	if n.mode != SdNotifyContainer {
		return n, nil
	}
	// The container's processes are not in the unit's cgroup, so systemd
	// would drop their messages (NotifyAccess=all means the unit's
	// cgroup): they go to a socket of berth's, and the monitor, which is
	// in the unit's cgroup, forwards them.
	n.dir = filepath.Join(e.containers.RunDir(rec.ID), "notify")
	os.RemoveAll(n.dir)
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return nil, err
	}
	path, done, err := shortPath(n.dir, "notify.sock") // sun_path is short
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	done()
	if err != nil {
		return nil, fmt.Errorf("making the container's notify socket: %w", err)
	}
	os.Chmod(filepath.Join(n.dir, "notify.sock"), 0o777)
	n.proxy = c
	return n, nil
}

// addToSpec gives the container the forwarded socket (container mode).
func (n *sdNotifier) addToSpec(spec *specs.Spec) {
	if n == nil || n.proxy == nil {
		return
	}
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: notifyDir, Type: "bind", Source: n.dir, Options: []string{"rbind", "rprivate"}})
	env := spec.Process.Env[:0:0]
	for _, kv := range spec.Process.Env {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	spec.Process.Env = append(env, "NOTIFY_SOCKET="+notifyDir+"/notify.sock")
}

// started tells systemd the main pid, and that it is ready (conmon mode)
// or forwards the container's own messages from now on. The main pid is
// the monitor's own (as podman names conmon's): it is in the unit's
// cgroup, becomes systemd's child once the CLI that spawned it exits, and
// exits with the container's code, so systemd sees failures. The
// container's pid 1 is in berth's cgroup and no child of systemd's.
func (n *sdNotifier) started(_ int) {
	if n == nil {
		return
	}
	pid := os.Getpid()
	if n.mode == SdNotifyConmon {
		n.send(fmt.Sprintf("MAINPID=%d\nREADY=1\n", pid))
		return
	}
	n.send(fmt.Sprintf("MAINPID=%d\n", pid))
	n.done = make(chan struct{})
	go func() {
		defer close(n.done)
		buf := make([]byte, 4096) // systemd reads no more of a message (PIPE_BUF)
		for {
			k, err := n.proxy.Read(buf)
			if err != nil {
				return // closed, or quiet past the deadline close set
			}
			// The container's own MAINPID would name a pid of its
			// namespace: dropped, berth has told the host's.
			var keep []string
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				if line != "" && !strings.HasPrefix(line, "MAINPID=") {
					keep = append(keep, line)
				}
			}
			if len(keep) > 0 {
				n.send(strings.Join(keep, "\n") + "\n")
			}
		}
	}()
}

func (n *sdNotifier) send(msg string) error {
	// A name starting with @ is an abstract socket, to Go as to systemd.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(msg))
	return err
}

// notifyDrain is how long a container's last notify messages are waited
// for after it exited.
const notifyDrain = 20 * time.Millisecond

// close stops forwarding and removes the container's socket.
func (n *sdNotifier) close() {
	if n == nil || n.proxy == nil {
		return
	}
	if n.done != nil {
		// What the container sent just before it exited is still
		// queued: forwarded until the socket has been quiet a moment.
		n.proxy.SetReadDeadline(time.Now().Add(notifyDrain))
		<-n.done
	}
	n.proxy.Close()
	os.RemoveAll(n.dir)
}

// UnitInfo is what `generate systemd` needs to know about a container.
type UnitInfo struct {
	ID, Name string
	// CreateCommand is the command line that created it (nil for
	// containers made before berth recorded it).
	CreateCommand []string
	StopTimeout   *int   // --stop-timeout
	PIDFile       string // the monitor's pid file
	Config        Config // the store
}

// UnitInfo reads what a systemd unit for the container is made of.
func (e *Engine) UnitInfo(ref string) (*UnitInfo, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return nil, err
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return nil, err
	}
	return &UnitInfo{
		ID: id, Name: rec.Name, CreateCommand: rec.CreateCommand, StopTimeout: rec.Config.StopTimeout,
		PIDFile: e.MonitorPidPath(id), Config: e.cfg,
	}, nil
}

// relaySignals passes SIGTERM, SIGINT and SIGHUP sent to a detached
// monitor on to the container's pid 1, until the returned stop is called.
// (Caught, not ignored: the init child gets default dispositions.)
func (e *Engine) relaySignals(id string) (stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case sig := <-sigs:
				st, err := e.containers.State(id)
				if err != nil {
					continue
				}
				if sig != unix.SIGHUP {
					// A stop from the unit: no restart policy undoes it,
					// also while the monitor waits to restart (pid 0).
					st = e.markStoppedByUser(id, st)
				}
				if st.Active() && pidAlive(st.Pid, st.PidStart) {
					signalPid(st.Pid, sig.(unix.Signal))
				}
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
