package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/netns"
	"github.com/berth-dev/berth/state"
)

// NetworkInfo is one network as `network ls` and `network inspect` see
// it. Net is nil for the host and none pseudo-networks.
type NetworkInfo struct {
	ID      string
	Name    string
	Driver  string // bridge, host, null
	Created time.Time
	Net     *netns.Network
}

// NetworkCreateOptions is `network create`.
type NetworkCreateOptions = netns.CreateRequest

// NetworkCreate makes a bridge network (its bridge device and nftables
// table included).
func (e *Engine) NetworkCreate(ctx context.Context, o NetworkCreateOptions) (*netns.Network, error) {
	if o.Name == netns.DefaultNetwork {
		return nil, fmt.Errorf("%w: network with name %s already exists", netns.ErrNetworkExists, o.Name)
	}
	return e.netStore().Create(o)
}

func (e *Engine) pseudoNetwork(name, driver string) NetworkInfo {
	h := sha256.Sum256([]byte(e.cfg.Root + "\x00" + name))
	return NetworkInfo{ID: hex.EncodeToString(h[:]), Name: name, Driver: driver}
}

// Networks lists the store's networks: bridge (made on first use), host,
// none and the user-defined ones.
func (e *Engine) Networks(ctx context.Context) ([]NetworkInfo, error) {
	ns := e.netStore()
	if _, err := ns.EnsureDefault(); err != nil {
		return nil, err
	}
	all, err := ns.List()
	if err != nil {
		return nil, err
	}
	var out []NetworkInfo
	for _, n := range all {
		out = append(out, NetworkInfo{ID: n.ID, Name: n.Name, Driver: n.Driver, Created: n.Created, Net: n})
	}
	out = append(out, e.pseudoNetwork("host", "host"), e.pseudoNetwork("none", "null"))
	return out, nil
}

// FindNetwork looks a network up by name, ID or ID prefix.
func (e *Engine) FindNetwork(ctx context.Context, ref string) (*NetworkInfo, error) {
	all, err := e.Networks(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range all {
		if n.Name == ref || n.ID == ref {
			return &n, nil
		}
	}
	var match *NetworkInfo
	for i, n := range all {
		if ref != "" && strings.HasPrefix(n.ID, ref) {
			if match != nil {
				return nil, fmt.Errorf("%w: %s is ambiguous", ErrNoSuchNetwork, ref)
			}
			match = &all[i]
		}
	}
	if match == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchNetwork, ref)
	}
	return match, nil
}

// activeEndpoints are the endpoints of a network whose container runs.
// Stale ones (crashed containers) are released on the way by State.
func (e *Engine) activeEndpoints(name string) []*netns.Endpoint {
	eps, _ := e.netStore().Endpoints(name)
	var out []*netns.Endpoint
	for _, ep := range eps {
		st, err := e.State(ep.ContainerID)
		switch {
		case err == nil && st.Active():
			out = append(out, ep)
		case errors.Is(err, ErrNoSuchContainer) || err == nil && !e.monitorAlive(ep.ContainerID):
			// Left by a crash: the container is gone or stopped and
			// nothing is starting it.
			e.disconnectOne(ep.ContainerID, name, true)
		default:
			out = append(out, ep) // starting now
		}
	}
	return out
}

