package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/oci"
)

// Limits of a rootless berth (oci/rootlesscg_linux.go; docs/compat.md,
// Rootless, Cgroups): where nothing is delegated (cgroup v1, or no
// systemd user@.service), a container runs without its limits, and `run`
// and `create` say which ones on stderr; with a delegated cgroup v2 those
// whose controller the user's cgroup does not enable are dropped the same
// way. `update` cannot do anything about them: it refuses (125).

// limitController is the cgroup v2 controller each limit flag needs.
var limitController = map[string]string{
	"--memory": "memory", "--memory-swap": "memory", "--memory-reservation": "memory",
	"--oom-kill-disable": "memory",
	"--cpus":             "cpu", "--cpu-shares": "cpu", "--cpu-quota": "cpu", "--cpu-period": "cpu",
	"--cpuset-cpus": "cpuset", "--cpuset-mems": "cpuset",
	"--pids-limit":   "pids",
	"--blkio-weight": "io",
}

// unappliedLimit is a group of limit flags that cannot be applied, and
// why.
type unappliedLimit struct {
	flags []string
	why   string
}

// decideLimits tells which of flags (limitFlags) cannot be applied with
// delegation d: all of them without one; with one, those whose
// controller d does not give a child cgroup, and --oom-kill-disable,
// which cgroup v2 does not have.
func decideLimits(flags []string, d oci.Delegation) []unappliedLimit {
	if len(flags) == 0 {
		return nil
	}
	if d.Base == "" {
		return []unappliedLimit{{flags, d.Why}}
	}
	var missing, oom []string
	ctls := map[string]bool{}
	for _, f := range flags {
		switch c := limitController[f]; {
		case f == "--oom-kill-disable":
			oom = append(oom, f)
		case !d.Controllers[c]:
			missing = append(missing, f)
			ctls[c] = true
		}
	}
	var out []unappliedLimit
	if len(missing) > 0 {
		var names []string
		for c := range ctls {
			names = append(names, c)
		}
		sort.Strings(names)
		have := strings.Join(d.ControllerList(), " ")
		if have == "" {
			have = "none"
		}
		out = append(out, unappliedLimit{missing, fmt.Sprintf("the cgroup delegated to this user (%s) does not enable the %s controller for its children (it enables: %s)", d.Base, strings.Join(names, ", "), have)})
	}
	if len(oom) > 0 {
		out = append(out, unappliedLimit{oom, "cgroup v2 has no such switch"})
	}
	return out
}

// unappliedLimits are the limits of r a rootless berth cannot apply here
// (nil for root).
func unappliedLimits(r container.Resources) []unappliedLimit {
	d, isRootless := oci.RootlessDelegation()
	if !isRootless {
		return nil
	}
	return decideLimits(limitFlags(r), d)
}

// limitsWarning is the line `run` and `create` print for u.
func limitsWarning(u []unappliedLimit) string {
	var parts []string
	for _, x := range u {
		parts = append(parts, fmt.Sprintf("%s cannot be applied: %s", strings.Join(x.flags, ", "), x.why))
	}
	return "WARNING: rootless: " + strings.Join(parts, "; ") + "; the container runs without them"
}

// limitsError is `update`'s refusal of u.
func limitsError(u []unappliedLimit) error {
	var parts []string
	for _, x := range u {
		parts = append(parts, fmt.Sprintf("%s cannot be applied: %s", strings.Join(x.flags, ", "), x.why))
	}
	return invalidf("rootless: %s", strings.Join(parts, "; "))
}

// withoutUnapplied returns r without the limits of u, which the
// container runs without.
func withoutUnapplied(r container.Resources, u []unappliedLimit) container.Resources {
	for _, x := range u {
		for _, f := range x.flags {
			switch f {
			case "--memory":
				r.Memory = 0
			case "--memory-swap":
				r.MemorySwap = 0
			case "--memory-reservation":
				r.MemoryReservation = 0
			case "--oom-kill-disable":
				r.OomKillDisable = nil
			case "--cpus":
				r.NanoCPUs = 0
			case "--cpu-shares":
				r.CPUShares = 0
			case "--cpu-quota":
				r.CPUQuota = 0
			case "--cpu-period":
				r.CPUPeriod = 0
			case "--cpuset-cpus":
				r.CpusetCpus = ""
			case "--cpuset-mems":
				r.CpusetMems = ""
			case "--pids-limit":
				r.PidsLimit = nil
			case "--blkio-weight":
				r.BlkioWeight = 0
			}
		}
	}
	return r
}
