// End-to-end tests: the real berth binary, driven by testscript scenarios in
// testdata/scripts/*.txtar, against a busybox image built from the host's
// static busybox (testdata/mkbusybox.sh).
//
// Requirements: root, /bin/busybox (busybox-static), runc. Not being root is
// a failure, not a skip: these tests are the product's acceptance tests.
//
// Environment knobs:
//
//	BERTH_BIN=/path/to/berth   use this binary instead of building one
//	BUSYBOX=/path/to/busybox   static busybox for the image (default /bin/busybox)
//	BERTH_E2E_PARALLEL=1       run scenarios in parallel (default: one at a time,
//	                           which keeps timing-sensitive scenarios stable on
//	                           2 cores and makes leak attribution exact)
//	BERTH_E2E_KEEP=1           keep the work directories (printed) for debugging
//	BERTH_E2E_CONTINUE=1       run every line of a failing scenario and report
//	                           all failures (testscript's ContinueOnError)
//	BERTH_E2E_ALLOW_MOUNTS="run/x root/y"
//	                           mounts (relative to $WORK) that may remain after
//	                           a scenario; default none. After `berth rm -f` of
//	                           everything and the exit of every berth process,
//	                           containers/storage itself keeps nothing mounted
//	                           (checked: Shutdown(false) unmounts the overlay
//	                           home), so by default any mount is a leak.
//
// $CONTRIB is the repository's contrib/ directory (unit files under test).
//
// Every scenario starts with an empty store under $WORK/root and
// $WORK/run into which busybox has been imported as "busybox" (CMD ["sh"]).
// At the end of every scenario the harness removes all containers, waits for
// berth's processes to exit, and fails the scenario if any process, mount,
// cgroup, veth, user network bridge or nftables table of the scenario is
// left behind (the store's default bridge and its table are removed by the
// harness).
//
// Commands available to scenarios besides testscript's built-ins:
//
//	berth ARGS...               run the berth binary (like exec, but with a 30s
//	                            hard timeout and a bounded wait for its output
//	                            pipes, so a daemonizing bug cannot hang the suite)
//	exitcode N PROG ARGS...     run PROG and require exit status N
//	capture VAR PROG ARGS...    run PROG (must succeed; with !, must fail) and set
//	                            $VAR to its trimmed stdout
//	waitfor [-t DUR] RE PROG ARGS...
//	                            rerun PROG until its stdout matches RE (with !,
//	                            until it does not); default bound 10s
//	within DUR PROG ARGS...     run PROG, require success in at most DUR
//	sleep DUR                   e.g. sleep 500ms
//	mountleaks                  fail if anything is mounted under $WORK or on a
//	                            path naming one of the scenario's containers
//	                            (use when no container is running)
//	cgroupleaks                 fail if a cgroup named after a container of this
//	                            scenario that no longer exists remains
//	netleaks                    fail if a veth of the scenario's store exists
//	                            (use when no container is running)
//	kill-monitor ID             SIGKILL the berth process(es) supervising ID
//	exe-readonly PID            require /proc/PID/exe to be on a read-only mount
//	berth-user ARGS..., berth-nosub ARGS..., as-user PROG ARGS...
//	                            berth (or PROG) as an ordinary test user, for the
//	                            rootless scenarios; pause-process USER [kill]
//	                            (see rootless_e2e_test.go)
//
// Commands run by berth/exitcode/capture/waitfor/within get the scenario's
// environment variables WORK PATH HOME TMPDIR BERTH_ROOT BERTH_RUNROOT
// BUSYBOX_TAR UDPECHO SDNOTIFY BERTH_BIN REGISTRY REGISTRY_DATA AUTH_REGISTRY REGISTRY_AUTH_FILE
// BERTH_REGISTRY_LOOPBACK_ONLY plus those named in $E2E_PASSENV (space
// separated); their stdin is empty. Use exec for stdin or other variables.
//
// Registries: TestMain starts two instances of Debian's docker-registry
// (needs docker-registry and apache2-utils) on free 127.0.0.1 ports, shared
// by all scenarios: $REGISTRY (open) and $AUTH_REGISTRY (htpasswd, user
// "user", password "pass"). Scenarios get REGISTRY_AUTH_FILE=$WORK/auth.json
// and BERTH_REGISTRY_LOOPBACK_ONLY=1, so berth refuses any registry host
// that is not loopback: no scenario can reach docker.io.
package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/netns"
)

var (
	berthBin   string // absolute path of the berth binary under test
	busyboxTar string // absolute path of the busybox image tarball
)

