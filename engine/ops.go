package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/state"
)

// running resolves ref to a container that must be running (or paused).
func (e *Engine) running(ref string) (*state.Record, *state.State, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	st, err := e.State(id)
	if err != nil {
		return nil, nil, err
	}
	if !st.Active() {
		return nil, nil, fmt.Errorf("container %s is not running: %w", ref, ErrNotRunning)
	}
	rec, err := e.containers.Record(id)
	return rec, st, err
}

// runningProcess is running, and refuses a container that waits to
// restart: it has no process now (engine/restart.go).
func (e *Engine) runningProcess(ref string) (*state.Record, *state.State, error) {
	rec, st, err := e.running(ref)
	if err == nil && st.Status == state.StatusRestarting {
		return nil, nil, fmt.Errorf("container %s is restarting, wait until the container is running: %w", ref, ErrNotRunning)
	}
	return rec, st, err
}

// Pause freezes every process of a running container.
func (e *Engine) Pause(ctx context.Context, ref string) error {
	rec, st, err := e.runningProcess(ref)
	if err != nil {
		return err
	}
	if st.Status == state.StatusPaused {
		return fmt.Errorf("container %s is already paused", ref)
	}
	if err := oci.OpenCgroup(cgroupName(rec.ID)).Freeze(); err != nil {
		return fmt.Errorf("pausing %s: %w", ref, err)
	}
	return e.updateState(rec.ID, func(st *state.State) {
		if st.Status == state.StatusRunning {
			st.Status = state.StatusPaused
		}
	})
}

// Unpause lets a paused container run again.
func (e *Engine) Unpause(ctx context.Context, ref string) error {
	rec, st, err := e.runningProcess(ref)
	if err != nil {
		return err
	}
	if st.Status != state.StatusPaused {
		return fmt.Errorf("container %s is not paused", ref)
	}
	if err := oci.OpenCgroup(cgroupName(rec.ID)).Thaw(); err != nil {
		return fmt.Errorf("unpausing %s: %w", ref, err)
	}
	return e.updateState(rec.ID, func(st *state.State) {
		if st.Status == state.StatusPaused {
			st.Status = state.StatusRunning
		}
	})
}

// thawIfPaused lets a paused container receive the signal it was just
// sent (stop, kill, rm -f of a paused container).
func (e *Engine) thawIfPaused(id string, st *state.State) {
	if st.Status != state.StatusPaused {
		return
	}
	oci.OpenCgroup(cgroupName(id)).Thaw()
	e.updateState(id, func(st *state.State) {
		if st.Status == state.StatusPaused {
			st.Status = state.StatusRunning
		}
	})
}

// TopResult is `top`: ps's header and the rows of the container's
// processes.
type TopResult struct {
	Titles    []string
	Processes [][]string
}

// Top runs the host's ps with psArgs (default -ef) and keeps the rows of
// the container's processes, as docker does.
func (e *Engine) Top(ctx context.Context, ref string, psArgs []string) (*TopResult, error) {
	rec, _, err := e.runningProcess(ref)
	if err != nil {
		return nil, err
	}
	var pids []int
	if oci.CgroupsDisabled() {
		// Rootless: no cgroup; the processes of its pid namespace.
		_, st, err := e.running(ref)
		if err != nil {
			return nil, err
		}
		pids, err = oci.PidsInNamespace(st.Pid)
		if err != nil {
			return nil, err
		}
	} else if pids, err = oci.OpenCgroup(cgroupName(rec.ID)).Pids(); err != nil {
		return nil, err
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.CommandContext(ctx, "ps", psArgs...).Output()
	if err != nil {
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			return nil, invalidf("ps %s: %s", strings.Join(psArgs, " "), strings.TrimSpace(string(xe.Stderr)))
		}
		return nil, fmt.Errorf("running ps: %w", err)
	}
	return filterPs(string(out), pids)
}

