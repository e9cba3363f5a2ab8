package engine

import (
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/rootless"
)

// Rootless berth (package rootless; docs/compat.md, Rootless): what a
// user namespace without delegated cgroups or a bridge of its own can do.

// RootlessNotes says, for `berth info`, what a rootless berth cannot do
// here; nil for root.
func (e *Engine) RootlessNotes() []string {
	if !e.cfg.Rootless {
		return nil
	}
	notes := []string{
		"networks: the default is none (loopback only); host works; bridge networks and published ports need root",
	}
	if rootless.SingleMapping() {
		notes = append(notes, "subordinate ids: none for this user in /etc/subuid and /etc/subgid: containers have a single uid and gid (root)")
	}
	if oci.CgroupsDisabled() {
		notes = append(notes, "cgroups: none delegated to this user (cgroup v1): memory, cpu, pids and blkio limits, pause/unpause, stats and update are not available")
	}
	return notes
}

// rootlessHostConfig checks a container's settings against what a
// rootless berth can do, and makes its default network "none" (no bridge
// can be made without root). It returns a copy.
func rootlessHostConfig(in *container.HostConfig) (*container.HostConfig, error) {
	hc := *in
	kind, _ := networkMode(&hc)
	switch {
	case hc.NetworkMode == "" || hc.NetworkMode == "default":
		hc.NetworkMode = modeNone
	case kind == modeBridge:
		return nil, invalidf("rootless: --network %s: bridge networks need root; use --network none or host", hc.NetworkMode)
	}
	if len(hc.PortBindings) > 0 || hc.PublishAllPorts {
		return nil, invalidf("rootless: published ports (-p, -P) need a bridge network, which needs root")
	}
	return &hc, nil
}

// limitFlags names the resource flags set in r, for the refusal of limits
// that no cgroup can apply.
func limitFlags(r container.Resources) []string {
	var out []string
	add := func(set bool, flag string) {
		if set {
			out = append(out, flag)
		}
	}
	add(r.Memory > 0, "--memory")
	add(r.MemorySwap != 0, "--memory-swap")
	add(r.MemoryReservation > 0, "--memory-reservation")
	add(r.OomKillDisable != nil && *r.OomKillDisable, "--oom-kill-disable")
	add(r.NanoCPUs > 0, "--cpus")
	add(r.CPUShares > 0, "--cpu-shares")
	add(r.CPUQuota != 0, "--cpu-quota")
	add(r.CPUPeriod > 0, "--cpu-period")
	add(r.CpusetCpus != "", "--cpuset-cpus")
	add(r.CpusetMems != "", "--cpuset-mems")
	add(r.PidsLimit != nil && *r.PidsLimit > 0, "--pids-limit")
	add(r.BlkioWeight > 0, "--blkio-weight")
	return out
}
