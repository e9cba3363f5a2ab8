package commands

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/urfave/cli/v2"
)

// securityFlags reads --privileged, --cap-add/--cap-drop, --security-opt,
// --read-only, --tmpfs, --sysctl, --group-add, --ulimit and --device.
// The engine validates the names (capabilities, sysctls, limits).
func securityFlags(c *cli.Context, hc *container.HostConfig) error {
	hc.Privileged = c.Bool("privileged")
	hc.CapAdd = c.StringSlice("cap-add")
	hc.CapDrop = c.StringSlice("cap-drop")
	hc.SecurityOpt = c.StringSlice("security-opt")
	for _, o := range hc.SecurityOpt {
		if strings.HasPrefix(o, "label") || strings.HasPrefix(o, "apparmor") {
			fmt.Fprintf(c.App.ErrWriter, "WARNING: --security-opt %s ignored: no SELinux or AppArmor is in use on this host\n", o)
		}
	}
	hc.ReadonlyRootfs = c.Bool("read-only")
	hc.GroupAdd = c.StringSlice("group-add")
	for _, t := range c.StringSlice("tmpfs") {
		path, opts, _ := strings.Cut(t, ":")
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[path] = opts
	}
	for _, kv := range c.StringSlice("sysctl") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usagef("invalid --sysctl %q: want KEY=VALUE", kv)
		}
		if hc.Sysctls == nil {
			hc.Sysctls = map[string]string{}
		}
		hc.Sysctls[k] = v
	}
	for _, u := range c.StringSlice("ulimit") {
		name, vals, ok := strings.Cut(u, "=")
		soft, hard, hasHard := strings.Cut(vals, ":")
		s, err1 := strconv.ParseInt(soft, 10, 64)
		h := s
		var err2 error
		if hasHard {
			h, err2 = strconv.ParseInt(hard, 10, 64)
		}
		if !ok || name == "" || err1 != nil || err2 != nil {
			return usagef("invalid --ulimit %q: want NAME=SOFT[:HARD]", u)
		}
		hc.Ulimits = append(hc.Ulimits, &container.Ulimit{Name: name, Soft: s, Hard: h})
	}
	for _, d := range c.StringSlice("device") {
		parts := strings.Split(d, ":")
		m := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
		if len(parts) > 1 && parts[1] != "" {
			m.PathInContainer = parts[1]
		}
		if len(parts) > 2 {
			m.CgroupPermissions = parts[2]
		}
		if len(parts) > 3 || !strings.HasPrefix(m.PathOnHost, "/") || strings.Trim(m.CgroupPermissions, "rwm") != "" {
			return usagef("invalid --device %q: want /HOST/PATH[:/CONTAINER/PATH[:rwm]]", d)
		}
		hc.Devices = append(hc.Devices, m)
	}
	return nil
}

// resourceFlags reads the cgroup limits of run, create and update.
func resourceFlags(c *cli.Context, r *container.Resources) error {
	size := func(name string, dst *int64, allowMinusOne bool) error {
		v := c.String(name)
		if v == "" {
			return nil
		}
		if allowMinusOne && v == "-1" {
			*dst = -1
			return nil
		}
		n, err := parseSize(v)
		if err != nil || n <= 0 {
			return usagef("invalid --%s %q: want a size such as 64m", name, v)
		}
		*dst = n
		return nil
	}
	integer := func(name string, dst *int64) error {
		v := c.String(name)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return usagef("invalid --%s %q: not a number", name, v)
		}
		*dst = n
		return nil
	}
	if err := size("memory", &r.Memory, false); err != nil {
		return err
	}
	if err := size("memory-swap", &r.MemorySwap, true); err != nil {
		return err
	}
	if err := size("memory-reservation", &r.MemoryReservation, false); err != nil {
		return err
	}
	if err := integer("cpu-shares", &r.CPUShares); err != nil {
		return err
	}
	if err := integer("cpu-quota", &r.CPUQuota); err != nil {
		return err
	}
	if err := integer("cpu-period", &r.CPUPeriod); err != nil {
		return err
	}
	if v := c.String("cpus"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return usagef("invalid --cpus %q: want a positive number such as 0.5", v)
		}
		r.NanoCPUs = int64(f * 1e9)
	}
	r.CpusetCpus = c.String("cpuset-cpus")
	r.CpusetMems = c.String("cpuset-mems")
	if v := c.String("pids-limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return usagef("invalid --pids-limit %q: not a number", v)
		}
		r.PidsLimit = &n
	}
	if v := c.String("blkio-weight"); v != "" {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || (n != 0 && (n < 10 || n > 1000)) {
			return usagef("invalid --blkio-weight %q: want 10 to 1000", v)
		}
		r.BlkioWeight = uint16(n)
	}
	if c.IsSet("oom-kill-disable") {
		v := c.Bool("oom-kill-disable")
		r.OomKillDisable = &v
	}
	return nil
}