const buildTags = "exclude_graphdriver_btrfs"

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: berth's end-to-end tests must run as root (they create containers, mounts and cgroups); not skipping")
		return 1
	}
	tmp, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if b := os.Getenv("BERTH_BIN"); b != "" {
		berthBin, err = filepath.Abs(b)
		if err == nil {
			_, err = os.Stat(berthBin)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: BERTH_BIN:", err)
			return 1
		}
	} else {
		berthBin = filepath.Join(tmp, "bin", "berth")
		cmd := exec.Command(goToolPath(), "build", "-tags", buildTags, "-o", berthBin, ".")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building berth: %v\n", err)
			return 1
		}
	}

	busyboxTar = filepath.Join(tmp, "busybox.tar")
	cmd := exec.Command("sh", "testdata/mkbusybox.sh", busyboxTar)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the busybox image (needs busybox-static): %v\n", err)
		return 1
	}

	// Rootless scenarios: two ordinary users, and everything under tmp
	// readable by them (rootless_e2e_test.go).
	if err := setupTestUsers(tmp); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: rootless test users: %v\n", err)
		return 1
	}

	// A static UDP echo helper for containers ($UDPECHO): busybox-static's
	// nc has no UDP.
	if udpechoBin, err = buildStaticHelper(tmp, "udpecho"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	// A fake systemd notify socket and client ($SDNOTIFY), static so that
	// it also runs inside containers (--sdnotify=container).
	if sdnotifyBin, err = buildStaticHelper(tmp, "sdnotify"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	// Two local registries shared by all scenarios: $REGISTRY (open) and
	// $AUTH_REGISTRY (htpasswd: user / pass). Only 127.0.0.1 is ever used.
	registryData = filepath.Join(tmp, "registry", "data")
	stopRegistry, err := startRegistry(filepath.Join(tmp, "registry"), false, &registryAddr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: starting docker-registry (apt-get install docker-registry apache2-utils): %v\n", err)
		return 1
	}
	defer stopRegistry()
	stopAuthRegistry, err := startRegistry(filepath.Join(tmp, "auth-registry"), true, &authRegistryAddr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: starting docker-registry with htpasswd auth: %v\n", err)
		return 1
	}
	defer stopAuthRegistry()
	return m.Run()
}

// buildStaticHelper builds the test helper testdata/NAME as a static
// binary (it runs inside containers too) into tmp/bin.
func buildStaticHelper(tmp, name string) (string, error) {
	bin := filepath.Join(tmp, "bin", name)
	cmd := exec.Command(goToolPath(), "build", "-o", bin, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building testdata/%s: %w", name, err)
	}
	return bin, nil
}

// goToolPath is the go command that runs the tests.
func goToolPath() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

var (
	udpechoBin       string // testdata/udpecho, built static
	sdnotifyBin      string // testdata/sdnotify, built static
	registryAddr     string // 127.0.0.1:PORT of the open test registry
	registryData     string // its storage directory (for scenarios that corrupt a blob)
	authRegistryAddr string // 127.0.0.1:PORT of the registry that wants user/pass
)

// startRegistry runs Debian's docker-registry on a free loopback port with
// its storage under dir, optionally with htpasswd (bcrypt) auth for
// user/pass. Its log is dir/registry.log (one line per request).
func startRegistry(dir string, auth bool, addr *string) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	*addr = l.Addr().String()
	l.Close()
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n  secret: berth-e2e\n",
		filepath.Join(dir, "data"), *addr)
	if auth {
		out, err := exec.Command("htpasswd", "-Bbn", "user", "pass").Output()
		if err != nil {
			return nil, fmt.Errorf("htpasswd: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), out, 0o644); err != nil {
			return nil, err
		}
		config += fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-e2e\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("docker-registry", "serve", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	stop = func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + *addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(logFile.Name())
			return nil, fmt.Errorf("registry on %s did not come up: %v\n%s", *addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scriptT adapts *testing.T to testscript.T; Parallel is a no-op unless
// BERTH_E2E_PARALLEL is set.
type scriptT struct {
	*testing.T
	parallel bool
}

func (t scriptT) Parallel() {
	if t.parallel {
		t.T.Parallel()
	}
}

func (t scriptT) Run(name string, f func(testscript.T)) {
	t.T.Run(name, func(tt *testing.T) { f(scriptT{tt, t.parallel}) })
}

func (t scriptT) Verbose() bool { return testing.Verbose() }

func TestScripts(t *testing.T) {
	// Short work directories: berth puts unix sockets under $WORK/run and
	// sun_path is limited to 108 bytes.
	root, err := os.MkdirTemp("/tmp", "bt")
	if err != nil {
		t.Fatal(err)
	}
	keep := os.Getenv("BERTH_E2E_KEEP") != ""
	os.Chmod(root, 0o755) // rootless scenarios' users work below
	t.Cleanup(func() {
		if keep {
			t.Logf("work directories kept under %s", root)
			return
		}
		if m := mountsUnder(root); len(m) > 0 {
			t.Errorf("not removing %s: still mounted: %v", root, m)
			return
		}
		os.RemoveAll(root)
	})
	p := testscript.Params{
		Dir:             "testdata/scripts",
		WorkdirRoot:     root,
		ContinueOnError: os.Getenv("BERTH_E2E_CONTINUE") != "",
		Setup:           setupScenario,
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"berth":        cmdBerth,
			"exitcode":     cmdExitcode,
			"capture":      cmdCapture,
			"waitfor":      cmdWaitfor,
			"within":       cmdWithin,
			"sleep":        cmdSleep,
			"mountleaks":   cmdMountleaks,
			"cgroupleaks":  cmdCgroupleaks,
			"netleaks":     cmdNetleaks,
			"kill-monitor": cmdKillMonitor,
			"exe-readonly": cmdExeReadonly,
			// rootless_e2e_test.go
			"berth-user":    cmdAsUser("berth-user"),
			"berth-nosub":   cmdAsUser("berth-nosub"),
			"as-user":       cmdAsUser("as-user"),
			"pause-process": cmdPauseProcess,
		},
		Condition: usernsCondition,
	}
	if d, ok := t.Deadline(); ok {
		p.Deadline = d
	}
	testscript.RunT(scriptT{t, os.Getenv("BERTH_E2E_PARALLEL") != ""}, p)
}

// scenario is the harness's per-scenario state, kept in Env.Values.
type scenario struct {
	work     string
	tracker  *idTracker
	cgBefore map[string]bool // berth cgroup dirs that existed before the scenario
}

type scenarioKey struct{}

func scen(ts *testscript.TestScript) *scenario {
	s, _ := ts.Value(scenarioKey{}).(*scenario)
	if s == nil {
		ts.Fatalf("harness: no scenario state")
	}
	return s
}

func setupScenario(env *testscript.Env) error {
	work := env.WorkDir
	s := &scenario{work: work, cgBefore: map[string]bool{}}
	for _, d := range berthCgroupDirs() {
		s.cgBefore[d] = true
	}
	s.tracker = newIDTracker(work)
	env.Values[scenarioKey{}] = s

	env.Setenv("PATH", filepath.Dir(berthBin)+string(os.PathListSeparator)+env.Getenv("PATH"))
	env.Setenv("BERTH_ROOT", filepath.Join(work, "root"))
	env.Setenv("BERTH_RUNROOT", filepath.Join(work, "run"))
	env.Setenv("BUSYBOX_TAR", busyboxTar)
	env.Setenv("UDPECHO", udpechoBin)
	env.Setenv("SDNOTIFY", sdnotifyBin)
	env.Setenv("BERTH_BIN", berthBin)
	if d, err := filepath.Abs("contrib"); err == nil {
		env.Setenv("CONTRIB", d)
	}
	env.Setenv("REGISTRY", registryAddr)
	env.Setenv("REGISTRY_DATA", registryData)
	env.Setenv("AUTH_REGISTRY", authRegistryAddr)
	env.Setenv("REGISTRY_AUTH_FILE", filepath.Join(work, "auth.json"))
	env.Setenv("BERTH_REGISTRY_LOOPBACK_ONLY", "1") // nothing may reach docker.io
	env.Setenv("USERHOME", filepath.Join(userDir(work, userWithRanges), "home"))
	env.Setenv("NOSUBHOME", filepath.Join(userDir(work, userNoRanges), "home"))
	os.Chmod(work, 0o755)

	// Registered before the import so it runs even if the import fails.
	env.Defer(func() { teardown(env, s) })

	res := runProg(context.Background(), envList(env.Getenv, env.Getenv("E2E_PASSENV")), work,
		30*time.Second, berthBin, "import", busyboxTar, "busybox", "--change", `CMD ["sh"]`)
	s.tracker.noteOutput(res.stdout)
	if res.err != nil || res.code != 0 {
		return fmt.Errorf("setup: berth import busybox: %s\nstdout:\n%s\nstderr:\n%s", res.describe(), res.stdout, res.stderr)
	}
	return nil
}

// teardown removes every container of the scenario and checks for leaks.
func teardown(env *testscript.Env, s *scenario) {
	t := env.T()
	var problems []string
	logf := func(format string, args ...any) { t.Log(fmt.Sprintf(format, args...)) }
	envv := envList(env.Getenv, "")
	ctx := context.Background()

	// Rootless users first: their pause processes are the scenario's too.
	problems = append(problems, teardownUsers(s)...)

	res := runProg(ctx, envv, s.work, 30*time.Second, berthBin, "ps", "-a", "-q", "--no-trunc")
	if res.err != nil || res.code != 0 {
		problems = append(problems, fmt.Sprintf("teardown: berth ps -aq --no-trunc: %s: %s", res.describe(), res.stderr))
		res = runProg(ctx, envv, s.work, 30*time.Second, berthBin, "ps", "-a", "-q")
	}
	s.tracker.noteOutput(res.stdout)
	for _, id := range strings.Fields(res.stdout) {
		r := runProg(ctx, envv, s.work, 30*time.Second, berthBin, "rm", "-f", id)
		if r.err != nil || r.code != 0 {
			problems = append(problems, fmt.Sprintf("teardown: berth rm -f %s: %s: %s", id, r.describe(), strings.TrimSpace(r.stderr)))
		}
	}

	// Wait for the scenario's berth processes (monitors, containers) to exit.
	var procs []proc
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs = scenarioProcs(s)
		if len(procs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(procs) > 0 {
		for _, p := range procs {
			problems = append(problems, fmt.Sprintf("leaked process %d still running 10s after rm -f: %s", p.pid, p.cmdline))
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.tracker.close()

	// Mounts.
	leaks := mountLeaks(s)
	for _, m := range leaks {
		hint := ""
		switch {
		case m == filepath.Join(s.work, "root", "storage", "overlay"):
			hint = " (containers/storage's overlay home bind mount: some berth command exited without Store.Close/Shutdown)"
		}
		problems = append(problems, "leaked mount: "+m+hint)
	}

	// Cgroups.
	cg, unattributed := cgroupLeaks(s, nil)
	for _, d := range cg {
		problems = append(problems, "leaked cgroup: "+d)
	}
	for _, d := range unattributed {
		logf("note: cgroup %s appeared during this scenario but is not known to belong to it", d)
	}

	// Network devices and nftables tables of the scenario's store. The
	// default bridge's are the harness's to remove; a container veth or a
	// user network left behind is a leak.
	for _, p := range networkLeaks(s) {
		problems = append(problems, p)
	}

	// Force cleanup so the work directory can be removed.
	for _, m := range mountsUnder(s.work) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			logf("teardown: umount %s: %v", m, err)
		}
	}
	for _, d := range cg {
		os.Remove(d) // rmdir; only works for an empty cgroup
	}

	if len(problems) > 0 {
		t.Fatal("teardown found problems:\n\t" + strings.Join(problems, "\n\t"))
	}
}

// ---------------------------------------------------------------------------
// Running programs.

type result struct {
	stdout, stderr string
	code           int // exit status; -1 if killed by a signal or not started
	err            error
	elapsed        time.Duration
	timedOut       bool
}

func (r result) describe() string {
	switch {
	case r.timedOut:
		return fmt.Sprintf("timed out after %v", r.elapsed.Round(time.Millisecond))
	case r.err != nil:
		return r.err.Error()
	default:
		return fmt.Sprintf("exit status %d", r.code)
	}
}

var passenvDefault = []string{"WORK", "PATH", "HOME", "TMPDIR", "BERTH_ROOT", "BERTH_RUNROOT", "BUSYBOX_TAR", "UDPECHO", "SDNOTIFY", "BERTH_BIN",
	"REGISTRY", "REGISTRY_DATA", "AUTH_REGISTRY", "REGISTRY_AUTH_FILE", "BERTH_REGISTRY_LOOPBACK_ONLY"}

func envList(getenv func(string) string, extra string) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range append(append([]string{}, passenvDefault...), strings.Fields(extra)...) {
		if seen[k] {
			continue
		}
		seen[k] = true
		if v := getenv(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func tsEnv(ts *testscript.TestScript) []string {
	return envList(ts.Getenv, ts.Getenv("E2E_PASSENV"))
}

// runProg runs prog with a hard timeout. Output pipes held open by
// descendants (a detached monitor that kept stdout) do not block for more
// than a few seconds; that case is reported as an error.
func runProg(ctx context.Context, env []string, dir string, timeout time.Duration, prog string, args ...string) result {
	return runProgAs(ctx, env, dir, timeout, nil, prog, args...)
}

// runProgAs is runProg with process attributes (another user's identity).
func runProgAs(ctx context.Context, env []string, dir string, timeout time.Duration, attr *syscall.SysProcAttr, prog string, args ...string) result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.SysProcAttr = attr
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdin = nil // /dev/null
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start), code: -1}
	if ctx.Err() == context.DeadlineExceeded {
		r.timedOut = true
		r.err = ctx.Err()
		return r
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.code = 0
	case errors.Is(err, exec.ErrWaitDelay):
		r.code = cmd.ProcessState.ExitCode()
		r.err = fmt.Errorf("%s exited (status %d) but a descendant kept its stdout/stderr open", filepath.Base(prog), r.code)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if r.code < 0 {
			r.err = fmt.Errorf("%v", ee)
		}
	default:
		r.err = err
	}
	return r
}

// tsRun runs a program for a custom command, logs and publishes its output
// as the script's stdout/stderr, and records container IDs it printed.
func tsRun(ts *testscript.TestScript, timeout time.Duration, args []string) result {
	if len(args) == 0 {
		ts.Fatalf("missing program")
	}
	prog, rest, env, attr, ok := resolveUserProg(ts, args)
	if !ok {
		prog, rest, env = args[0], args[1:], tsEnv(ts)
		if prog == "berth" {
			prog = berthBin
		} else if !strings.Contains(prog, "/") {
			if p, err := lookPathIn(prog, ts.Getenv("PATH")); err == nil {
				prog = p
			}
		}
	}
	r := runProgAs(context.Background(), env, ts.MkAbs("."), timeout, attr, prog, rest...)
	fmt.Fprint(ts.Stdout(), r.stdout)
	fmt.Fprint(ts.Stderr(), r.stderr)
	scen(ts).tracker.noteOutput(r.stdout)
	return r
}

func lookPathIn(prog, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

const cmdTimeout = 30 * time.Second

// berth ARGS...
func cmdBerth(ts *testscript.TestScript, neg bool, args []string) {
	r := tsRun(ts, cmdTimeout, append([]string{"berth"}, args...))
	if r.err != nil {
		ts.Fatalf("berth %s: %s", strings.Join(args, " "), r.describe())
	}
	if neg && r.code == 0 {
		ts.Fatalf("unexpected success")
	}
	if !neg && r.code != 0 {
		ts.Fatalf("berth %s: %s", strings.Join(args, " "), r.describe())
	}
}

// exitcode N PROG ARGS...
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N prog [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: bad status %q", args[0])
	}
	r := tsRun(ts, cmdTimeout, args[1:])
	if r.err != nil {
		ts.Fatalf("%s: %s", args[1], r.describe())
	}
	if r.code != want {
		ts.Fatalf("%s: exit status %d, want %d", args[1], r.code, want)
	}
}

// capture VAR PROG ARGS...
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: capture VAR prog [args...]")
	}
	r := tsRun(ts, cmdTimeout, args[1:])
	if r.err != nil {
		ts.Fatalf("%s: %s", args[1], r.describe())
	}
	if neg != (r.code != 0) {
		ts.Fatalf("%s: %s", args[1], r.describe())
	}
	ts.Setenv(args[0], strings.TrimSpace(r.stdout))
}

// waitfor [-t DUR] REGEXP PROG ARGS...
func cmdWaitfor(ts *testscript.TestScript, neg bool, args []string) {
	bound := 10 * time.Second
	if len(args) > 1 && args[0] == "-t" {
		d, err := time.ParseDuration(args[1])
		if err != nil {
			ts.Fatalf("waitfor: %v", err)
		}
		bound, args = d, args[2:]
	}
	if len(args) < 2 {
		ts.Fatalf("usage: waitfor [-t dur] regexp prog [args...]")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	if err != nil {
		ts.Fatalf("waitfor: %v", err)
	}
	prog := append([]string{}, args[1:]...)
	env := tsEnv(ts)
	var attr *syscall.SysProcAttr
	if p, rest, uenv, uattr, ok := resolveUserProg(ts, prog); ok {
		prog, env, attr = append([]string{p}, rest...), uenv, uattr
	} else if prog[0] == "berth" {
		prog = append([]string{berthBin}, prog[1:]...)
	} else if !strings.Contains(prog[0], "/") {
		if p, err := lookPathIn(prog[0], ts.Getenv("PATH")); err == nil {
			prog[0] = p
		}
	}
	deadline := time.Now().Add(bound)
	var last result
	for {
		last = runProgAs(context.Background(), env, ts.MkAbs("."), cmdTimeout, attr, prog[0], prog[1:]...)
		scen(ts).tracker.noteOutput(last.stdout)
		if last.err == nil && re.MatchString(last.stdout) != neg {
			fmt.Fprint(ts.Stdout(), last.stdout)
			fmt.Fprint(ts.Stderr(), last.stderr)
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprint(ts.Stdout(), last.stdout)
	fmt.Fprint(ts.Stderr(), last.stderr)
	what := "match"
	if neg {
		what = "stop matching"
	}
	ts.Fatalf("waitfor: output of %s did not %s %q within %v (last: %s)", args[1], what, args[0], bound, last.describe())
}

// within DUR PROG ARGS...
func cmdWithin(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! within")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: within dur prog [args...]")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		ts.Fatalf("within: %v", err)
	}
	r := tsRun(ts, d+cmdTimeout, args[1:])
	if r.err != nil || r.code != 0 {
		ts.Fatalf("%s: %s", args[1], r.describe())
	}
	if r.elapsed > d {
		ts.Fatalf("%s took %v, want at most %v", args[1], r.elapsed.Round(time.Millisecond), d)
	}
}

// sleep DUR
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep duration")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		ts.Fatalf("sleep: %v", err)
	}
	time.Sleep(d)
}

