package oci

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// A rootless berth's cgroups (docs/compat.md, Rootless, Cgroups). On
// cgroup v1 nothing of the host's tree is delegated to a user: containers
// run in the caller's cgroup and no limit can be applied. On cgroup v2,
// systemd's user@UID.service delegates the user's subtree (Delegate=yes:
// the directories and their cgroup.procs and cgroup.subtree_control are
// the user's): when this process's own cgroup is in such a subtree,
// containers get a child cgroup there, BASE/berth/ID, and the limits
// whose controllers BASE enables for its children.

// Delegation is what a rootless berth may do with cgroups here.
type Delegation struct {
	// Base is the topmost cgroup directory, on the way from this
	// process's own cgroup up, that the user owns ("" when none).
	Base string
	// Controllers are those Base enables for its children (its
	// cgroup.subtree_control): a container's cgroup gets these.
	Controllers map[string]bool
	// Why there is no delegation, when Base is "".
	Why string
}

// ControllerList is Controllers, sorted.
func (d Delegation) ControllerList() []string {
	var out []string
	for c := range d.Controllers {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// FindDelegation looks for the user's delegated cgroup under root (a
// cgroup2 mount), from selfCgroup (the text of /proc/self/cgroup); owned
// tells whether a file is the user's.
func FindDelegation(root, selfCgroup string, owned func(path string) bool) Delegation {
	rel := ""
	for _, line := range strings.Split(selfCgroup, "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel = strings.TrimSpace(p)
		}
	}
	if rel == "" || rel == "/" {
		return Delegation{Why: "this process is in no cgroup v2 of its own (/proc/self/cgroup)"}
	}
	base := ""
	for d := filepath.Join(root, rel); d != root && strings.HasPrefix(d, root+"/"); d = filepath.Dir(d) {
		if !owned(d) || !owned(filepath.Join(d, "cgroup.subtree_control")) || !owned(filepath.Join(d, "cgroup.procs")) {
			break
		}
		base = d
	}
	if base == "" {
		return Delegation{Why: "the cgroup of this process (" + rel + ") is not delegated to this user (systemd's user@.service delegates one: run berth from a `systemd --user` session or `systemd-run --user --scope`)"}
	}
	ctl := map[string]bool{}
	b, _ := os.ReadFile(filepath.Join(base, "cgroup.subtree_control"))
	for _, c := range strings.Fields(string(b)) {
		ctl[c] = true
	}
	return Delegation{Base: base, Controllers: ctl}
}

// ownedByMe tells whether path belongs to this process's euid (the
// user's, seen from inside the user's namespace as 0).
func ownedByMe(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

var (
	rootlessOnce sync.Once
	delegation   Delegation
)

// rootlessDelegation finds, once, the delegation of a rootless berth.
func rootlessDelegation() Delegation {
	rootlessOnce.Do(func() {
		if !IsCgroup2() {
			delegation = Delegation{Why: "no cgroup is delegated to this user (cgroup v1)"}
			return
		}
		b, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			delegation = Delegation{Why: "reading /proc/self/cgroup: " + err.Error()}
			return
		}
		delegation = FindDelegation(cgroupRoot, string(b), ownedByMe)
	})
	return delegation
}

// RootlessDelegation says what a rootless berth may do with cgroups (an
// empty Delegation for root, whose cgroups are all berth's).
func RootlessDelegation() (d Delegation, rootless bool) {
	if !cgroupsDisabled {
		return Delegation{}, false
	}
	return rootlessDelegation(), true
}

// cgroupTop is where berth's cgroups are made: the host's cgroup root,
// or a rootless user's delegated cgroup.
func cgroupTop() string {
	if cgroupsDisabled {
		return rootlessDelegation().Base
	}
	return cgroupRoot
}
