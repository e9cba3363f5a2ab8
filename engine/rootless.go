package engine

import (
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/container"
	"go.podman.io/storage/pkg/idtools"

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
		"networks: the default is slirp4netns; bridge networks live in the user's rootless network namespace (engine/rootlessnet.go), their published ports are proxies",
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
// rootless berth can do, and makes its default network slirp4netns
// (podman's rootless default; bridge networks are in the rootless
// network namespace). It returns a copy.
func rootlessHostConfig(in *container.HostConfig) (*container.HostConfig, error) {
	hc := *in
	if hc.NetworkMode == "" || hc.NetworkMode == "default" {
		hc.NetworkMode = modeSlirp
	}
	if string(hc.UsernsMode) == usernsKeepID && rootless.SingleMapping() {
		return nil, invalidf("rootless: --userns=keep-id needs subordinate ids (/etc/subuid, /etc/subgid) for the container's root")
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

// usernsKeepID is --userns=keep-id: the container runs in a user
// namespace of its own, nested in the user's, where the user's own uid
// and gid are themselves again (so bind-mounted work directories are
// theirs inside too), and root is the first subordinate id.
const usernsKeepID = "keep-id"

// idMap maps Size ids from Container (in the container's namespace) to
// Host (in the user's namespace, where berth runs).
type idMap struct{ Container, Host, Size int }

type idMaps struct{ uid, gid []idMap }

// keepIDMaps returns the maps of a --userns=keep-id container (nil for
// any other).
func keepIDMaps(hc *container.HostConfig) *idMaps {
	if string(hc.UsernsMode) != usernsKeepID || rootless.SingleMapping() {
		return nil // (refused by Create: no subordinate ids for root)
	}
	return &idMaps{
		uid: keepIDMap(rootless.UID(), usernsSize("/proc/self/uid_map")),
		gid: keepIDMap(rootless.GID(), usernsSize("/proc/self/gid_map")),
	}
}

// keepIDMap puts own (the user's id on the host, 0 in berth's namespace)
// at own in the container, and the n-1 subordinate ids (1… in berth's
// namespace) around it: 0…own-1 and own+1….
func keepIDMap(own, n int) []idMap {
	if own >= n-1 {
		// Fewer subordinate ids than the user's id: root, and the user.
		return []idMap{{0, 1, 1}, {own, 0, 1}}
	}
	m := []idMap{{own, 0, 1}}
	if own > 0 {
		m = append(m, idMap{0, 1, own})
	}
	if rest := n - 1 - own; rest > 0 {
		m = append(m, idMap{own + 1, own + 1, rest})
	}
	return m
}

// usernsSize is the number of ids of this process's user namespace.
func usernsSize(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 1
	}
	n := 1
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		in, _ := strconv.Atoi(f[0])
		size, _ := strconv.Atoi(f[2])
		if in+size > n {
			n = in + size
		}
	}
	return n
}

func (m *idMaps) storageMaps() (uid, gid []idtools.IDMap) {
	conv := func(in []idMap) (out []idtools.IDMap) {
		for _, x := range in {
			out = append(out, idtools.IDMap{ContainerID: x.Container, HostID: x.Host, Size: x.Size})
		}
		return out
	}
	return conv(m.uid), conv(m.gid)
}

func (m *idMaps) forkMaps() (uid, gid []syscall.SysProcIDMap) {
	conv := func(in []idMap) (out []syscall.SysProcIDMap) {
		for _, x := range in {
			out = append(out, syscall.SysProcIDMap{ContainerID: x.Container, HostID: x.Host, Size: x.Size})
		}
		return out
	}
	return conv(m.uid), conv(m.gid)
}