// mountleaks
func cmdMountleaks(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: mountleaks")
	}
	if m := append(mountLeaks(scen(ts)), userMountLeaks(scen(ts).work)...); len(m) > 0 {
		ts.Fatalf("leaked mounts:\n\t%s", strings.Join(m, "\n\t"))
	}
}

// cgroupleaks
func cmdCgroupleaks(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: cgroupleaks")
	}
	r := runProg(context.Background(), tsEnv(ts), ts.MkAbs("."), cmdTimeout, berthBin, "ps", "-a", "-q", "--no-trunc")
	if r.err != nil || r.code != 0 {
		ts.Fatalf("berth ps -aq --no-trunc: %s: %s", r.describe(), r.stderr)
	}
	existing := map[string]bool{}
	for _, id := range strings.Fields(r.stdout) {
		existing[id] = true
	}
	if cg, _ := cgroupLeaks(scen(ts), existing); len(cg) > 0 {
		ts.Fatalf("leaked cgroups of removed containers:\n\t%s", strings.Join(cg, "\n\t"))
	}
}

// kill-monitor ID
// exe-readonly PID: the executable of PID lives on a read-only mount
// (statfs of /proc/PID/exe reports ST_RDONLY), so it cannot be rewritten
// through that path even after the process exits (CVE-2019-5736).
func cmdExeReadonly(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: exe-readonly PID")
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/proc/"+args[0]+"/exe", &st); err != nil {
		ts.Fatalf("statfs /proc/%s/exe: %v", args[0], err)
	}
	ro := st.Flags&unix.ST_RDONLY != 0
	if ro == neg {
		ts.Fatalf("executable of pid %s on a read-only mount: %v", args[0], ro)
	}
}

