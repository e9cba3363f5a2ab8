package rootless

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestSubIDs(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(f, []byte("alice:100000:65536\nbob:165536:65536\n# comment\n1003:300000:10\nalice:400000:5\nbad:x:1\n"), 0o644)
	got := SubIDs(f, "alice", 1001)
	if len(got) != 2 || got[0] != (IDRange{100000, 65536}) || got[1] != (IDRange{400000, 5}) {
		t.Errorf("alice: %v", got)
	}
	if got := SubIDs(f, "carol", 1003); len(got) != 1 || got[0] != (IDRange{300000, 10}) {
		t.Errorf("by uid: %v", got)
	}
	if got := SubIDs(f, "nobody", 9); got != nil {
		t.Errorf("nobody: %v", got)
	}
	if got := SubIDs(filepath.Join(t.TempDir(), "missing"), "alice", 1); got != nil {
		t.Errorf("missing file: %v", got)
	}
}

func TestPaths(t *testing.T) {
	t.Setenv(UidEnv, "4242")
	t.Setenv("HOME", "/home/u")
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("TMPDIR", "/tmp")
	if got := DataDir(); got != "/home/u/.local/share/berth" {
		t.Errorf("DataDir: %s", got)
	}
	if got := RunDir(); got != "/tmp/berth-run-4242" {
		t.Errorf("RunDir without XDG_RUNTIME_DIR: %s", got)
	}
	t.Setenv("XDG_DATA_HOME", "/data")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/4242")
	if got := DataDir(); got != "/data/berth" {
		t.Errorf("DataDir: %s", got)
	}
	if got := RunDir(); got != "/run/user/4242/berth" {
		t.Errorf("RunDir: %s", got)
	}
	if !Enabled() || UID() != 4242 {
		t.Errorf("Enabled %v UID %d", Enabled(), UID())
	}
}

func TestCheckRunDir(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "berth-run-"+strconv.Itoa(os.Geteuid()))
	if err := CheckRunDir(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	if err := CheckRunDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("mode %v, want 0700", fi.Mode().Perm())
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if err := CheckRunDir(file); err == nil {
		t.Error("a file was accepted as the runtime directory")
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		os.Chown(other, 12345, 12345)
		if err := CheckRunDir(other); err == nil {
			t.Error("a directory of another user was accepted")
		}
	}
}

func TestRunRootArg(t *testing.T) {
	wd, _ := os.Getwd()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"berth", "ps"}, ""},
		{[]string{"berth", "--runroot", "/r", "ps"}, "/r"},
		{[]string{"berth", "--runroot=/r", "ps"}, "/r"},
		{[]string{"berth", "-runroot", "/r", "ps"}, "/r"},
		{[]string{"berth", "--root", "/x", "--storage-driver", "vfs", "--runroot", "/r", "ps"}, "/r"},
		{[]string{"berth", "--root", "--runroot", "ps"}, ""}, // --runroot is --root's value
		{[]string{"berth", "--runroot", "/a", "--runroot=/b", "ps"}, "/b"},
		{[]string{"berth", "--runroot", "rel", "ps"}, filepath.Join(wd, "rel")},
		{[]string{"berth", "ps", "--runroot", "/r"}, ""}, // not a global flag there
		{[]string{"berth", "run", "busybox", "--runroot", "/r"}, ""},
		{[]string{"berth", "--", "--runroot", "/r"}, ""},
		{[]string{"berth", "--runroot"}, ""},
		{[]string{"berth", "--version", "--runroot", "/r"}, "/r"},
	}
	for _, c := range cases {
		if got := RunRootArg(c.args); got != c.want {
			t.Errorf("RunRootArg(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

func TestManagerPaths(t *testing.T) {
	root, run, ok := ManagerPaths(0)
	if !ok || run != "/run/user/0/berth" || !filepath.IsAbs(root) || filepath.Base(root) != "berth" {
		t.Errorf("ManagerPaths(0) = %q %q %v", root, run, ok)
	}
	if _, run, ok := ManagerPaths(987654); ok || run != "/run/user/987654/berth" {
		t.Errorf("unknown uid: %q %v", run, ok)
	}
}
