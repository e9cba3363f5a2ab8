// Rootless scenarios (testdata/scripts/rootless*.txtar): berth run by
// ordinary users. TestMain makes two users, idempotently (a fresh CI
// machine has neither):
//
//	berthtest   with ranges in /etc/subuid and /etc/subgid (newuidmap)
//	berthnosub  without any (the single-uid fallback); its lines are removed
//
// Scenario commands (also accepted as PROG by exitcode, capture, waitfor,
// within):
//
//	berth-user ARGS...     berth as berthtest
//	berth-nosub ARGS...    berth as berthnosub
//	as-user PROG ARGS...   any program as berthtest, same environment
//
// Each user gets, per scenario, HOME=$WORK/users/NAME/home and
// XDG_RUNTIME_DIR=$WORK/users/NAME/run (owned by the user, 0700), TMPDIR
// under its home, and no BERTH_ROOT/BERTH_RUNROOT: berth's own rootless
// defaults are used. $USERHOME and $NOSUBHOME name the homes. The
// condition [userns] is false when the kernel does not let users make user
// namespaces (the scenarios then skip, saying why); [devfuse] is false
// without /dev/fuse (a kernel without FUSE). /dev/net/tun and /dev/fuse
// get their standard mode 0666 (udev's) for slirp4netns and
// fuse-overlayfs.
//
// Teardown, per user that ran berth: rm -f of its containers, then every
// mount under $WORK in its pause process's mount namespace (except the
// sealed berth.exe) is a leak, then the pause process is killed.
package main_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

type testUser struct {
	name     string
	uid, gid int
	subids   bool // has /etc/subuid and /etc/subgid ranges
}

var (
	userWithRanges = &testUser{name: "berthtest", subids: true}
	userNoRanges   = &testUser{name: "berthnosub"}
	// userProgs maps scenario program names to the user they run berth as.
	userProgs = map[string]*testUser{"berth-user": userWithRanges, "berth-nosub": userNoRanges}
)

// usernsProblem is why the kernel cannot run rootless berth ("" if it can).
var usernsProblem string

// setupTestUsers makes the test users and their subordinate ids, and lets
// them read the binary and the busybox image under dir.
func setupTestUsers(dir string) error {
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		usernsProblem = "user.max_user_namespaces is 0"
	}
	if b, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); err == nil && strings.TrimSpace(string(b)) == "0" {
		usernsProblem = "kernel.unprivileged_userns_clone is 0"
	}
	// slirp4netns (the rootless default network) opens /dev/net/tun as
	// the user: a standard system's mode is 0666, 0600 where no udev runs.
	if fi, err := os.Stat("/dev/net/tun"); err == nil && fi.Mode().Perm() != 0o666 {
		os.Chmod("/dev/net/tun", 0o666)
	}
	// So does fuse-overlayfs (rootless overlay through FUSE) with
	// /dev/fuse: 0666 is its standard mode too.
	if fi, err := os.Stat("/dev/fuse"); err == nil && fi.Mode()&os.ModeCharDevice != 0 && fi.Mode().Perm() != 0o666 {
		os.Chmod("/dev/fuse", 0o666)
	}
	for _, u := range []*testUser{userWithRanges, userNoRanges} {
		if _, err := user.Lookup(u.name); err != nil {
			out, err := exec.Command("useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", u.name).CombinedOutput()
			if err != nil {
				return fmt.Errorf("useradd %s: %v: %s", u.name, err, out)
			}
		}
		pw, err := user.Lookup(u.name)
		if err != nil {
			return err
		}
		u.uid, _ = strconv.Atoi(pw.Uid)
		u.gid, _ = strconv.Atoi(pw.Gid)
		for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
			if err := setSubIDs(f, u); err != nil {
				return err
			}
		}
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		return fmt.Errorf("newuidmap not found (apt-get install uidmap): %v", err)
	}
	// The users must reach the binary and the image.
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.IsDir() || fi.Mode()&0o111 != 0 {
			return os.Chmod(p, fi.Mode().Perm()|0o755)
		}
		return os.Chmod(p, fi.Mode().Perm()|0o644)
	})
}

