// Package rootless lets an ordinary user run berth: it chooses the user's
// paths and keeps the user namespace every rootless berth process runs in.
//
// The namespace is held by a per-user "pause" process (berth __pause, a
// hidden role) made on first use: it is started in a new user and mount
// namespace, the caller maps the user's uid to 0 and the user's ranges in
// /etc/subuid and /etc/subgid after it (newuidmap, newgidmap), and it then
// sleeps until killed. Its pid is in RUNDIR/pause.pid, and it holds a
// shared flock on RUNDIR/pause.lock for its whole life, so a stale pid
// file (after a reboot, or a kill) is recognised and a new one is made.
//
// Every rootless berth command re-execs itself once with UidEnv and
// nsenter.UsernsPidEnv set: the C constructor of package oci/nsenter joins
// the pause process's user and mount namespaces before the Go runtime
// starts, and berth then runs as root in there. Monitors, init children,
// exec helpers and storage helpers are started from inside, inherit both
// namespaces, and find the variables (if they keep the environment) already
// satisfied.
package rootless

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/oci/nsenter"
)

// PauseArg is the hidden first argument of the pause process.
const PauseArg = "__pause"

// UidEnv carries the user's own uid into the user namespace, where every
// process is uid 0: it marks a rootless berth and picks the user's paths.
const UidEnv = "_BERTH_ROOTLESS_UID"

// Enabled tells whether this berth runs rootless: as a non-root user, or
// inside such a user's namespace.
func Enabled() bool {
	return os.Geteuid() != 0 || os.Getenv(UidEnv) != ""
}

// UID is the user's uid on the host (the caller's own outside the
// namespace, UidEnv inside).
func UID() int {
	if v := os.Getenv(UidEnv); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return os.Geteuid()
}

// GID is the user's primary gid on the host.
func GID() int {
	if v := os.Getenv("_CONTAINERS_ROOTLESS_GID"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return os.Getegid()
}

// Joined tells whether this process is inside the user's namespace.
func Joined() bool { return os.Getenv(UidEnv) != "" && os.Geteuid() == 0 }

func home() string {
	if h := os.Getenv("HOME"); h != "" {
		return h
	}
	if u, err := user.LookupId(strconv.Itoa(UID())); err == nil {
		return u.HomeDir
	}
	return "/"
}

// DataDir is the user's persistent store:
// ${XDG_DATA_HOME:-$HOME/.local/share}/berth.
func DataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "berth")
	}
	return filepath.Join(home(), ".local", "share", "berth")
}

// RunDir is the user's runtime directory: $XDG_RUNTIME_DIR/berth, or
// /tmp/berth-run-UID without XDG_RUNTIME_DIR (see CheckRunDir).
func RunDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "berth")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("berth-run-%d", UID()))
}

// CheckRunDir makes dir (mode 0700) if needed and makes sure that it is
// a directory of the caller's own that nobody else can write to: /tmp is
// everybody's, and a directory planted there by another user would let
// them into every container of this one. Run as the user, outside the
// namespace.
func CheckRunDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("rootless runtime directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("rootless runtime directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("rootless runtime directory: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("rootless runtime directory %s is not a directory", dir)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("rootless runtime directory %s belongs to uid %d, not to you (uid %d): remove it or set XDG_RUNTIME_DIR", dir, st.Uid, os.Geteuid())
	}
	if st.Mode&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("rootless runtime directory %s: %w", dir, err)
		}
	}
	return nil
}

// Join re-execs the calling (non-root) berth into the user's namespace,
// making the pause process first if there is none. It returns only on
// error. runDir is where the pause process is recorded.
func Join(runDir string) error {
	if err := CheckRunDir(runDir); err != nil {
		return err
	}
	pid, err := ensurePause(runDir)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding own binary: %w", err)
	}
	env := append(os.Environ(),
		UidEnv+"="+strconv.Itoa(os.Geteuid()),
		nsenter.UsernsPidEnv+"="+strconv.Itoa(pid),
		// containers/storage's own marker of a configured user namespace.
		"_CONTAINERS_USERNS_CONFIGURED=1",
		"_CONTAINERS_ROOTLESS_UID="+strconv.Itoa(os.Geteuid()),
		"_CONTAINERS_ROOTLESS_GID="+strconv.Itoa(os.Getegid()),
	)
	return fmt.Errorf("re-executing berth in its user namespace: %w", unix.Exec(exe, os.Args, env))
}