// filterPs keeps the header and the lines whose PID column is one of pids.
func filterPs(out string, pids []int) (*TopResult, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 {
		return nil, errors.New("ps printed nothing")
	}
	titles := strings.Fields(lines[0])
	col := -1
	for i, t := range titles {
		if t == "PID" {
			col = i
		}
	}
	if col < 0 {
		return nil, invalidf("ps's output has no PID column: give ps options that print one")
	}
	want := map[string]bool{}
	for _, p := range pids {
		want[strconv.Itoa(p)] = true
	}
	res := &TopResult{Titles: titles}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) <= col || !want[f[col]] {
			continue
		}
		// The last column (the command) may hold spaces: keep it whole.
		row := append(f[:len(titles)-1:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		res.Processes = append(res.Processes, row)
	}
	return res, nil
}

// ContainerStats is one sample of `stats`.
type ContainerStats struct {
	ID, Name              string
	CPUPercent            float64
	MemUsage, MemLimit    uint64
	MemPercent            float64
	NetRx, NetTx          uint64
	BlockRead, BlockWrite uint64
	Pids                  uint64
}

// Stats samples a running container twice, interval apart, for its CPU
// share; the other figures are the second sample's.
func (e *Engine) Stats(ctx context.Context, refs []string, interval time.Duration) ([]ContainerStats, error) {
	type target struct {
		rec  *state.Record
		st   *state.State
		cg   *oci.Cgroup
		cpu0 uint64
	}
	if oci.CgroupsDisabled() {
		return nil, invalidf("rootless: stats need the containers' cgroups, and this user has none of its own")
	}
	var targets []*target
	for _, ref := range refs {
		rec, st, err := e.running(ref)
		if err != nil {
			return nil, err
		}
		targets = append(targets, &target{rec: rec, st: st, cg: oci.OpenCgroup(cgroupName(rec.ID))})
	}
	sys0 := systemCPUNanos()
	for _, t := range targets {
		if s, err := t.cg.ReadStats(); err == nil {
			t.cpu0 = s.CPUUsageNanos
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(interval):
	}
	sys1 := systemCPUNanos()
	total := memTotal()
	var out []ContainerStats
	for _, t := range targets {
		s, err := t.cg.ReadStats()
		if err != nil {
			return nil, err
		}
		cs := ContainerStats{ID: t.rec.ID, Name: t.rec.Name, MemUsage: s.MemoryUsage, MemLimit: s.MemoryLimit,
			BlockRead: s.BlockRead, BlockWrite: s.BlockWrite, Pids: s.Pids}
		if cs.MemLimit == 0 || cs.MemLimit > uint64(total) {
			cs.MemLimit = uint64(total)
		}
		if cs.MemLimit > 0 {
			cs.MemPercent = float64(cs.MemUsage) / float64(cs.MemLimit) * 100
		}
		// docker: (container delta / system delta) * online CPUs * 100,
		// where the system delta already sums every CPU.
		if sys1 > sys0 && s.CPUUsageNanos >= t.cpu0 {
			cs.CPUPercent = float64(s.CPUUsageNanos-t.cpu0) / float64(sys1-sys0) * float64(onlineCPUs()) * 100
		}
		cs.NetRx, cs.NetTx = netDevTotals(t.st.Pid)
		out = append(out, cs)
	}
	return out, nil
}

// systemCPUNanos is the host's total CPU time from /proc/stat.
func systemCPUNanos() uint64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && fields[0] == "cpu" {
			var ticks uint64
			for _, v := range fields[1:8] {
				n, _ := strconv.ParseUint(v, 10, 64)
				ticks += n
			}
			return ticks * 1e9 / 100 // USER_HZ is 100 on Linux
		}
	}
	return 0
}

func onlineCPUs() int {
	data, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 1
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(data)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, _ := strconv.Atoi(lo)
		b := a
		if isRange {
			b, _ = strconv.Atoi(hi)
		}
		n += b - a + 1
	}
	return max(n, 1)
}

// netDevTotals sums the bytes received and sent by the container's
// interfaces other than loopback, from its network namespace's
// /proc/PID/net/dev.
func netDevTotals(pid int) (rx, tx uint64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n")[2:] {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) >= 9 {
			r, _ := strconv.ParseUint(f[0], 10, 64)
			t, _ := strconv.ParseUint(f[8], 10, 64)
			rx, tx = rx+r, tx+t
		}
	}
	return rx, tx
}

