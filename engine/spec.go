package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/state"
)

// securityOptions is what --security-opt asked for.
type securityOptions struct {
	noNewPrivileges bool
	seccomp         string // "" default profile, "unconfined", or a profile's JSON
}

// parseSecurityOpt reads docker's --security-opt values. label= and
// apparmor= are accepted with a warning: this host has no such LSM in use.
func parseSecurityOpt(opts []string, warn func(string)) (securityOptions, error) {
	var so securityOptions
	for _, o := range opts {
		key, val, hasVal := strings.Cut(o, "=")
		if !hasVal {
			key, val, hasVal = strings.Cut(o, ":")
		}
		switch key {
		case "no-new-privileges":
			so.noNewPrivileges = !hasVal || val == "true"
			if hasVal && val != "true" && val != "false" {
				return so, invalidf("--security-opt %q: no-new-privileges takes true or false", o)
			}
		case "seccomp":
			switch {
			case !hasVal || val == "":
				return so, invalidf("--security-opt %q: seccomp needs a profile path or unconfined", o)
			case val == "unconfined":
				so.seccomp = "unconfined"
			default:
				data, err := os.ReadFile(val)
				if err != nil {
					return so, invalidf("--security-opt %q: %v", o, err)
				}
				so.seccomp = string(data)
			}
		case "label", "apparmor":
			if warn != nil {
				warn(fmt.Sprintf("--security-opt %s ignored: no SELinux or AppArmor is in use on this host", o))
			}
		default:
			return so, invalidf("--security-opt %q: unknown option (want no-new-privileges, seccomp=, label=, apparmor=)", o)
		}
	}
	return so, nil
}

// namespacedSysctl tells whether a sysctl belongs to the container's own
// namespaces (docker's rule): only those may be set.
func namespacedSysctl(key string, hostNetwork bool) bool {
	switch {
	case strings.HasPrefix(key, "net."):
		return !hostNetwork
	case strings.HasPrefix(key, "fs.mqueue."), strings.HasPrefix(key, "kernel.shm"),
		strings.HasPrefix(key, "kernel.msg"), key == "kernel.sem", key == "kernel.domainname", key == "kernel.hostname":
		return true
	}
	return false
}

// validateSecurity checks the security and limit settings of a new
// container, so that bad values fail before anything is created.
func validateSecurity(hc *container.HostConfig) error {
	if _, err := oci.Capabilities(hc.Privileged, hc.CapAdd, hc.CapDrop); err != nil {
		return invalidf("%v", err)
	}
	if _, err := parseSecurityOpt(hc.SecurityOpt, nil); err != nil {
		return err
	}
	for k := range hc.Sysctls {
		if !namespacedSysctl(k, hc.NetworkMode == "host") {
			return invalidf("sysctl %q is not allowed: only namespaced sysctls (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) can be set", k)
		}
	}
	for dst := range hc.Tmpfs {
		if !filepath.IsAbs(dst) {
			return invalidf("--tmpfs %q: the path must be absolute", dst)
		}
	}
	if err := validateResources(hc); err != nil {
		return err
	}
	for _, u := range hc.Ulimits {
		if _, ok := rlimitName(u.Name); !ok {
			return invalidf("--ulimit %q: unknown limit", u.Name)
		}
		if u.Soft > u.Hard {
			return invalidf("--ulimit %s: soft limit %d is above hard limit %d", u.Name, u.Soft, u.Hard)
		}
	}
	return nil
}

func rlimitName(name string) (string, bool) {
	n := "RLIMIT_" + strings.ToUpper(name)
	switch n {
	case "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
		"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
		"RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME":
		return n, true
	}
	return "", false
}