// PausePidFile is where the pause process's pid is kept.
func PausePidFile(runDir string) string { return filepath.Join(runDir, "pause.pid") }

// ensurePause returns the pid of the user's live pause process, starting
// one if needed. Creators are serialised by an exclusive flock on
// pause.lock, which the new pause process inherits and keeps (shared)
// for its life: a lock that can be taken exclusively means no pause
// process is alive.
//
// A pause process that was just killed may still hold the lock while the
// kernel tears it down (its namespaces already gone): it is waited out.
func ensurePause(runDir string) (int, error) {
	for try := 0; ; try++ {
		pid, err := ensurePauseOnce(runDir)
		if err != nil || pauseUsable(pid) || try == 200 {
			if err == nil && !pauseUsable(pid) {
				err = fmt.Errorf("pause process %d: its namespaces are gone, and it does not exit", pid)
			}
			return pid, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pauseUsable tells whether pid's namespaces can still be joined (a
// dying or zombie process has none).
func pauseUsable(pid int) bool {
	var st unix.Stat_t
	return unix.Stat(fmt.Sprintf("/proc/%d/ns/mnt", pid), &st) == nil
}

func ensurePauseOnce(runDir string) (int, error) {
	lf, err := os.OpenFile(filepath.Join(runDir, "pause.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return 0, fmt.Errorf("pause process: %w", err)
	}
	defer lf.Close()
	fd := int(lf.Fd())
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == nil {
		pid, err := startPause(runDir, lf)
		if err != nil {
			unix.Flock(fd, unix.LOCK_UN)
			return 0, err
		}
		// The lock now belongs to the pause process too (same open file):
		// made shared, it stays held while the process lives.
		if err := unix.Flock(fd, unix.LOCK_SH); err != nil {
			return 0, fmt.Errorf("pause process: %w", err)
		}
		return pid, nil
	} else if !errors.Is(err, unix.EWOULDBLOCK) {
		return 0, fmt.Errorf("pause process: %w", err)
	}
	// Alive, or being made: wait for the maker.
	if err := unix.Flock(fd, unix.LOCK_SH); err != nil {
		return 0, fmt.Errorf("pause process: %w", err)
	}
	b, err := os.ReadFile(PausePidFile(runDir))
	if err != nil {
		return 0, fmt.Errorf("pause process: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pause process: bad pid file %s", PausePidFile(runDir))
	}
	return pid, nil
}

// startPause starts the pause process in new user and mount namespaces,
// writes its uid and gid maps, and records its pid.
func startPause(runDir string, lock *os.File) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding own binary: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	defer w.Close()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != UidEnv && k != nsenter.UsernsPidEnv {
			env = append(env, kv)
		}
	}
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       []string{"berth", PauseArg},
		Env:        env,
		Dir:        "/",
		ExtraFiles: []*os.File{r, lock}, // fd 3: go-ahead; fd 4: the lock
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
			Setsid:     true,
		},
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the pause process (user namespaces disabled? see sysctl kernel.unprivileged_userns_clone and user.max_user_namespaces): %w", err)
	}
	pid := cmd.Process.Pid
	fail := func(err error) (int, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, err
	}
	if err := writeMaps(pid, PausePidFile(runDir)); err != nil {
		return fail(err)
	}
	if _, err := w.Write([]byte{1}); err != nil {
		return fail(fmt.Errorf("pause process: %w", err))
	}
	tmp := PausePidFile(runDir) + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, PausePidFile(runDir)); err != nil {
		return fail(err)
	}
	cmd.Process.Release() // it outlives us
	return pid, nil
}

