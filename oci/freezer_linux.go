package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Freeze stops every process of the cgroup (freezer on v1,
// cgroup.freeze on v2) and waits until the kernel reports them frozen.
func (c *Cgroup) Freeze() error { return c.setFrozen(true) }

// Thaw lets the processes of a frozen cgroup run again.
func (c *Cgroup) Thaw() error { return c.setFrozen(false) }

func (c *Cgroup) setFrozen(frozen bool) error {
	if CgroupsDisabled() {
		return errors.New("rootless: pause and unpause need the cgroup freezer, and this user has no cgroup of its own")
	}
	if c.V2 {
		val := "0"
		if frozen {
			val = "1"
		}
		if err := c.write("freezer", "cgroup.freeze", val); err != nil {
			return err
		}
		return c.waitFor(func() bool {
			data, _ := os.ReadFile(filepath.Join(c.controllerDir("freezer"), "cgroup.events"))
			return strings.Contains(string(data), "frozen "+val)
		})
	}
	want := "THAWED"
	if frozen {
		want = "FROZEN"
	}
	if err := c.write("freezer", "freezer.state", want); err != nil {
		return err
	}
	return c.waitFor(func() bool {
		data, _ := os.ReadFile(filepath.Join(c.controllerDir("freezer"), "freezer.state"))
		state := strings.TrimSpace(string(data))
		if state == "FREEZING" {
			// Retry the write: a task that forked meanwhile may block it.
			c.write("freezer", "freezer.state", want)
		}
		return state == want
	})
}

func (c *Cgroup) waitFor(done func() bool) error {
	for i := 0; i < 1000; i++ {
		if done() {
			return nil
		}
		time.Sleep(time.Duration(min(i+1, 10)) * time.Millisecond)
	}
	return fmt.Errorf("cgroup %s did not change its freezer state in time", c.Name)
}

// PidsInNamespace lists the processes in the pid namespace of pid (a
// container without a cgroup: rootless berth), as berth sees them.
func PidsInNamespace(pid int) ([]int, error) {
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return nil, fmt.Errorf("listing the container's processes: %w", err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing the container's processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && ns == want {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// Pids lists the processes in the cgroup.
func (c *Cgroup) Pids() ([]int, error) {
	dir := c.controllerDir("pids")
	if dir == "" && len(c.Dirs) > 0 {
		dir = c.Dirs[0]
	}
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("listing the container's processes: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// Stats is a sample of a cgroup's counters.
type Stats struct {
	CPUUsageNanos uint64 // total CPU time used
	MemoryUsage   uint64 // without the page cache, as docker shows it
	MemoryLimit   uint64 // 0: none
	BlockRead     uint64
	BlockWrite    uint64
	Pids          uint64
}

// ReadStats samples the cgroup's counters.
func (c *Cgroup) ReadStats() (*Stats, error) {
	s := &Stats{}
	read := func(controller, file string) string {
		data, _ := os.ReadFile(filepath.Join(c.controllerDir(controller), file))
		return strings.TrimSpace(string(data))
	}
	num := func(v string) uint64 { n, _ := strconv.ParseUint(v, 10, 64); return n }
	keyed := func(controller, file, key string) uint64 {
		for _, line := range strings.Split(read(controller, file), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok && k == key {
				return num(v)
			}
		}
		return 0
	}
	if c.V2 {
		s.CPUUsageNanos = keyed("cpu", "cpu.stat", "usage_usec") * 1000
		s.MemoryUsage = num(read("memory", "memory.current"))
		if inactive := keyed("memory", "memory.stat", "inactive_file"); inactive < s.MemoryUsage {
			s.MemoryUsage -= inactive
		}
		if l := read("memory", "memory.max"); l != "max" {
			s.MemoryLimit = num(l)
		}
		for _, line := range strings.Split(read("io", "io.stat"), "\n") {
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "rbytes="); ok {
					s.BlockRead += num(v)
				} else if v, ok := strings.CutPrefix(f, "wbytes="); ok {
					s.BlockWrite += num(v)
				}
			}
		}
		s.Pids = num(read("pids", "pids.current"))
		return s, nil
	}
	s.CPUUsageNanos = num(read("cpuacct", "cpuacct.usage"))
	s.MemoryUsage = num(read("memory", "memory.usage_in_bytes"))
	if inactive := keyed("memory", "memory.stat", "total_inactive_file"); inactive < s.MemoryUsage {
		s.MemoryUsage -= inactive
	}
	if l := num(read("memory", "memory.limit_in_bytes")); l < 1<<62 {
		s.MemoryLimit = l
	}
	for _, line := range strings.Split(read("blkio", "blkio.throttle.io_service_bytes_recursive"), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[1] == "Read" {
			s.BlockRead += num(f[2])
		} else if len(f) == 3 && f[1] == "Write" {
			s.BlockWrite += num(f[2])
		}
	}
	s.Pids = num(read("pids", "pids.current"))
	return s, nil
}