// specFor builds the OCI runtime spec of a container about to start.
func (e *Engine) specFor(rec *state.Record, rootfs, cgroup string, volumeSources map[string]string) (*specs.Spec, error) {
	hc := rec.HostConfig
	dir := e.containers.Dir(rec.ID)
	caps, err := oci.Capabilities(hc.Privileged, hc.CapAdd, hc.CapDrop)
	if err != nil {
		return nil, err
	}
	so, err := parseSecurityOpt(hc.SecurityOpt, nil)
	if err != nil {
		return nil, err
	}
	var rlimits []specs.POSIXRlimit
	for _, u := range hc.Ulimits {
		n, _ := rlimitName(u.Name)
		rlimits = append(rlimits, specs.POSIXRlimit{Type: n, Hard: uint64(u.Hard), Soft: uint64(u.Soft)})
	}
	linkEnv, err := e.linkEnv(rec)
	if err != nil {
		return nil, err
	}
	// --network container:NAME shares that container's namespace and its
	// hosts and resolv.conf.
	etcDir, netnsPath := dir, ""
	if kind, name := networkMode(hc); kind == modeContainer {
		id, err := e.containers.Resolve(name)
		if err != nil {
			return nil, err
		}
		st, err := e.State(id)
		if err != nil {
			return nil, err
		}
		if !st.Active() {
			return nil, invalidf("cannot join network namespace of container %s: container is not running", name)
		}
		etcDir, netnsPath = e.containers.Dir(id), filepath.Join("/proc", itoa(st.Pid), "ns", "net")
		// Its veths must outlive its own processes while this one runs.
		os.WriteFile(e.netJoinMarker(id, rec.ID), nil, 0o600)
	}
	spec := oci.Generate(oci.SpecInput{
		Rootfs:          rootfs,
		Args:            append([]string{rec.Path}, rec.Args...),
		Env:             withHostname(mergeEnv(linkEnv, rec.Config.Env), rec.Config.Hostname),
		Cwd:             rec.Config.WorkingDir,
		User:            rec.Config.User,
		Terminal:        rec.Config.Tty,
		Hostname:        rec.Config.Hostname,
		HostsPath:       filepath.Join(etcDir, "hosts"),
		HostnamePath:    filepath.Join(dir, "hostname"),
		ResolvConfPath:  filepath.Join(etcDir, "resolv.conf"),
		HostNetwork:     hc.NetworkMode == "host",
		NetNSPath:       netnsPath,
		Init:            withInit(hc),
		CgroupsPath:     cgroup,
		ShmSize:         hc.ShmSize,
		Privileged:      hc.Privileged,
		Capabilities:    caps,
		NoNewPrivileges: so.noNewPrivileges,
		ReadonlyRootfs:  hc.ReadonlyRootfs,
		GroupAdd:        hc.GroupAdd,
		Sysctls:         hc.Sysctls,
		Tmpfs:           hc.Tmpfs,
		Mounts:          userMounts(rec.Mounts, volumeSources),
		Rlimits:         rlimits,
		Seccomp:         so.seccomp,
	})
	if spec.Linux.Resources, err = resourcesFor(hc); err != nil {
		return nil, err
	}
	for _, d := range hc.Devices {
		dev, err := hostDevice(d)
		if err != nil {
			return nil, err
		}
		spec.Linux.Devices = append(spec.Linux.Devices, dev)
	}
	if err := e.reachableFor(rec, spec); err != nil { // engine/userns.go
		return nil, err
	}
	return spec, nil
}

// userMounts turns a container's volumes, bind mounts and --mount tmpfs
// mounts into OCI mounts; volumeSources maps a volume mount's destination
// to its host directory.
func userMounts(mps []state.MountPoint, volumeSources map[string]string) []specs.Mount {
	var out []specs.Mount
	for _, mp := range mps {
		switch mp.Type {
		case "tmpfs":
			opts := []string{"nosuid", "nodev", "noexec"}
			if mp.TmpfsOptions != "" {
				opts = append(opts, strings.Split(mp.TmpfsOptions, ",")...)
			}
			if !mp.RW {
				opts = append(opts, "ro")
			}
			out = append(out, specs.Mount{Destination: mp.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
		case "bind", "volume":
			src := mp.Source
			if mp.Type == "volume" {
				src = volumeSources[mp.Destination]
			}
			prop := mp.Propagation
			if prop == "" {
				prop = "rprivate"
			}
			opts := []string{"rbind", prop}
			if !mp.RW {
				opts = append(opts, "ro")
			}
			out = append(out, specs.Mount{Destination: mp.Destination, Type: "bind", Source: src, Options: opts})
		}
	}
	return out
}

// resourcesFor turns docker's resource settings into the OCI form that
// oci.Cgroup applies, with docker's device rules.
func resourcesFor(hc *container.HostConfig) (*specs.LinuxResources, error) {
	// A rootless berth runs without the limits it cannot apply (create
	// warned about them): engine/rootlesscg.go.
	r := withoutUnapplied(hc.Resources, unappliedLimits(hc.Resources))
	out := &specs.LinuxResources{}
	if r.Memory > 0 || r.MemoryReservation > 0 || r.MemorySwap != 0 || r.OomKillDisable != nil {
		m := &specs.LinuxMemory{}
		if r.Memory > 0 {
			m.Limit = ptr(r.Memory)
			swap := r.MemorySwap
			if swap == 0 {
				swap = 2 * r.Memory // docker's default: as much swap as memory
			}
			m.Swap = ptr(swap)
		}
		if r.MemoryReservation > 0 {
			m.Reservation = ptr(r.MemoryReservation)
		}
		m.DisableOOMKiller = r.OomKillDisable
		out.Memory = m
	}
	if r.CPUShares > 0 || r.CPUQuota != 0 || r.CPUPeriod > 0 || r.NanoCPUs > 0 || r.CpusetCpus != "" || r.CpusetMems != "" {
		c := &specs.LinuxCPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems}
		if r.CPUShares > 0 {
			c.Shares = ptr(uint64(r.CPUShares))
		}
		period, quota := r.CPUPeriod, r.CPUQuota
		if r.NanoCPUs > 0 {
			period = 100000
			quota = r.NanoCPUs * period / 1e9
		}
		if period > 0 {
			c.Period = ptr(uint64(period))
		}
		if quota != 0 {
			c.Quota = ptr(quota)
		}
		out.CPU = c
	}
	if r.PidsLimit != nil {
		out.Pids = &specs.LinuxPids{Limit: r.PidsLimit}
	}
	if r.BlkioWeight > 0 {
		out.BlockIO = &specs.LinuxBlockIO{Weight: ptr(r.BlkioWeight)}
	}
	if hc.Privileged {
		out.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		return out, nil
	}
	out.Devices = defaultDeviceRules()
	for _, d := range r.Devices {
		dev, err := hostDevice(d)
		if err != nil {
			return nil, err
		}
		out.Devices = append(out.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &dev.Major, Minor: &dev.Minor, Access: d.CgroupPermissions})
	}
	return out, nil
}