func cmdKillMonitor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: kill-monitor container")
	}
	var r result
	for _, f := range []string{"{{.Id}}", "{{.ID}}"} { // docker's JSON name, Go's field name
		r = runProg(context.Background(), tsEnv(ts), ts.MkAbs("."), cmdTimeout, berthBin, "inspect", "-f", f, args[0])
		if r.err == nil && r.code == 0 {
			break
		}
	}
	id := strings.TrimSpace(r.stdout)
	if r.err != nil || r.code != 0 || !hexID.MatchString(id) {
		ts.Fatalf("berth inspect %s: %s: %s%s", args[0], r.describe(), r.stdout, r.stderr)
	}
	var killed []int
	for _, p := range allProcs() {
		if p.isBerth && (strings.Contains(p.cmdline, id) || strings.Contains(p.environ, id)) {
			if err := syscall.Kill(p.pid, syscall.SIGKILL); err == nil {
				killed = append(killed, p.pid)
				ts.Logf("killed %d: %s", p.pid, p.cmdline)
			}
		}
	}
	if len(killed) == 0 {
		ts.Fatalf("kill-monitor: no berth process mentions container %s in its command line or environment", id)
	}
	// Wait for them to be gone (they are not our children: poll /proc).
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range killed {
		for processAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// ---------------------------------------------------------------------------
// Processes.

type proc struct {
	pid       int
	cmdline   string // NULs replaced by spaces
	environ   string
	cgroup    string // /proc/PID/cgroup
	root, cwd string
	isBerth   bool
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// State is the field after the parenthesised comm; zombies count as gone.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

func allProcs() []proc {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	binFI, _ := os.Stat(berthBin)
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || !processAlive(pid) {
			continue
		}
		dir := "/proc/" + e.Name()
		cl, _ := os.ReadFile(dir + "/cmdline")
		envb, _ := os.ReadFile(dir + "/environ")
		p := proc{pid: pid, cmdline: strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " ")), environ: string(envb)}
		cg, _ := os.ReadFile(dir + "/cgroup")
		p.cgroup = string(cg)
		p.root, _ = os.Readlink(dir + "/root")
		p.cwd, _ = os.Readlink(dir + "/cwd")
		if fi, err := os.Stat(dir + "/exe"); err == nil && binFI != nil && os.SameFile(fi, binFI) {
			p.isBerth = true
		}
		out = append(out, p)
	}
	return out
}