// setSubIDs gives u one range of 65536 ids in file (after every range
// there) if it has none and should, or removes its lines if it should not.
func setSubIDs(file string, u *testUser) error {
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var keep []string
	has := false
	end := 100000
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Split(line, ":")
		if len(f) == 3 {
			if f[0] == u.name || f[0] == strconv.Itoa(u.uid) {
				if !u.subids {
					continue
				}
				has = true
			}
			start, _ := strconv.Atoi(f[1])
			n, _ := strconv.Atoi(f[2])
			if start+n > end {
				end = start + n
			}
		}
		keep = append(keep, line)
	}
	if u.subids && !has {
		keep = append(keep, fmt.Sprintf("%s:%d:65536", u.name, end))
	}
	out := strings.Join(keep, "\n")
	if out != "" {
		out += "\n"
	}
	if out == string(b) {
		return nil
	}
	return os.WriteFile(file, []byte(out), 0o644)
}

func usernsCondition(cond string) (bool, error) {
	switch cond {
	case "userns":
		return usernsProblem == "", nil
	case "devfuse":
		// A kernel without FUSE has no /dev/fuse (CONFIG_FUSE_FS).
		fi, err := os.Stat("/dev/fuse")
		return err == nil && fi.Mode()&os.ModeCharDevice != 0, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

func userDir(work string, u *testUser) string { return filepath.Join(work, "users", u.name) }

// userEnv makes u's directories for this scenario and returns the
// environment its programs get.
func userEnv(ts *testscript.TestScript, u *testUser) []string {
	work := scen(ts).work
	d := userDir(work, u)
	for _, sub := range []string{"", "home", "home/tmp", "run"} {
		p := filepath.Join(d, sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			ts.Fatalf("%v", err)
		}
		if err := os.Chown(p, u.uid, u.gid); err != nil {
			ts.Fatalf("%v", err)
		}
	}
	os.Chmod(filepath.Dir(d), 0o755)
	os.Chmod(d, 0o755)
	var env []string
	for _, kv := range tsEnv(ts) {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "BERTH_ROOT", "BERTH_RUNROOT", "HOME", "TMPDIR":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+filepath.Join(d, "home"), "XDG_RUNTIME_DIR="+filepath.Join(d, "run"),
		"TMPDIR="+filepath.Join(d, "home", "tmp"), "USER="+u.name, "LOGNAME="+u.name)
}

// userCred is u's identity for SysProcAttr.
func userCred(u *testUser) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}}
}

// resolveUserProg turns berth-user/berth-nosub/as-user into the program,
// its arguments, environment and identity; ok is false for other programs.
func resolveUserProg(ts *testscript.TestScript, args []string) (prog string, rest []string, env []string, attr *syscall.SysProcAttr, ok bool) {
	if len(args) == 0 {
		return "", nil, nil, nil, false
	}
	if u := userProgs[args[0]]; u != nil {
		return berthBin, args[1:], userEnv(ts, u), userCred(u), true
	}
	if args[0] == "as-user" {
		if len(args) < 2 {
			ts.Fatalf("usage: as-user prog [args...]")
		}
		prog := args[1]
		if !strings.Contains(prog, "/") {
			if p, err := lookPathIn(prog, ts.Getenv("PATH")); err == nil {
				prog = p
			}
		}
		return prog, args[2:], userEnv(ts, userWithRanges), userCred(userWithRanges), true
	}
	return "", nil, nil, nil, false
}

// cmdAsUser implements berth-user, berth-nosub and as-user.
func cmdAsUser(name string) func(ts *testscript.TestScript, neg bool, args []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		r := tsRun(ts, cmdTimeout, append([]string{name}, args...))
		if r.err != nil {
			ts.Fatalf("%s %s: %s", name, strings.Join(args, " "), r.describe())
		}
		if neg && r.code == 0 {
			ts.Fatalf("unexpected success")
		}
		if !neg && r.code != 0 {
			ts.Fatalf("%s %s: %s", name, strings.Join(args, " "), r.describe())
		}
	}
}

// pausePid is the pid of u's pause process in this scenario, or 0.
func pausePid(work string, u *testUser) int {
	b, err := os.ReadFile(filepath.Join(userDir(work, u), "run", "berth", "pause.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || !processAlive(pid) {
		return 0
	}
	return pid
}

// allPausePids lists the live pause processes recorded by any pause.pid
// under u's directory of this scenario.
func allPausePids(work string, u *testUser) []int {
	var pids []int
	filepath.WalkDir(userDir(work, u), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "pause.pid" {
			return nil
		}
		b, _ := os.ReadFile(path)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); pid > 0 && strings.Contains(string(cmd), "__pause") {
			pids = append(pids, pid)
		}
		return nil
	})
	return pids
}