// UpdateOptions is `update`: new limits for a container.
type UpdateOptions struct {
	Resources container.Resources
	// Set says which of Resources' fields were given.
	Set map[string]bool
	// RestartPolicy, if not nil, replaces the container's. A running
	// monitor reads it at the next exit (engine/restart.go).
	RestartPolicy *container.RestartPolicy
}

// Update changes a container's limits, in its record and, if it runs, in
// its cgroup.
func (e *Engine) Update(ctx context.Context, ref string, o UpdateOptions) error {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return err
	}
	// The truth first (a monitor that died is recorded now, which takes
	// the lock taken below: a second flock of it here would wait forever).
	if _, err := e.State(id); err != nil {
		return err
	}
	lock, err := e.containers.LockContainer(id)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	rec, err := e.containers.Record(id)
	if err != nil {
		return err
	}
	hc := *rec.HostConfig
	r, n := &hc.Resources, o.Resources
	set := o.Set
	if set["memory"] {
		r.Memory = n.Memory
		if !set["memory-swap"] && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
			r.MemorySwap = 2 * r.Memory
		}
	}
	if set["memory-swap"] {
		r.MemorySwap = n.MemorySwap
	}
	if set["memory-reservation"] {
		r.MemoryReservation = n.MemoryReservation
	}
	if set["cpus"] {
		r.NanoCPUs, r.CPUQuota, r.CPUPeriod = n.NanoCPUs, 0, 0
	}
	if set["cpu-shares"] {
		r.CPUShares = n.CPUShares
	}
	if set["cpu-quota"] {
		r.CPUQuota, r.NanoCPUs = n.CPUQuota, 0
	}
	if set["cpu-period"] {
		r.CPUPeriod, r.NanoCPUs = n.CPUPeriod, 0
	}
	if set["cpuset-cpus"] {
		r.CpusetCpus = n.CpusetCpus
	}
	if set["cpuset-mems"] {
		r.CpusetMems = n.CpusetMems
	}
	if set["pids-limit"] {
		r.PidsLimit = n.PidsLimit
	}
	if set["blkio-weight"] {
		r.BlkioWeight = n.BlkioWeight
	}
	if err := validateResources(&hc); err != nil {
		return err
	}
	// A rootless berth's limits without a cgroup to take them: nothing
	// update could do (engine/rootlesscg.go).
	var refused []unappliedLimit
	for _, u := range unappliedLimits(hc.Resources) {
		var flags []string
		for _, f := range u.flags {
			if set[strings.TrimPrefix(f, "--")] {
				flags = append(flags, f)
			}
		}
		if len(flags) > 0 {
			refused = append(refused, unappliedLimit{flags, u.why})
		}
	}
	if len(refused) > 0 {
		return limitsError(refused)
	}
	if p := o.RestartPolicy; p != nil {
		if hc.AutoRemove && !p.IsNone() {
			return invalidf("restart policy cannot be updated because AutoRemove is enabled for the container")
		}
		if err := validateRestartPolicy(*p, false); err != nil {
			return err
		}
		hc.RestartPolicy = *p
	}
	st, err := e.containers.State(id) // under the lock: no fix-up here
	if err != nil {
		return err
	}
	// A restarting container has no cgroup now: its next run reads the
	// record.
	if st.Active() && st.Status != state.StatusRestarting && len(set) > 0 {
		res, err := resourcesFor(&hc)
		if err != nil {
			return err
		}
		res.Devices = nil // unchanged by update
		if err := oci.OpenCgroup(cgroupName(id)).SetResources(res); err != nil {
			return fmt.Errorf("updating %s: %w", ref, err)
		}
	}
	rec.HostConfig = &hc
	return e.containers.SaveRecord(rec)
}

// Port lists a running container's published ports: "80/tcp" →
// ["0.0.0.0:8080", "[::]:8080"].
func (e *Engine) Port(ctx context.Context, ref string) (map[string][]string, error) {
	c, err := e.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for port, bindings := range c.Ports() {
		for _, b := range bindings {
			out[port.String()] = append(out[port.String()], net.JoinHostPort(b.HostIP.String(), b.HostPort))
		}
	}
	return out, nil
}