// NetworkInspect is docker's network inspect.
func (e *Engine) NetworkInspect(ctx context.Context, ref string) (*network.Inspect, error) {
	ni, err := e.FindNetwork(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := &network.Inspect{
		Network: network.Network{
			Name: ni.Name, ID: ni.ID, Created: ni.Created, Scope: "local", Driver: ni.Driver,
			EnableIPv4: ni.Net != nil, IPAM: network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{}},
			Options: map[string]string{}, Labels: map[string]string{},
		},
		Containers: map[string]network.EndpointResource{},
	}
	n := ni.Net
	if n == nil {
		return out, nil
	}
	out.Internal = n.Internal
	out.Options["com.docker.network.bridge.name"] = n.Bridge
	if n.IsDefault() {
		out.Options["com.docker.network.bridge.default_bridge"] = "true"
	}
	for k, v := range n.Labels {
		out.Labels[k] = v
	}
	cfg := network.IPAMConfig{}
	cfg.Subnet, _ = netip.ParsePrefix(n.Subnet)
	cfg.Gateway, _ = netip.ParseAddr(n.Gateway)
	if n.IPRange != "" {
		cfg.IPRange, _ = netip.ParsePrefix(n.IPRange)
	}
	out.IPAM.Config = append(out.IPAM.Config, cfg)
	for _, ep := range e.activeEndpoints(n.Name) {
		rec, err := e.containers.Record(ep.ContainerID)
		if err != nil {
			continue
		}
		res := network.EndpointResource{Name: rec.Name, EndpointID: endpointID(ep.ContainerID, n.Name)}
		res.IPv4Address, _ = netip.ParsePrefix(fmt.Sprintf("%s/%d", ep.IP, n.Prefix()))
		if st, err := e.containers.State(ep.ContainerID); err == nil {
			for _, a := range st.Networks {
				if a.Network == n.Name {
					if m, err := net.ParseMAC(a.MAC); err == nil {
						res.MacAddress = network.HardwareAddr(m)
					}
				}
			}
		}
		out.Containers[ep.ContainerID] = res
	}
	return out, nil
}

func endpointID(id, network string) string {
	h := sha256.Sum256([]byte(id + "\x00" + network))
	return hex.EncodeToString(h[:])
}

// NetworkRemove removes a user-defined network no running container is
// connected to.
func (e *Engine) NetworkRemove(ctx context.Context, ref string) error {
	ni, err := e.FindNetwork(ctx, ref)
	if err != nil {
		return err
	}
	if ni.Net == nil || ni.Net.IsDefault() {
		return invalidf("%s is a pre-defined network and cannot be removed", ni.Name)
	}
	ns := e.netStore()
	inUse := func(eps []*netns.Endpoint) error {
		if len(eps) == 0 {
			return nil
		}
		var names []string
		for _, ep := range eps {
			if rec, err := e.containers.Record(ep.ContainerID); err == nil {
				names = append(names, rec.Name)
			}
		}
		return invalidf("error while removing network: network %s has active endpoints (%s)", ni.Name, strings.Join(names, ", "))
	}
	// Stale endpoints (crashed containers) are released first, which
	// takes the network's lock; then, under it, nothing may have started.
	if err := inUse(e.activeEndpoints(ni.Name)); err != nil {
		return err
	}
	lock, err := ns.LockNetwork(ni.Name)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	eps, err := ns.Endpoints(ni.Name)
	if err != nil {
		return err
	}
	if err := inUse(eps); err != nil {
		return err
	}
	return ns.Remove(ni.Net)
}

