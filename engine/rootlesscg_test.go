package engine

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/oci"
)

// fakeCgroupfs makes a cgroup v2 tree under a temp dir as systemd lays it
// out for user 1001, with user@1001.service's cgroup.subtree_control
// enabling ctl; owned says which files the user owns (the delegated
// subtree).
func fakeCgroupfs(t *testing.T, ctl string) (root string, owned func(string) bool) {
	root = t.TempDir()
	svc := filepath.Join(root, "user.slice/user-1001.slice/user@1001.service")
	for _, d := range []string{
		"user.slice/user-1001.slice/session-3.scope",
		"user.slice/user-1001.slice/user@1001.service/app.slice/term.scope",
		"user.slice/user-1001.slice/user@1001.service/init.scope",
	} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.WriteFile(filepath.Join(p, "cgroup.procs"), nil, 0o644)
			os.WriteFile(filepath.Join(p, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o444)
			os.WriteFile(filepath.Join(p, "cgroup.subtree_control"), nil, 0o644)
		}
		return nil
	})
	os.WriteFile(filepath.Join(svc, "cgroup.subtree_control"), []byte(ctl), 0o644)
	return root, func(p string) bool { return p == svc || strings.HasPrefix(p, svc+"/") }
}

const termScope = "0::/user.slice/user-1001.slice/user@1001.service/app.slice/term.scope\n"

func TestFindDelegation(t *testing.T) {
	root, owned := fakeCgroupfs(t, "memory pids\n")
	d := oci.FindDelegation(root, termScope, owned)
	if want := filepath.Join(root, "user.slice/user-1001.slice/user@1001.service"); d.Base != want {
		t.Errorf("Base = %q, want the topmost cgroup the user owns, %q (%s)", d.Base, want, d.Why)
	}
	if got := d.ControllerList(); !reflect.DeepEqual(got, []string{"memory", "pids"}) {
		t.Errorf("controllers = %v, want those of its cgroup.subtree_control", got)
	}
	// A login session's scope is root's: nothing delegated.
	d = oci.FindDelegation(root, "0::/user.slice/user-1001.slice/session-3.scope\n", owned)
	if d.Base != "" || !strings.Contains(d.Why, "session-3.scope) is not delegated") {
		t.Errorf("session scope: %+v", d)
	}
	// A hybrid host's /proc/self/cgroup has v1 lines too; the root cgroup
	// is nobody's to delegate.
	d = oci.FindDelegation(root, "12:pids:/user.slice\n0::/\n", owned)
	if d.Base != "" || d.Why == "" {
		t.Errorf("root cgroup: %+v", d)
	}
}

func TestDecideLimits(t *testing.T) {
	all := []string{"--memory", "--oom-kill-disable", "--cpus", "--cpuset-cpus", "--pids-limit", "--blkio-weight"}

	// cgroup v1 (this machine): nothing delegated, every limit dropped.
	v1 := oci.Delegation{Why: "no cgroup is delegated to this user (cgroup v1)"}
	u := decideLimits([]string{"--memory", "--cpus"}, v1)
	if got, want := limitsWarning(u), "WARNING: rootless: --memory, --cpus cannot be applied: no cgroup is delegated to this user (cgroup v1); the container runs without them"; got != want {
		t.Errorf("v1 warning:\n got %s\nwant %s", got, want)
	}
	if decideLimits(nil, v1) != nil {
		t.Errorf("no limits, yet a warning")
	}

	// cgroup v2, user@.service enabling memory and pids for its children:
	// cpu, cpuset and io limits are dropped, and --oom-kill-disable.
	root, owned := fakeCgroupfs(t, "memory pids\n")
	d := oci.FindDelegation(root, termScope, owned)
	u = decideLimits(all, d)
	if len(u) != 2 {
		t.Fatalf("verdicts = %+v", u)
	}
	if !reflect.DeepEqual(u[0].flags, []string{"--cpus", "--cpuset-cpus", "--blkio-weight"}) || !strings.Contains(u[0].why, "does not enable the cpu, cpuset, io controller for its children (it enables: memory pids)") {
		t.Errorf("missing controllers: %+v", u[0])
	}
	if !reflect.DeepEqual(u[1].flags, []string{"--oom-kill-disable"}) {
		t.Errorf("oom-kill-disable: %+v", u[1])
	}
	if u := decideLimits([]string{"--memory", "--pids-limit"}, d); u != nil {
		t.Errorf("delegated controllers refused: %+v", u)
	}

	// Everything delegated (systemd's default for user@.service).
	root, owned = fakeCgroupfs(t, "cpuset cpu io memory pids\n")
	if u := decideLimits(all[2:], oci.FindDelegation(root, termScope, owned)); u != nil {
		t.Errorf("all delegated, yet %+v", u)
	}

	// Delegated but nothing enabled.
	root, owned = fakeCgroupfs(t, "")
	u = decideLimits([]string{"--pids-limit"}, oci.FindDelegation(root, termScope, owned))
	if len(u) != 1 || !strings.Contains(u[0].why, "(it enables: none)") {
		t.Errorf("nothing enabled: %+v", u)
	}
}

func TestWithoutUnapplied(t *testing.T) {
	yes := true
	pids := int64(10)
	r := container.Resources{Memory: 64 << 20, MemorySwap: 128 << 20, NanoCPUs: 1e9, PidsLimit: &pids, OomKillDisable: &yes, BlkioWeight: 300}
	got := withoutUnapplied(r, []unappliedLimit{{flags: limitFlags(r)}})
	if len(limitFlags(got)) != 0 {
		t.Errorf("left: %v", limitFlags(got))
	}
	got = withoutUnapplied(r, []unappliedLimit{{flags: []string{"--cpus", "--blkio-weight"}}})
	if !reflect.DeepEqual(limitFlags(got), []string{"--memory", "--memory-swap", "--oom-kill-disable", "--pids-limit"}) {
		t.Errorf("kept: %v", limitFlags(got))
	}
}
