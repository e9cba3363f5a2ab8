package engine

// Rootless bridge networks (docs/architecture.md, Rootless networks): a
// user cannot make devices in the host's network namespace, so a rootless
// berth keeps its bridges, their nftables tables and the host ends of its
// containers' veths in a network namespace of the user's own: the
// rootless network namespace, bind-mounted at RUNROOT/netns/rootless in
// the pause process's mount namespace. A keeper process (`berth
// __netns-keeper`, one per user and run root) makes it, runs the
// slirp4netns that carries its traffic out (tap0, 10.0.2.100/24: the
// namespace's default route, masqueraded by each network's table as on
// the host), starts slirp4netns again if it dies, and ends with the pause
// process. Published ports are proxies in the container's monitor that
// listen on the host and connect from the rootless namespace.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/netns"
	"github.com/berth-dev/berth/oci/nsenter"
	"github.com/berth-dev/berth/state"
)

// NetnsKeeperArg is the hidden first argument of the keeper process.
const NetnsKeeperArg = "__netns-keeper"

// keeperReadyTimeout bounds the wait for a new keeper's namespace.
const keeperReadyTimeout = 15 * time.Second

func rootlessNetnsDir(runRoot string) string { return filepath.Join(runRoot, "netns") }

// rootlessNetnsPath is the bind mount of the rootless network namespace.
func rootlessNetnsPath(runRoot string) string {
	return filepath.Join(rootlessNetnsDir(runRoot), "rootless")
}

func keeperPidFile(runRoot string) string {
	return filepath.Join(rootlessNetnsDir(runRoot), "keeper.pid")
}

// netStore is the store's networks; a rootless berth's bridges are in
// the rootless network namespace, made on first need.
func (e *Engine) netStore() *netns.Store {
	s := netns.OpenStore(e.cfg.Root)
	if !e.cfg.Rootless {
		return s
	}
	dir := rootlessNetnsDir(e.cfg.RunRoot)
	return s.In(rootlessNetnsPath(e.cfg.RunRoot), filepath.Join(dir, "subnets.lock"), e.ensureRootlessNetns)
}

// keeperAlive tells whether the recorded keeper runs.
func keeperAlive(runRoot string) bool {
	b, err := os.ReadFile(keeperPidFile(runRoot))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, _ := strconv.Atoi(f[0])
	start, _ := strconv.ParseUint(f[1], 10, 64)
	return pidAlive(pid, start)
}

// ensureRootlessNetns makes sure the rootless network namespace and its
// keeper are there: a pid check and a statfs when they are.
func (e *Engine) ensureRootlessNetns() error {
	run := e.cfg.RunRoot
	path := rootlessNetnsPath(run)
	if keeperAlive(run) && netns.IsNamespace(path) {
		return nil
	}
	dir := rootlessNetnsDir(run)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("rootless network namespace: %w", err)
	}
	lock, err := state.LockFile(filepath.Join(dir, "keeper.lock"))
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if keeperAlive(run) && netns.IsNamespace(path) {
		return nil
	}
	return e.startKeeper()
}

// startKeeper starts the keeper and waits until the namespace is there
// with slirp4netns running for it. The caller holds keeper.lock.
func (e *Engine) startKeeper() error {
	run := e.cfg.RunRoot
	logf, err := os.OpenFile(filepath.Join(rootlessNetnsDir(run), "keeper.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// The keeper outlives this command: nothing of a unit's that
	// started it (its notify socket, passed sockets) goes with it.
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "BERTH_ROOT="+e.cfg.Root, "BERTH_RUNROOT="+run)
	p, r, err := startDetached([]string{NetnsKeeperArg}, env, nil, logf)
	if err != nil {
		return fmt.Errorf("starting the rootless network namespace keeper: %w", err)
	}
	defer r.Close()
	defer p.Release()
	report := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		report <- string(b)
	}()
	var msg string
	select {
	case msg = <-report:
	case <-time.After(keeperReadyTimeout):
		p.Kill()
		return errors.New("rootless network namespace: the keeper did not get ready in time")
	}
	if msg != "ok" {
		if msg == "" {
			msg = "the keeper exited"
		}
		return fmt.Errorf("rootless network namespace: %s", msg)
	}
	start, _ := pidStartTime(p.Pid)
	return state.WriteFileAtomic(keeperPidFile(run), []byte(fmt.Sprintf("%d %d\n", p.Pid, start)), 0o600)
}