// NetworkPrune removes every user-defined network without running
// containers and returns their names.
func (e *Engine) NetworkPrune(ctx context.Context) ([]string, error) {
	all, err := e.Networks(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, ni := range all {
		if ni.Net == nil || ni.Net.IsDefault() || len(e.activeEndpoints(ni.Name)) > 0 {
			continue
		}
		if err := e.NetworkRemove(ctx, ni.Name); err == nil {
			removed = append(removed, ni.Name)
		}
	}
	return removed, nil
}

// NetworkConnect connects a container to a network: recorded for its
// next starts, and made now if it runs.
func (e *Engine) NetworkConnect(ctx context.Context, netRef, ctrRef string, ep *network.EndpointSettings) error {
	ni, err := e.FindNetwork(ctx, netRef)
	if err != nil {
		return err
	}
	if ni.Net == nil {
		return invalidf("container cannot be connected to network %s", ni.Name)
	}
	id, err := e.containers.Resolve(ctrRef)
	if err != nil {
		return err
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return err
	}
	if kind, _ := networkMode(rec.HostConfig); kind != modeBridge {
		return invalidf("container %s is on network %s: only a container on a bridge network can be connected to another", ctrRef, rec.HostConfig.NetworkMode)
	}
	for _, name := range networkNames(rec) {
		if name == ni.Name {
			return invalidf("endpoint with name %s already exists in network %s", rec.Name, ni.Name)
		}
	}
	if ep == nil {
		ep = &network.EndpointSettings{}
	}
	if ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.IsValid() {
		if ni.Net.IsDefault() {
			return invalidf("user specified IP address is supported on user defined networks only")
		}
		if err := netns.CheckIP(ni.Net, net.IP(ep.IPAMConfig.IPv4Address.AsSlice())); err != nil {
			return err
		}
	}
	if len(ep.Aliases) > 0 && ni.Net.IsDefault() {
		return invalidf("network-scoped aliases are only supported for user-defined networks")
	}
	if rec.Networks == nil {
		rec.Networks = map[string]*network.EndpointSettings{}
		for _, name := range networkNames(rec) {
			rec.Networks[name] = &network.EndpointSettings{}
		}
	}
	rec.Networks[ni.Name] = ep
	st, err := e.State(id)
	if err != nil {
		return err
	}
	if st.Active() {
		ifname := fmt.Sprintf("eth%d", nextInterface(st.Networks))
		hasGW := false
		for _, a := range st.Networks {
			hasGW = hasGW || a.Gateway != ""
		}
		if _, err := e.connectOne(rec, st.Pid, ni.Name, ifname, !hasGW); err != nil {
			return err
		}
	}
	return e.saveRecord(rec)
}

func (e *Engine) saveRecord(rec *state.Record) error {
	l, err := e.containers.LockContainer(rec.ID)
	if err != nil {
		return err
	}
	defer l.Unlock()
	return e.containers.SaveRecord(rec)
}

func nextInterface(atts []state.Attachment) int {
	used := map[string]bool{}
	for _, a := range atts {
		used[a.Interface] = true
	}
	for i := 0; ; i++ {
		if !used[fmt.Sprintf("eth%d", i)] {
			return i
		}
	}
}

// NetworkDisconnect disconnects a container from a network.
func (e *Engine) NetworkDisconnect(ctx context.Context, netRef, ctrRef string, force bool) error {
	ni, err := e.FindNetwork(ctx, netRef)
	if err != nil {
		return err
	}
	id, err := e.containers.Resolve(ctrRef)
	if err != nil {
		return err
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return err
	}
	found := false
	for _, name := range networkNames(rec) {
		found = found || name == ni.Name
	}
	if !found {
		return invalidf("container %s is not connected to network %s", ctrRef, ni.Name)
	}
	if rec.Networks == nil {
		rec.Networks = map[string]*network.EndpointSettings{}
		for _, name := range networkNames(rec) {
			rec.Networks[name] = &network.EndpointSettings{}
		}
	}
	delete(rec.Networks, ni.Name)
	if err := e.saveRecord(rec); err != nil {
		return err
	}
	e.disconnectOne(id, ni.Name, true)
	e.updateState(id, func(st *state.State) { st.Networks = removeAttachment(st.Networks, ni.Name) })
	e.writeHosts(id)
	return nil
}

// Attachments returns a container's network interfaces while it runs
// (nil when it is stopped, or on --network none/host/container:NAME): its
// address, the bridge and the nftables table of each of its networks,
// the primary network first. The port-publishing code reads them here.
func (e *Engine) Attachments(ref string) ([]netns.Attachment, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return nil, err
	}
	st, err := e.State(id)
	if err != nil || !st.Active() {
		return nil, err
	}
	return st.Networks, nil
}

// ContainerNetworks names the networks of a container as `ps` shows
// them: its bridge networks, or none, host, container:NAME.
func ContainerNetworks(rec *state.Record) []string {
	if kind, _ := networkMode(rec.HostConfig); kind != modeBridge {
		return []string{string(rec.HostConfig.NetworkMode)}
	}
	return networkNames(rec)
}