func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// mentionsPath reports whether s contains dir as a whole path or a path
// prefix ("/tmp/x/script-run" does not mention "/tmp/x/script-ru").
func mentionsPath(s, dir string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], dir)
		if j < 0 {
			return false
		}
		end := i + j + len(dir)
		if end == len(s) || strings.IndexByte("/ \x00=:\n", s[end]) >= 0 {
			return true
		}
		i = i + j + 1
	}
}

// scenarioProcs returns live processes that belong to the scenario: those
// whose root or cwd is under $WORK or whose cgroup is named after one of the
// scenario's containers (container processes), whose command line or
// environment names $WORK (berth and its monitors), and berth processes that
// name one of the scenario's container IDs.
func scenarioProcs(s *scenario) []proc {
	ids := s.tracker.snapshot()
	var out []proc
	for _, p := range allProcs() {
		match := under(p.root, s.work) || under(p.cwd, s.work) ||
			mentionsPath(p.cmdline, s.work) || mentionsPath(p.environ, s.work)
		if !match {
			for id := range ids {
				if strings.Contains(p.cgroup, id) ||
					p.isBerth && (strings.Contains(p.cmdline, id) || strings.Contains(p.environ, id)) {
					match = true
					break
				}
			}
		}
		if match {
			out = append(out, p)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Mounts.

// mountPoints returns all mount points of this mount namespace, unescaped.
func mountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		out = append(out, unescapeMountinfo(f[4]))
	}
	return out
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsUnder returns mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	var out []string
	for _, m := range mountPoints() {
		if under(m, dir) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		di, dj := strings.Count(out[i], "/"), strings.Count(out[j], "/")
		if di != dj {
			return di > dj
		}
		return out[i] > out[j]
	})
	return out
}