// defaultDeviceRules is docker's device cgroup: nothing but the standard
// nodes and terminals (and mknod of any node, which is useless without
// the right to open it).
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	rule := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: ptr(major), Minor: ptr(minor), Access: access}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		rule("c", -1, -1, "m"), rule("b", -1, -1, "m"),
		rule("c", 1, 3, "rwm"), rule("c", 1, 5, "rwm"), rule("c", 1, 7, "rwm"),
		rule("c", 1, 8, "rwm"), rule("c", 1, 9, "rwm"), rule("c", 5, 0, "rwm"),
		rule("c", 5, 1, "rwm"), rule("c", 5, 2, "rwm"), rule("c", 136, -1, "rwm"),
		rule("c", 10, 200, "rwm"),
	}
}

// hostDevice describes a --device for the container's /dev.
func hostDevice(d container.DeviceMapping) (specs.LinuxDevice, error) {
	fi, err := os.Stat(d.PathOnHost)
	if err != nil {
		return specs.LinuxDevice{}, invalidf("--device %s: %v", d.PathOnHost, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	typ := ""
	switch {
	case !ok:
	case fi.Mode()&os.ModeCharDevice != 0:
		typ = "c"
	case fi.Mode()&os.ModeDevice != 0:
		typ = "b"
	}
	if typ == "" {
		return specs.LinuxDevice{}, invalidf("--device %s: not a device", d.PathOnHost)
	}
	mode := fi.Mode().Perm()
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path: d.PathInContainer, Type: typ,
		Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, nil
}

// validateResources applies docker's limits on limits.
func validateResources(hc *container.HostConfig) error {
	r := hc.Resources
	// (A rootless berth's limits that no cgroup can take: engine/rootlesscg.go.)
	if r.Memory > 0 && r.Memory < 6<<20 {
		return invalidf("minimum memory limit allowed is 6MB")
	}
	if r.MemorySwap > 0 && r.Memory > 0 && r.MemorySwap < r.Memory {
		return invalidf("minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.MemorySwap > 0 && r.Memory == 0 {
		return invalidf("you should always set the memory limit when using the memoryswap limit, see usage")
	}
	if r.NanoCPUs > 0 && (r.CPUQuota != 0 || r.CPUPeriod != 0) {
		return invalidf("conflicting options: --cpus and --cpu-period/--cpu-quota cannot both be set")
	}
	if n := int64(runtime.NumCPU()); r.NanoCPUs > n*1e9 {
		return invalidf("range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", n, n)
	}
	if r.CPUQuota > 0 && r.CPUQuota < 1000 {
		return invalidf("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if r.CPUPeriod > 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
		return invalidf("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	for _, d := range r.Devices {
		if _, err := hostDevice(d); err != nil {
			return err
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