// IDRange is one line of /etc/subuid or /etc/subgid.
type IDRange struct{ Start, Count int }

// SubIDs returns the user's ranges in file (/etc/subuid, /etc/subgid),
// given by name or by uid.
func SubIDs(file, name string, uid int) []IDRange {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []IDRange
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != strconv.Itoa(uid)) {
			continue
		}
		start, err1 := strconv.Atoi(parts[1])
		count, err2 := strconv.Atoi(parts[2])
		if err1 == nil && err2 == nil && count > 0 {
			out = append(out, IDRange{start, count})
		}
	}
	return out
}

// writeMaps maps the user's uid and gid to 0 in pid's namespace and the
// subordinate ranges from 1 on (newuidmap and newgidmap, which are setuid
// root), or, without ranges or those tools, the user's ids alone, with a
// warning.
func writeMaps(pid int, pidFile string) error {
	uid, gid := os.Geteuid(), os.Getegid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	uids := SubIDs("/etc/subuid", name, uid)
	gids := SubIDs("/etc/subgid", name, uid)
	newuidmap, err1 := exec.LookPath("newuidmap")
	newgidmap, err2 := exec.LookPath("newgidmap")
	if len(uids) > 0 && len(gids) > 0 && err1 == nil && err2 == nil {
		if err := runIDMap(newuidmap, pid, uid, uids); err != nil {
			return err
		}
		return runIDMap(newgidmap, pid, gid, gids)
	}
	why := fmt.Sprintf("no ranges for %s in /etc/subuid and /etc/subgid", name)
	if len(uids) > 0 && len(gids) > 0 {
		why = "newuidmap/newgidmap not found (install uidmap)"
	}
	fmt.Fprintf(os.Stderr, "WARNING: %s: containers get a single uid and gid (yours, as root); files of other owners in images are given to root, and USER, chown and setgid to other ids fail. Add ranges (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s), then stop berth's pause process (kill $(cat %s)).\n", why, name, pidFile)
	p := fmt.Sprintf("/proc/%d/", pid)
	if err := os.WriteFile(p+"uid_map", []byte(fmt.Sprintf("0 %d 1\n", uid)), 0); err != nil {
		return fmt.Errorf("writing uid map: %w", err)
	}
	if err := os.WriteFile(p+"setgroups", []byte("deny"), 0); err != nil {
		return fmt.Errorf("writing setgroups: %w", err)
	}
	if err := os.WriteFile(p+"gid_map", []byte(fmt.Sprintf("0 %d 1\n", gid)), 0); err != nil {
		return fmt.Errorf("writing gid map: %w", err)
	}
	return nil
}

func runIDMap(tool string, pid, own int, ranges []IDRange) error {
	args := []string{strconv.Itoa(pid), "0", strconv.Itoa(own), "1"}
	next := 1
	for _, r := range ranges {
		args = append(args, strconv.Itoa(next), strconv.Itoa(r.Start), strconv.Itoa(r.Count))
		next += r.Count
	}
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(tool), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// PauseMain is the pause process: it waits for its maps and sleeps until
// SIGTERM or SIGKILL. (It has no capabilities: it was exec'd before its
// uid was mapped. Those who join its namespaces get them there.)
func PauseMain() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGTERM, unix.SIGINT)
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE)
	goAhead := os.NewFile(3, "go-ahead")
	var b [1]byte
	if n, _ := goAhead.Read(b[:]); n != 1 {
		os.Exit(1)
	}
	goAhead.Close()
	// fd 4 is the lock: kept open (and so held) until exit. Nothing to
	// mount: a mount namespace made by a user is less privileged than
	// its parent, so the kernel turned its shared mounts into slaves, and
	// nothing mounted in it propagates back to the host.
	<-sig
	os.Exit(0)
}

// SingleMapping tells whether this process's user namespace maps one uid
// only (no subordinate ranges).
func SingleMapping() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		return false
	}
	f := strings.Fields(lines[0])
	return len(f) == 3 && f[2] == "1"
}