// mountLeaks returns mounts under $WORK and mounts anywhere whose path names
// one of the scenario's container IDs.
func mountLeaks(s *scenario) []string {
	ids := s.tracker.snapshot()
	allowed := map[string]bool{}
	for _, rel := range strings.Fields(os.Getenv("BERTH_E2E_ALLOW_MOUNTS")) {
		allowed[filepath.Join(s.work, rel)] = true
	}
	var out []string
	for _, m := range mountPoints() {
		if allowed[m] {
			continue
		}
		// RUNROOT/berth.exe is berth's sealed binary (oci.SealedExe): a
		// read-only bind mount kept until reboot by design, shared by all
		// containers of that run root; the teardown unmounts it.
		if filepath.Base(m) == "berth.exe" && under(m, s.work) {
			continue
		}
		if under(m, s.work) {
			out = append(out, m)
			continue
		}
		for id := range ids {
			if strings.Contains(m, id) {
				out = append(out, m)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------------------
// Network devices.

// networkLeaks removes the store's default bridge and its nftables table,
// then reports (and removes) any other bridge, veth or table named after
// the scenario's store (netns.DevicePrefix, netns.VethPrefix).
func networkLeaks(s *scenario) []string {
	var out []string
	for _, root := range scenarioStores(s) {
		out = append(out, storeNetworkLeaks(root)...)
	}
	return out
}

// scenarioStores lists the scenario's store roots: its own, and those a
// scenario made with --root under its work directory (any directory with
// a networks/ subdirectory, up to three levels down).
func scenarioStores(s *scenario) []string {
	roots := []string{filepath.Join(s.work, "root")}
	filepath.WalkDir(s.work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(s.work, p)
		if strings.Count(rel, string(filepath.Separator)) >= 3 {
			return filepath.SkipDir
		}
		if d.Name() == "networks" && filepath.Dir(p) != roots[0] {
			roots = append(roots, filepath.Dir(p))
			return filepath.SkipDir
		}
		return nil
	})
	return roots
}

func storeNetworkLeaks(root string) []string {
	def := netns.DefaultBridgeName(root)
	netns.RemoveDevice(def)
	netns.RemoveTable(def)
	var out []string
	// The veths of exited containers go with their network namespaces,
	// which the kernel tears down in the background: give it a moment.
	bridges, veths, tables := netns.Leftovers(root)
	for deadline := time.Now().Add(3 * time.Second); len(veths) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		bridges, veths, tables = netns.Leftovers(root)
	}
	for _, v := range veths {
		out = append(out, "leaked veth: "+v)
		netns.RemoveDevice(v)
	}
	for _, b := range bridges {
		out = append(out, "leaked bridge (berth network rm missing?): "+b)
		netns.RemoveDevice(b)
	}
	for _, t := range tables {
		out = append(out, "leaked nftables table: ip "+t)
		netns.RemoveTable(t)
	}
	return out
}

// netleaks: fail if a veth of the scenario's store still exists 3s later
// (use when no container runs; the kernel deletes the veths of a
// container's namespace in the background once its processes are gone).
func cmdNetleaks(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: netleaks")
	}
	root := filepath.Join(scen(ts).work, "root")
	_, veths, _ := netns.Leftovers(root)
	for deadline := time.Now().Add(3 * time.Second); len(veths) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		_, veths, _ = netns.Leftovers(root)
	}
	if len(veths) > 0 {
		ts.Fatalf("leaked veths:\n\t%s", strings.Join(veths, "\n\t"))
	}
}

