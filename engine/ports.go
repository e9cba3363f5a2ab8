package engine

// Published ports (-p, -P, --expose): from docker's HostConfig.PortBindings,
// PublishAllPorts and Config.ExposedPorts to netns.Publish, and the
// resolved ports as `port`, `ps` and `inspect` show them.
//
// The network code calls, in startContainer, once the container has its
// address on the bridge (before its command starts):
//
//	pub, err := e.publishPorts(rec, ip, bridge, table, subnet)
//
// and pub.Close() when the container stops (pub is nil for no ports);
// after a crash of the monitor, e.unpublishPorts(id, table) removes the
// rules (the proxies died with the monitor).

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/netns"
	"github.com/berth-dev/berth/state"
)

// publishesPorts tells whether the network mode publishes ports: not
// host (docker discards them, with a warning from the CLI), not none
// (nothing to reach), not another container's namespace.
func publishesPorts(hc *container.HostConfig) bool {
	switch mode := string(hc.NetworkMode); {
	case mode == "host", mode == "none", strings.HasPrefix(mode, "container:"):
		return false
	}
	return true
}

// portMappings turns the container's port configuration into what
// netns.Publish takes: every binding of PortBindings, and with
// PublishAllPorts every exposed port without a binding on a random host
// port. The order is stable (by port, then protocol).
func portMappings(cfg *container.Config, hc *container.HostConfig) ([]netns.PortMapping, error) {
	var ports []network.Port
	for p := range hc.PortBindings {
		ports = append(ports, p)
	}
	if hc.PublishAllPorts && cfg != nil {
		for p := range cfg.ExposedPorts {
			if _, ok := hc.PortBindings[p]; !ok {
				ports = append(ports, p)
			}
		}
	}
	sortPorts(ports)
	var out []netns.PortMapping
	for _, p := range ports {
		proto := string(p.Proto())
		switch proto {
		case "tcp", "udp", "sctp":
		default:
			return nil, invalidf("port %s: protocol %q is not tcp, udp or sctp", p, proto)
		}
		if p.Num() == 0 {
			return nil, invalidf("port %s: container port 0", p)
		}
		bindings, bound := hc.PortBindings[p]
		if !bound || len(bindings) == 0 {
			bindings = []network.PortBinding{{}} // -P, or a port given without a binding: random
		}
		for _, b := range bindings {
			m := netns.PortMapping{ContainerPort: p.Num(), Proto: proto}
			if b.HostIP.IsValid() {
				if b.HostIP.Zone() != "" {
					return nil, invalidf("port %s: host IP %s has a zone", p, b.HostIP)
				}
				m.HostIP = net.IP(b.HostIP.Unmap().AsSlice())
			}
			if err := parseHostPort(b.HostPort, &m); err != nil {
				return nil, invalidf("port %s: host port %q: %v", p, b.HostPort, err)
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// parseHostPort reads docker's HostPort: "" or "0" (random), "N", "N-M"
// (one free port of the range).
func parseHostPort(s string, m *netns.PortMapping) error {
	if s == "" {
		return nil
	}
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return errBadPort
	}
	m.HostPort = uint16(lo)
	if !isRange {
		return nil
	}
	hi, err := strconv.ParseUint(b, 10, 16)
	if err != nil || lo == 0 || hi < lo {
		return errBadPort
	}
	m.HostPortEnd = uint16(hi)
	return nil
}

var errBadPort = portError("want a port number from 0 to 65535 or a range N-M")

type portError string

func (e portError) Error() string { return string(e) }

// validatePorts checks the port configuration at create time, so that a
// bad one creates nothing.
func validatePorts(cfg *container.Config, hc *container.HostConfig) error {
	_, err := portMappings(cfg, hc)
	return err
}

// mergeExposedPorts adds the image's EXPOSEd ports to the container's (as
// docker does: -P publishes both).
func mergeExposedPorts(cfg *container.Config, image map[string]struct{}) {
	for s := range image {
		if !strings.Contains(s, "/") {
			s += "/tcp"
		}
		p, err := network.ParsePort(s)
		if err != nil {
			continue
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = network.PortSet{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
}

// publishPorts publishes the container's ports on the network (its nft
// table, bridge and subnet) at the container's address ip, and records
// the resolved ports in its state. It returns nil when there is nothing
// to publish. The caller closes the result when the container stops.
//
// dialNS, when set, is the network namespace the container is reached
// from (rootless: no nftables rules, every port through the proxy).
func (e *Engine) publishPorts(rec *state.Record, ip net.IP, bridge, table string, subnet *net.IPNet, dialNS string) (*netns.Published, error) {
	if !publishesPorts(rec.HostConfig) {
		return nil, nil
	}
	maps, err := portMappings(rec.Config, rec.HostConfig)
	if err != nil || len(maps) == 0 {
		return nil, err
	}
	pub, err := netns.Publish(netns.PublishOptions{
		Table: table, Bridge: bridge, Subnet: subnet,
		ContainerID: rec.ID, ContainerIP: ip, Ports: maps, DialNS: dialNS,
	})
	if err != nil {
		if e.cfg.Rootless && errors.Is(err, syscall.EACCES) {
			err = fmt.Errorf("%w (rootless: ports below net.ipv4.ip_unprivileged_port_start, 1024 by default, are root's)", err)
		}
		return nil, err
	}
	pm := resolvedPortMap(pub)
	if err := e.updateState(rec.ID, func(st *state.State) { st.Ports = pm }); err != nil {
		pub.Close()
		return nil, err
	}
	return pub, nil
}

// unpublishPorts removes what publishPorts left of a container whose
// monitor is gone (its proxies went with it): the nftables rules, and the
// ports in its state.
func (e *Engine) unpublishPorts(id, table string) error {
	var err error
	if !e.cfg.Rootless { // (rootless ports are proxies only: no rules)
		err = netns.Unpublish(table, id)
	}
	e.updateState(id, func(st *state.State) { st.Ports = nil })
	return err
}

// resolvedPortMap is docker's NetworkSettings.Ports of the published
// ports. A port on every address is listed as 0.0.0.0 and, where the host
// has IPv6, as :: too (docker does the same).
func resolvedPortMap(pub *netns.Published) network.PortMap {
	pm := network.PortMap{}
	for _, m := range pub.Ports {
		p, _ := network.PortFrom(m.ContainerPort, network.IPProtocol(m.Proto))
		hp := strconv.Itoa(int(m.HostPort))
		if m.HostIP == nil {
			pm[p] = append(pm[p], network.PortBinding{HostIP: netip.IPv4Unspecified(), HostPort: hp})
			if pub.IPv6 {
				pm[p] = append(pm[p], network.PortBinding{HostIP: netip.IPv6Unspecified(), HostPort: hp})
			}
			continue
		}
		a, _ := netip.AddrFromSlice(m.HostIP)
		pm[p] = append(pm[p], network.PortBinding{HostIP: a.Unmap(), HostPort: hp})
	}
	return pm
}

// Ports is docker's NetworkSettings.Ports: for a running container its
// exposed ports (no binding: null) and published ports; empty otherwise.
func (c *Container) Ports() network.PortMap {
	pm := network.PortMap{}
	if c.State == nil || !c.State.Active() {
		return pm
	}
	if publishesPorts(c.Record.HostConfig) {
		for p := range c.Record.Config.ExposedPorts {
			pm[p] = nil
		}
	}
	for p, bs := range c.State.Ports {
		pm[p] = append([]network.PortBinding{}, bs...)
	}
	return pm
}

// PortSummaries lists a container's ports as docker's ps API does (one
// entry per binding; exposed ports without one have no IP and public port),
// sorted by container port, host IP, host port and protocol.
func (c *Container) PortSummaries() []container.PortSummary {
	var out []container.PortSummary
	for p, bs := range c.Ports() {
		if len(bs) == 0 {
			out = append(out, container.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())})
		}
		for _, b := range bs {
			n, _ := strconv.ParseUint(b.HostPort, 10, 16)
			out = append(out, container.PortSummary{IP: b.HostIP, PrivatePort: p.Num(), PublicPort: uint16(n), Type: string(p.Proto())})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case a.PrivatePort != b.PrivatePort:
			return a.PrivatePort < b.PrivatePort
		case a.IP != b.IP:
			return a.IP.Less(b.IP)
		case a.PublicPort != b.PublicPort:
			return a.PublicPort < b.PublicPort
		}
		return a.Type < b.Type
	})
	return out
}

func sortPorts(ports []network.Port) {
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].Num() != ports[j].Num() {
			return ports[i].Num() < ports[j].Num()
		}
		return ports[i].Proto() < ports[j].Proto()
	})
}

// publishAttached publishes the container's ports on its first network
// (the one of HostConfig.NetworkMode, eth0), from the attachment the
// network code recorded in its state.
func (e *Engine) publishAttached(rec *state.Record) (*netns.Published, error) {
	st, err := e.containers.State(rec.ID)
	if err != nil || len(st.Networks) == 0 {
		return nil, err
	}
	a := st.Networks[0]
	ip := net.ParseIP(a.IP)
	subnet := &net.IPNet{IP: ip.Mask(net.CIDRMask(a.Prefix, 32)), Mask: net.CIDRMask(a.Prefix, 32)}
	return e.publishPorts(rec, ip, a.Bridge, a.Table, subnet, e.netStore().Namespace())
}
