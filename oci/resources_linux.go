package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// controllerDir finds the cgroup's directory in the v1 hierarchy holding
// controller (the unified directory on v2).
func (c *Cgroup) controllerDir(controller string) string {
	if c.V2 {
		if len(c.Dirs) > 0 {
			return c.Dirs[0]
		}
		return ""
	}
	for _, d := range c.Dirs {
		hierarchy, _, _ := strings.Cut(strings.TrimPrefix(d, cgroupRoot+"/"), "/")
		for _, name := range strings.Split(hierarchy, ",") {
			if name == controller {
				return d
			}
		}
	}
	return ""
}

func (c *Cgroup) write(controller, file, value string) error {
	dir := c.controllerDir(controller)
	if dir == "" {
		return fmt.Errorf("the %s cgroup controller is not available on this host", controller)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting %s: %w", file, err)
	}
	return nil
}

// SetResources applies limits to the cgroup (cgroup v1 files, or their v2
// equivalents). Only the limits that are set are written.
func (c *Cgroup) SetResources(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if err := c.setCpusetAndPids(r); err != nil {
		return err
	}
	if c.V2 {
		return c.setResourcesV2(r)
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			// Raising the limit may need the swap limit raised first, and
			// lowering it the other way round: try both orders.
			if err := c.write("memory", "memory.limit_in_bytes", itoa64(*m.Limit)); err != nil && m.Swap != nil {
				c.write("memory", "memory.memsw.limit_in_bytes", itoa64(*m.Swap))
				if err := c.write("memory", "memory.limit_in_bytes", itoa64(*m.Limit)); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
		}
		if m.Swap != nil {
			if err := c.write("memory", "memory.memsw.limit_in_bytes", itoa64(*m.Swap)); err != nil {
				return fmt.Errorf("%w (is swap accounting enabled?)", err)
			}
		}
		if m.Reservation != nil {
			if err := c.write("memory", "memory.soft_limit_in_bytes", itoa64(*m.Reservation)); err != nil {
				return err
			}
		}
		if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
			if err := c.write("memory", "memory.oom_control", "1"); err != nil {
				return err
			}
		}
	}
	if p := r.CPU; p != nil {
		if p.Shares != nil && *p.Shares > 0 {
			if err := c.write("cpu", "cpu.shares", strconv.FormatUint(*p.Shares, 10)); err != nil {
				return err
			}
		}
		if p.Period != nil && *p.Period > 0 {
			if err := c.write("cpu", "cpu.cfs_period_us", strconv.FormatUint(*p.Period, 10)); err != nil {
				return err
			}
		}
		if p.Quota != nil && *p.Quota != 0 {
			if err := c.write("cpu", "cpu.cfs_quota_us", itoa64(*p.Quota)); err != nil {
				return err
			}
		}
	}
	if b := r.BlockIO; b != nil && b.Weight != nil && *b.Weight > 0 {
		w := strconv.Itoa(int(*b.Weight))
		if err := c.write("blkio", "blkio.weight", w); err != nil {
			if err2 := c.write("blkio", "blkio.bfq.weight", w); err2 != nil {
				return fmt.Errorf("%w (and blkio.bfq.weight: %v)", err, err2)
			}
		}
	}
	return c.setDevicesV1(r.Devices)
}

// setCpusetAndPids writes the limits whose files are the same on v1 and v2.
func (c *Cgroup) setCpusetAndPids(r *specs.LinuxResources) error {
	if p := r.CPU; p != nil {
		if p.Cpus != "" {
			if err := c.write("cpuset", "cpuset.cpus", p.Cpus); err != nil {
				return err
			}
		}
		if p.Mems != "" {
			if err := c.write("cpuset", "cpuset.mems", p.Mems); err != nil {
				return err
			}
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		if err := c.write("pids", "pids.max", maxOr(*r.Pids.Limit)); err != nil {
			return err
		}
	}
	return nil
}

// setDevicesV1 writes device rules: everything denied, then the listed
// allowances, as Docker does.
func (c *Cgroup) setDevicesV1(rules []specs.LinuxDeviceCgroup) error {
	if len(rules) == 0 || c.controllerDir("devices") == "" {
		return nil
	}
	for _, r := range rules {
		file := "devices.deny"
		if r.Allow {
			file = "devices.allow"
		}
		if err := c.write("devices", file, deviceRule(r)); err != nil {
			return err
		}
	}
	return nil
}

func deviceRule(r specs.LinuxDeviceCgroup) string {
	typ := r.Type
	if typ == "" {
		typ = "a"
	}
	if typ == "a" {
		return "a"
	}
	num := func(p *int64) string {
		if p == nil || *p < 0 {
			return "*"
		}
		return itoa64(*p)
	}
	return fmt.Sprintf("%s %s:%s %s", typ, num(r.Major), num(r.Minor), r.Access)
}

func (c *Cgroup) setResourcesV2(r *specs.LinuxResources) error {
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			if err := c.write("memory", "memory.max", maxOr(*m.Limit)); err != nil {
				return err
			}
		}
		if m.Swap != nil && m.Limit != nil {
			swap := "max"
			if *m.Swap > 0 {
				swap = itoa64(*m.Swap - *m.Limit)
			}
			if err := c.write("memory", "memory.swap.max", swap); err != nil {
				return err
			}
		}
		if m.Reservation != nil {
			if err := c.write("memory", "memory.low", itoa64(*m.Reservation)); err != nil {
				return err
			}
		}
		if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
			return errors.New("--oom-kill-disable is not available with cgroup v2")
		}
	}
	if p := r.CPU; p != nil {
		if p.Shares != nil && *p.Shares > 0 {
			weight := 1 + ((*p.Shares-2)*9999)/262142
			if err := c.write("cpu", "cpu.weight", strconv.FormatUint(weight, 10)); err != nil {
				return err
			}
		}
		if p.Quota != nil && *p.Quota > 0 {
			period := uint64(100000)
			if p.Period != nil && *p.Period > 0 {
				period = *p.Period
			}
			if err := c.write("cpu", "cpu.max", fmt.Sprintf("%d %d", *p.Quota, period)); err != nil {
				return err
			}
		}
	}
	if b := r.BlockIO; b != nil && b.Weight != nil && *b.Weight > 0 {
		weight := 1 + (int(*b.Weight)-10)*9999/990
		if err := c.write("io", "io.weight", strconv.Itoa(weight)); err != nil {
			return err
		}
	}
	// Device rules need an eBPF program on cgroup v2: not built yet.
	return nil
}

// OOMKilled tells whether the kernel's OOM killer killed a process of
// this cgroup.
func (c *Cgroup) OOMKilled() bool {
	file := "memory.oom_control"
	if c.V2 {
		file = "memory.events"
	}
	dir := c.controllerDir("memory")
	if dir == "" {
		return false
	}
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n > 0
		}
	}
	return false
}

// OpenCgroup returns the cgroup of that name as it exists now.
func OpenCgroup(name string) *Cgroup {
	dirs, v2 := CgroupPaths(name)
	return &Cgroup{Name: name, Dirs: dirs, V2: v2}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func maxOr(n int64) string {
	if n <= 0 {
		return "max"
	}
	return itoa64(n)
}