// ---------------------------------------------------------------------------
// Cgroups.

// berthCgroupDirs lists /sys/fs/cgroup/*/berth/* (v1 and hybrid) and
// /sys/fs/cgroup/berth/* (v2).
func berthCgroupDirs() []string {
	var out []string
	for _, pat := range []string{"/sys/fs/cgroup/berth/*", "/sys/fs/cgroup/*/berth/*"} {
		m, _ := filepath.Glob(pat)
		for _, d := range m {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				out = append(out, d)
			}
		}
	}
	sort.Strings(out)
	return out
}

// cgroupLeaks returns berth cgroup dirs named after a container ID of this
// scenario (except the IDs in keep), and, separately, dirs that appeared
// during the scenario without being attributable to it.
func cgroupLeaks(s *scenario, keep map[string]bool) (leaks, unattributed []string) {
	ids := s.tracker.snapshot()
	for _, d := range berthCgroupDirs() {
		base := filepath.Base(d)
		found := false
		for id := range ids {
			if strings.Contains(base, id) {
				found = true
				if !keep[id] {
					leaks = append(leaks, d)
				}
				break
			}
		}
		if !found && !s.cgBefore[d] {
			unattributed = append(unattributed, d)
		}
	}
	return leaks, unattributed
}

// ---------------------------------------------------------------------------
// Container ID tracking.
//
// Containers removed during a scenario (run --rm, rm) are no longer listed by
// `berth ps -a`, yet their cgroups and mounts must be gone too. The tracker
// learns every container ID of the scenario from (a) 64-hex names created
// under $WORK (berth's per-container state files or dirs), seen through
// inotify so short-lived containers are not missed, and (b) 64-hex words in
// the output of berth commands run through the harness.