// NetnsKeeperMain is the keeper process (see the top of this file). Its
// fd 3 gets "ok" once the namespace is there with slirp4netns running,
// or why not.
func NetnsKeeperMain(cfg Config) int {
	ready := os.NewFile(3, "ready")
	fail := func(err error) int {
		fmt.Fprint(ready, err.Error())
		fmt.Fprintln(os.Stderr, "keeper:", err)
		return 1
	}
	path := rootlessNetnsPath(cfg.RunRoot)
	pause, err := pausePidfd()
	if err != nil {
		return fail(err)
	}
	if !netns.IsNamespace(path) {
		if err := makeRootlessNetns(path); err != nil {
			return fail(err)
		}
	}
	s, err := startSlirpFor(path, "--netns-type=path")
	if err != nil {
		return fail(err)
	}
	fmt.Fprint(ready, "ok")
	ready.Close()
	// Until the pause process ends: slirp4netns is started again when
	// it dies (at most once a second).
	for {
		exited := make(chan struct{})
		go func() { s.cmd.Wait(); close(exited) }()
		fds := []unix.PollFd{{Fd: int32(pause), Events: unix.POLLIN}}
		pauseGone := make(chan struct{})
		go func() {
			for {
				if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
					close(pauseGone)
					return
				}
			}
		}()
		select {
		case <-pauseGone:
			s.stop()
			unix.Unmount(path, unix.MNT_DETACH)
			os.Remove(keeperPidFile(cfg.RunRoot))
			return 0
		case <-exited:
			fmt.Fprintf(os.Stderr, "keeper: slirp4netns exited: %s\n", strings.TrimSpace(s.stderr.String()))
			time.Sleep(time.Second)
			for {
				if s, err = startSlirpFor(path, "--netns-type=path"); err == nil {
					break
				}
				fmt.Fprintln(os.Stderr, "keeper:", err)
				time.Sleep(5 * time.Second)
			}
		}
	}
}

// pausePidfd opens the pause process whose user namespace this process
// is in (nsenter's UsernsPidEnv), checking that it is.
func pausePidfd() (int, error) {
	pid, err := strconv.Atoi(os.Getenv(nsenter.UsernsPidEnv))
	if err != nil || pid <= 0 {
		return -1, errors.New("no pause process recorded (not a rootless berth)")
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("pause process %d: %w", pid, err)
	}
	var own, its unix.Stat_t
	if unix.Stat("/proc/self/ns/user", &own) != nil || unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &its) != nil || own.Ino != its.Ino {
		unix.Close(fd)
		return -1, fmt.Errorf("pause process %d is gone", pid)
	}
	return fd, nil
}

// makeRootlessNetns makes a new network namespace, bind-mounts it at
// path, brings up its loopback and turns on IPv4 forwarding in it.
func makeRootlessNetns(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return fmt.Errorf("rootless network namespace: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// This thread ends in the new namespace: it is never unlocked,
		// so the runtime ends it with the goroutine.
		errc <- func() error {
			runtime.LockOSThread()
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("rootless network namespace: unshare: %w", err)
			}
			if err := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("rootless network namespace: bind mount at %s: %w", path, err)
			}
			lo, err := netlink.LinkByName("lo")
			if err == nil {
				err = netlink.LinkSetUp(lo)
			}
			if err != nil {
				return fmt.Errorf("rootless network namespace: loopback: %w", err)
			}
			if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
				return fmt.Errorf("rootless network namespace: enabling forwarding: %w", err)
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		return err
	}
	return nil
}
