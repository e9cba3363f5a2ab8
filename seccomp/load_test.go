package seccomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The load tests re-run the test binary as a child process (a loaded filter
// cannot be removed). In the child, BERTH_SECCOMP_TEST_CHILD selects the
// profile:
//
//	none             no filter (control run)
//	default          Docker's default profile, Docker's default caps
//	allcaps          Docker's default profile, all caps
//	file:PATH        profile loaded from PATH, no caps
//
// The child prints "probe=result" lines, result being "ok" or an errno name.
const childEnv = "BERTH_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(childMain(mode))
	}
	os.Exit(m.Run())
}

func childMain(mode string) int {
	// Keep this goroutine on one thread: no_new_privs is per thread and must
	// be set on the thread calling seccomp(2).
	runtime.LockOSThread()
	var p *Profile
	var caps []string
	switch {
	case mode == "none":
	case mode == "default":
		p, caps = Default(), dockerDefaultCaps
	case mode == "allcaps":
		p, caps = Default(), allCaps
	case strings.HasPrefix(mode, "file:"):
		var err error
		if p, err = LoadProfile(strings.TrimPrefix(mode, "file:")); err != nil {
			fmt.Println("error:", err)
			return 1
		}
	default:
		fmt.Println("error: bad mode", mode)
		return 1
	}
	if p != nil {
		f, err := Compile(p, Options{Capabilities: caps})
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Println("error: no_new_privs:", err)
			return 1
		}
		if err := f.Load(); err != nil {
			fmt.Println("error:", err)
			return 1
		}
	}
	runProbes(os.Getenv("BERTH_SECCOMP_TEST_DIR"))
	return 0
}

func result(err error) string {
	if err == nil {
		return "ok"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return "error(" + strings.ReplaceAll(err.Error(), " ", "_") + ")"
}

func errnoResult(e unix.Errno) string {
	if e == 0 {
		return "ok"
	}
	return unix.ErrnoName(e)
}

func statusField(status []byte, field string) string {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func runProbes(dir string) {
	out := func(k, v string) { fmt.Printf("%s=%s\n", k, v) }

	status, _ := os.ReadFile("/proc/self/status")
	out("seccomp_mode", statusField(status, "Seccomp"))

	_, _, e := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	out("getpid", errnoResult(e))

	var fds [2]int
	err := unix.Pipe2(fds[:], unix.O_CLOEXEC)
	if err == nil {
		_, err = unix.Write(fds[1], []byte("x"))
	}
	if err == nil {
		buf := make([]byte, 1)
		_, err = unix.Read(fds[0], buf)
	}
	out("pipe_write_read", result(err))

	// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
	keyring := -3
	_, _, e = unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(keyring), 0)
	out("keyctl", errnoResult(e))

	// Without a filter this fails with EINVAL (Go processes are
	// multi-threaded), so it changes nothing even when allowed.
	out("unshare_newuser", result(unix.Unshare(unix.CLONE_NEWUSER)))

	out("mount", result(unix.Mount("none", filepath.Join(dir, "does-not-exist"), "tmpfs", 0, "")))

	// clone3(NULL, 0): EINVAL from the kernel if allowed (size too small).
	_, _, e = unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
	out("clone3", errnoResult(e))

	// clone(CLONE_NEWUSER|CLONE_FS): EINVAL from the kernel if allowed (the
	// combination is invalid), so no child is ever created.
	_, _, e = unix.RawSyscall6(unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_FS, 0, 0, 0, 0, 0)
	out("clone_newuser", errnoResult(e))

	_, _, e = unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	out("personality_query", errnoResult(e))

	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		unix.Close(s)
	}
	out("socket_inet", result(err))
	s, err = unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		unix.Close(s)
	}
	out("socket_vsock", result(err))

	// mkdir / mkdirat (for the JSON profile test).
	_, _, e = unix.Syscall(unix.SYS_MKDIR, uintptr(unsafe.Pointer(bytePtr(filepath.Join(dir, "d1")))), 0o755, 0)
	out("mkdir", errnoResult(e))
	out("mkdirat", result(unix.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "d2"), 0o755)))
	out("openat_create", result(os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)))

	// New OS threads: goroutines that lock their thread while all the others
	// are still alive force the runtime to create new threads (via clone
	// with CLONE_THREAD etc.). Each checks that the filter applies to it.
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		tids    = map[int]bool{}
		keyctls = map[string]bool{}
		release = make(chan struct{})
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // the thread exits with the goroutine
			_, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(keyring), 0)
			mu.Lock()
			tids[unix.Gettid()] = true
			keyctls[errnoResult(e)] = true
			mu.Unlock()
			<-release
		}()
	}
	for {
		mu.Lock()
		done := len(tids) == n
		mu.Unlock()
		if done {
			break
		}
		runtime.Gosched()
	}
	out("threads", fmt.Sprint(len(tids)))
	var ks []string
	for k := range keyctls {
		ks = append(ks, k)
	}
	out("thread_keyctl", strings.Join(ks, ","))
	close(release)
	wg.Wait()
	runtime.GC()

	// fork+exec still works, and the filter is inherited across execve.
	cmdOut, err := exec.Command("/bin/cat", "/proc/self/status").Output()
	out("exec", result(err))
	if err == nil {
		out("exec_seccomp_mode", statusField(cmdOut, "Seccomp"))
	}
}

