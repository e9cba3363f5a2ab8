package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const cgroupRoot = "/sys/fs/cgroup"

// Cgroup is one container's cgroup: a directory in each v1 hierarchy, or
// one directory in the v2 tree.
type Cgroup struct {
	Name  string   // relative path, e.g. "berth/<id>"
	Dirs  []string // absolute directories
	V2    bool
	Owned bool // created by us (so ours to remove)
}

// IsCgroup2 tells whether /sys/fs/cgroup is the unified (v2) hierarchy.
func IsCgroup2() bool {
	var st unix.Statfs_t
	return unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// cgroupsDisabled marks a rootless berth (DisableCgroups): the host's
// cgroup tree is not its own (oci/rootlesscg_linux.go).
var cgroupsDisabled bool

// DisableCgroups makes this process a rootless berth's: containers get no
// cgroup of the host's, only one in a cgroup v2 subtree delegated to the
// user, where there is one (RootlessDelegation). Without it CgroupPaths
// lists nothing, and CgroupsDisabled is true.
func DisableCgroups() { cgroupsDisabled = true }

// CgroupsDisabled tells whether containers get no cgroup at all: a
// rootless berth to which no cgroup is delegated.
func CgroupsDisabled() bool { return cgroupsDisabled && cgroupTop() == "" }

// CgroupPaths lists the directories a cgroup of this name has (or would
// have) on this host.
func CgroupPaths(name string) (dirs []string, v2 bool) {
	if cgroupsDisabled {
		if top := cgroupTop(); top != "" {
			return []string{filepath.Join(top, name)}, true
		}
		return nil, false
	}
	if IsCgroup2() {
		return []string{filepath.Join(cgroupRoot, name)}, true
	}
	entries, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		// Symlinks such as cpu -> cpu,cpuacct name a hierarchy twice.
		if !e.IsDir() || e.Name() == "unified" {
			continue
		}
		dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), name))
	}
	return dirs, false
}

// CreateCgroup makes the container's cgroup in every hierarchy.
func CreateCgroup(name string) (*Cgroup, error) {
	dirs, v2 := CgroupPaths(name)
	cg := &Cgroup{Name: name, V2: v2, Owned: true}
	if len(dirs) == 0 {
		return cg, nil // no cgroup filesystem: run without one
	}
	if v2 {
		enableControllers(filepath.Dir(dirs[0]))
	}
	for _, d := range dirs {
		if err := mkdirCgroup(d); err != nil {
			cg.Remove()
			return nil, fmt.Errorf("creating cgroup %s: %w", d, err)
		}
		cg.Dirs = append(cg.Dirs, d)
	}
	return cg, nil
}

func mkdirCgroup(dir string) error {
	hierarchy, _, _ := strings.Cut(strings.TrimPrefix(dir, cgroupRoot+"/"), "/")
	if strings.Contains(hierarchy, "cpuset") {
		// cpuset children start empty and refuse tasks: copy the parent's.
		return mkdirCpuset(dir)
	}
	return os.MkdirAll(dir, 0o755)
}

func mkdirCpuset(dir string) error {
	parent := filepath.Dir(dir)
	if _, err := os.Stat(parent); err != nil {
		if err := mkdirCpuset(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || strings.TrimSpace(string(cur)) != "" {
			continue
		}
		val, err := os.ReadFile(filepath.Join(parent, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), val, 0o644); err != nil {
			return fmt.Errorf("copying %s: %w", f, err)
		}
	}
	return nil
}

// enableControllers turns on the usual controllers for children of dir
// (cgroup v2), from the root down. Failures are left for the limits that
// need them to report.
func enableControllers(dir string) {
	top := cgroupTop() // the host's root, or a rootless user's delegated cgroup
	var chain []string
	for d := dir; d != top && strings.HasPrefix(d, top+"/"); d = filepath.Dir(d) {
		chain = append([]string{d}, chain...)
	}
	parent := top
	for _, d := range chain {
		os.Mkdir(d, 0o755)
		// A rootless user's delegated cgroup is systemd's to configure:
		// its children get what it enables (RootlessDelegation).
		if !(cgroupsDisabled && parent == top) {
			avail, _ := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
			var ctl []string
			for _, c := range strings.Fields(string(avail)) {
				ctl = append(ctl, "+"+c)
			}
			os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte(strings.Join(ctl, " ")), 0o644)
		}
		parent = d
	}
	avail, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	var ctl []string
	for _, c := range strings.Fields(string(avail)) {
		ctl = append(ctl, "+"+c)
	}
	os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(ctl, " ")), 0o644)
}

// Add moves a process into the cgroup.
func (c *Cgroup) Add(pid int) error {
	for _, d := range c.Dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("joining cgroup %s: %w", d, err)
		}
	}
	return nil
}

// Remove deletes the cgroup's directories. It retries briefly while the
// kernel still counts exiting tasks, and is idempotent.
func (c *Cgroup) Remove() error {
	var firstErr error
	for _, d := range c.Dirs {
		if err := rmdirCgroup(d); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// RemoveCgroup removes a cgroup by name where it exists (cleanup after a
// crashed monitor).
func RemoveCgroup(name string) error {
	dirs, v2 := CgroupPaths(name)
	return (&Cgroup{Name: name, Dirs: dirs, V2: v2}).Remove()
}

func rmdirCgroup(dir string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", dir, err)
}