var hexID = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

const trackDepth = 4 // $WORK/root/containers/<id> is depth 3

type idTracker struct {
	mu      sync.Mutex
	ids     map[string]bool
	fd      int
	f       *os.File
	watches map[int32]watched
	done    chan struct{}
}

type watched struct {
	path  string
	depth int
}

func newIDTracker(work string) *idTracker {
	t := &idTracker{ids: map[string]bool{}, watches: map[int32]watched{}, done: make(chan struct{})}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		close(t.done)
		return t
	}
	// NewFile registers the non-blocking fd with the runtime poller, so
	// Close unblocks a pending Read. (Never call t.f.Fd(): it would switch
	// the fd back to blocking mode.)
	t.fd = fd
	t.f = os.NewFile(uintptr(fd), "inotify")
	t.addWatch(work, 0)
	go t.loop()
	return t
}

func (t *idTracker) note(name string) {
	for _, id := range hexID.FindAllString(name, -1) {
		t.mu.Lock()
		t.ids[id] = true
		t.mu.Unlock()
	}
}

func (t *idTracker) noteOutput(s string) { t.note(s) }

func (t *idTracker) snapshot() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := make(map[string]bool, len(t.ids))
	for k := range t.ids {
		m[k] = true
	}
	return m
}

func skipDir(name string) bool {
	// containers/storage's trees are large and their IDs are layer IDs.
	return name == "storage" || name == ".tmp" || name == "overlay" || name == "overlay-layers"
}

func (t *idTracker) addWatch(path string, depth int) {
	t.note(filepath.Base(path))
	if depth > trackDepth || (depth > 0 && skipDir(filepath.Base(path))) {
		return
	}
	wd, err := unix.InotifyAddWatch(t.fd, path, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR)
	if err != nil {
		return
	}
	t.mu.Lock()
	t.watches[int32(wd)] = watched{path, depth}
	t.mu.Unlock()
	// Entries created before the watch was in place.
	ents, _ := os.ReadDir(path)
	for _, e := range ents {
		t.note(e.Name())
		if e.IsDir() {
			t.addWatch(filepath.Join(path, e.Name()), depth+1)
		}
	}
}

func (t *idTracker) loop() {
	defer close(t.done)
	buf := make([]byte, 64*1024)
	for {
		n, err := t.f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := ""
			if ev.Len > 0 {
				nb := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				name = string(bytes.TrimRight(nb, "\x00"))
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
			t.mu.Lock()
			w, ok := t.watches[ev.Wd]
			if ev.Mask&unix.IN_IGNORED != 0 {
				delete(t.watches, ev.Wd)
			}
			t.mu.Unlock()
			if name == "" {
				continue
			}
			t.note(name)
			if ok && ev.Mask&unix.IN_ISDIR != 0 {
				t.addWatch(filepath.Join(w.path, name), w.depth+1)
			}
		}
	}
}

func (t *idTracker) close() {
	if t.f != nil {
		t.f.Close()
		<-t.done
		t.f = nil
	}
}