// userMountLeaks lists mounts under the users' directories in their pause
// processes' mount namespaces, except the sealed binary and the rootless
// network namespace.
func userMountLeaks(work string) []string {
	var out []string
	for _, u := range []*testUser{userWithRanges, userNoRanges} {
		pid := pausePid(work, u)
		if pid == 0 {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 {
				continue
			}
			m := unescapeMountinfo(f[4])
			// Only the user's own directories: the namespace began as a
			// copy of the host's mounts (root's store's among them).
			// The rootless network namespace stays with the pause process.
			if under(m, userDir(work, u)) && filepath.Base(m) != "berth.exe" && !strings.HasSuffix(m, "/berth/netns/rootless") {
				out = append(out, fmt.Sprintf("%s (mount namespace of %s's pause process)", m, u.name))
			}
		}
	}
	sort.Strings(out)
	return out
}

// teardownUsers removes the users' containers, checks their namespaces
// for mounts, and kills their pause processes.
func teardownUsers(s *scenario) (problems []string) {
	for _, u := range []*testUser{userWithRanges, userNoRanges} {
		d := userDir(s.work, u)
		if _, err := os.Stat(d); err != nil {
			continue
		}
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(d, "home"), "XDG_RUNTIME_DIR=" + filepath.Join(d, "run"), "TMPDIR=" + filepath.Join(d, "home", "tmp")}
		if pausePid(s.work, u) != 0 {
			res := runProgAs(context.Background(), env, d, 30*time.Second, userCred(u), berthBin, "ps", "-a", "-q", "--no-trunc")
			if res.err != nil || res.code != 0 {
				problems = append(problems, fmt.Sprintf("teardown: berth ps -aq as %s: %s: %s", u.name, res.describe(), res.stderr))
			}
			for _, id := range strings.Fields(res.stdout) {
				r := runProgAs(context.Background(), env, d, 30*time.Second, userCred(u), berthBin, "rm", "-f", id)
				if r.err != nil || r.code != 0 {
					problems = append(problems, fmt.Sprintf("teardown: berth rm -f %s as %s: %s: %s", id, u.name, r.describe(), strings.TrimSpace(r.stderr)))
				}
			}
		}
	}
	// Monitors exit after their containers: give them a moment.
	deadline := time.Now().Add(5 * time.Second)
	var leaks []string
	for {
		leaks = userMountLeaks(s.work)
		if len(leaks) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range leaks {
		problems = append(problems, "leaked mount: "+m)
	}
	for _, u := range []*testUser{userWithRanges, userNoRanges} {
		// The default run root's pause process, and those of the run
		// roots the scenario gave with --runroot under the user's tree.
		for _, pid := range allPausePids(s.work, u) {
			unix.Kill(pid, unix.SIGKILL)
			for end := time.Now().Add(5 * time.Second); processAlive(pid) && time.Now().Before(end); {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	return problems
}

// cmdPauseProcess: pause-process USER (berth-user or berth-nosub) requires
// that user's pause process to be alive (with !, to be gone); with
// "kill", kills it first (a reboot's effect).
func cmdPauseProcess(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || userProgs[args[0]] == nil {
		ts.Fatalf("usage: pause-process berth-user|berth-nosub [kill]")
	}
	u := userProgs[args[0]]
	pid := pausePid(scen(ts).work, u)
	if len(args) > 1 && args[1] == "kill" {
		if pid == 0 {
			ts.Fatalf("no pause process of %s to kill", u.name)
		}
		unix.Kill(pid, unix.SIGKILL)
		for end := time.Now().Add(5 * time.Second); processAlive(pid) && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		return
	}
	if (pid != 0) == neg {
		ts.Fatalf("pause process of %s alive: %v", u.name, pid != 0)
	}
	// One per user and runtime directory, however many commands raced.
	runDir := "XDG_RUNTIME_DIR=" + filepath.Join(userDir(scen(ts).work, u), "run") + "\x00"
	var pids []int
	for _, p := range allProcs() {
		if p.cmdline == "berth "+pauseArg && strings.Contains(p.environ, runDir) {
			pids = append(pids, p.pid)
		}
	}
	if !neg && (len(pids) != 1 || pids[0] != pid) {
		ts.Fatalf("pause processes of %s: %v, want only %d (pause.pid)", u.name, pids, pid)
	}
}

const pauseArg = "__pause" // rootless.PauseArg