func bytePtr(s string) *byte {
	p, err := unix.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return p
}

// runChild runs the probes in a child process with the given mode and
// returns its results.
func runChild(t *testing.T, mode string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "BERTH_SECCOMP_TEST_DIR="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v\nstdout:\n%s\nstderr:\n%s", mode, err, outb, stderr.String())
	}
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("child %s: bad line %q\n%s", mode, line, outb)
		}
		res[k] = v
	}
	t.Logf("child %s: %v", mode, res)
	return res
}

func expectResults(t *testing.T, mode string, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q", mode, k, got[k], v)
		}
	}
}

func requireRootAmd64(t *testing.T) {
	t.Helper()
	requireAmd64(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount/keyctl control results differ otherwise)")
	}
}

func TestLoadDefaultProfile(t *testing.T) {
	requireRootAmd64(t)

	// Control: without a filter the probes get the kernel's own answers,
	// so the errors below really come from the filter.
	expectResults(t, "none", runChild(t, "none"), map[string]string{
		"seccomp_mode":      "0",
		"keyctl":            "ok",
		"socket_vsock":      "ok",
		"unshare_newuser":   "EINVAL",
		"mount":             "ENOENT",
		"clone3":            "EINVAL",
		"clone_newuser":     "EINVAL",
		"personality_query": "ok",
		"mkdir":             "ok",
	})

	expectResults(t, "default", runChild(t, "default"), map[string]string{
		"seccomp_mode":      "2",
		"getpid":            "ok",
		"pipe_write_read":   "ok",
		"keyctl":            "EPERM",
		"unshare_newuser":   "EPERM",
		"mount":             "EPERM",
		"clone3":            "ENOSYS",
		"clone_newuser":     "EPERM",
		"personality_query": "ok",
		"socket_inet":       "ok",
		"socket_vsock":      "EPERM",
		"mkdir":             "ok",
		"mkdirat":           "ok",
		"openat_create":     "ok",
		"threads":           "8",
		"thread_keyctl":     "EPERM",
		"exec":              "ok",
		"exec_seccomp_mode": "2",
	})

	// With all capabilities the CAP_SYS_ADMIN rules let these through to
	// the kernel; keyctl stays blocked (not allowed for any capability).
	expectResults(t, "allcaps", runChild(t, "allcaps"), map[string]string{
		"seccomp_mode":    "2",
		"keyctl":          "EPERM",
		"unshare_newuser": "EINVAL",
		"mount":           "ENOENT",
		"clone3":          "EINVAL",
		"clone_newuser":   "EINVAL",
		"threads":         "8",
		"exec":            "ok",
	})
}

func TestLoadProfileFromFile(t *testing.T) {
	requireRootAmd64(t)
	path := filepath.Join(t.TempDir(), "profile.json")
	// Allow everything except mkdir/mkdirat, which fail with EROFS (30).
	profile := `{
	  "defaultAction": "SCMP_ACT_ALLOW",
	  "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
	  "syscalls": [
	    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30}
	  ]
	}`
	if err := os.WriteFile(path, []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Compile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mkdir profile: %d instructions", f.Len())

	expectResults(t, "file", runChild(t, "file:"+path), map[string]string{
		"seccomp_mode":      "2",
		"mkdir":             "EROFS",
		"mkdirat":           "EROFS",
		"openat_create":     "ok",
		"keyctl":            "ok",
		"mount":             "ENOENT",
		"clone3":            "EINVAL",
		"threads":           "8",
		"exec":              "ok",
		"exec_seccomp_mode": "2",
	})
}

// TestForeignABIKilled loads a profile that covers only the native x86_64
// ABI and makes an x32-ABI syscall, which must kill the process (not be let
// through by the allow-all default).
func TestForeignABIKilled(t *testing.T) {
	requireRootAmd64(t)
	path := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(path, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestForeignABIChild$", "-test.v")
	cmd.Env = append(os.Environ(), "BERTH_SECCOMP_TEST_X32="+path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child was not killed: %v\n%s", err, out)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Fatalf("child status %v, want killed by SIGSYS\n%s", ws, out)
	}
	if !bytes.Contains(out, []byte("filter loaded")) {
		t.Fatalf("child died before loading the filter:\n%s", out)
	}
}

// TestForeignABIChild is the child half of TestForeignABIKilled.
func TestForeignABIChild(t *testing.T) {
	path := os.Getenv("BERTH_SECCOMP_TEST_X32")
	if path == "" {
		t.Skip("child of TestForeignABIKilled")
	}
	runtime.LockOSThread()
	p, err := LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Compile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	fmt.Println("filter loaded")
	os.Stdout.Sync()
	// getpid through the x32 ABI.
	unix.RawSyscall(x32SyscallBit|unix.SYS_GETPID, 0, 0, 0)
	t.Fatal("x32 syscall returned")
}
