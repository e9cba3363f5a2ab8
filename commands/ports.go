package commands

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
)

// portFlags are run's and create's -p, -P and --expose.
func portFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a container's port(s) to the host ([IP:][HOSTPORT:]CONTAINERPORT[/PROTO])"},
		&cli.BoolFlag{Name: "publish-all", Aliases: []string{"P"}, Usage: "publish all exposed ports to random host ports"},
		&cli.StringSliceFlag{Name: "expose", Usage: "expose a port or a range of ports (PORT[-END][/PROTO])"},
	}
}

// parsePortFlags puts -p, -P and --expose into the container's config as
// docker's CLI does: every published port is also exposed.
func parsePortFlags(c *cli.Context, cfg *container.Config, hc *container.HostConfig) error {
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, spec := range c.StringSlice("publish") {
		m, err := parsePublish(spec)
		if err != nil {
			return usagef("invalid -p/--publish %q: %v", spec, err)
		}
		for port, bs := range m {
			exposed[port] = struct{}{}
			bindings[port] = append(bindings[port], bs...)
		}
	}
	for _, spec := range c.StringSlice("expose") {
		ports, err := parseExpose(spec)
		if err != nil {
			return usagef("invalid --expose %q: %v", spec, err)
		}
		for _, p := range ports {
			exposed[p] = struct{}{}
		}
	}
	if len(exposed) > 0 {
		cfg.ExposedPorts = exposed
	}
	if len(bindings) > 0 {
		hc.PortBindings = bindings
	}
	hc.PublishAllPorts = c.Bool("publish-all")
	if hc.NetworkMode == "host" && (len(bindings) > 0 || hc.PublishAllPorts) {
		fmt.Fprintln(c.App.ErrWriter, "WARNING: Published ports are discarded when using host network mode")
	}
	return nil
}

// parsePublish reads one -p value, docker's forms:
//
//	CONTAINERPORT[/PROTO]                  a random host port
//	HOSTPORT:CONTAINERPORT[/PROTO]
//	IP:HOSTPORT:CONTAINERPORT[/PROTO]      IPv6 as [::1]:8080:80
//	IP::CONTAINERPORT[/PROTO]              a random host port on IP
//	8000-8010:80-90                        ranges of the same length
//	8000-8010:80                           one free port of the host range
func parsePublish(spec string) (network.PortMap, error) {
	rest, proto, hasProto := strings.Cut(spec, "/")
	if hasProto {
		switch proto = strings.ToLower(proto); proto {
		case "tcp", "udp", "sctp":
		default:
			return nil, fmt.Errorf("invalid protocol %q (want tcp, udp or sctp)", proto)
		}
	} else {
		proto = "tcp"
	}
	parts := strings.Split(rest, ":")
	ctrPart := parts[len(parts)-1]
	var ipPart, hostPart string
	switch len(parts) {
	case 1:
	case 2:
		hostPart = parts[0]
	default:
		hostPart = parts[len(parts)-2]
		ipPart = strings.Join(parts[:len(parts)-2], ":")
	}
	var ip netip.Addr
	if ipPart != "" {
		s := ipPart
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			s = s[1 : len(s)-1]
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("invalid IP address %q", ipPart)
		}
		ip = a.Unmap()
	}
	ctrStart, ctrEnd, err := parsePortRange(ctrPart, false)
	if err != nil {
		return nil, fmt.Errorf("invalid container port %q: %v", ctrPart, err)
	}
	var hostStart, hostEnd uint16
	if hostPart != "" {
		if hostStart, hostEnd, err = parsePortRange(hostPart, true); err != nil {
			return nil, fmt.Errorf("invalid host port %q: %v", hostPart, err)
		}
		if hostStart == 0 && hostEnd != 0 {
			return nil, fmt.Errorf("invalid host port %q: a range cannot start at 0", hostPart)
		}
	}
	n := int(ctrEnd) - int(ctrStart)
	if hostPart != "" && hostStart != 0 && int(hostEnd)-int(hostStart) != n && n != 0 {
		return nil, fmt.Errorf("host port range %q and container port range %q differ in length", hostPart, ctrPart)
	}
	out := network.PortMap{}
	for i := 0; i <= n; i++ {
		port, _ := network.PortFrom(ctrStart+uint16(i), network.IPProtocol(proto))
		hp := ""
		switch {
		case hostPart == "" || hostStart == 0:
			// a random port
		case n == 0 && hostEnd != hostStart:
			hp = fmt.Sprintf("%d-%d", hostStart, hostEnd) // one port of the range
		default:
			hp = strconv.Itoa(int(hostStart) + i)
		}
		out[port] = append(out[port], network.PortBinding{HostIP: ip, HostPort: hp})
	}
	return out, nil
}

// parseExpose reads one --expose value: PORT, PORT/PROTO, START-END[/PROTO].
func parseExpose(spec string) ([]network.Port, error) {
	rest, proto, hasProto := strings.Cut(spec, "/")
	if hasProto {
		switch proto = strings.ToLower(proto); proto {
		case "tcp", "udp", "sctp":
		default:
			return nil, fmt.Errorf("invalid protocol %q (want tcp, udp or sctp)", proto)
		}
	} else {
		proto = "tcp"
	}
	start, end, err := parsePortRange(rest, false)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q: %v", rest, err)
	}
	var out []network.Port
	for p := uint32(start); p <= uint32(end); p++ {
		port, _ := network.PortFrom(uint16(p), network.IPProtocol(proto))
		out = append(out, port)
	}
	return out, nil
}

// parsePortRange reads N or N-M (1-65535; 0 too when zeroOK).
func parsePortRange(s string, zeroOK bool) (start, end uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	num := func(x string) (uint16, error) {
		n, err := strconv.ParseUint(x, 10, 16)
		if err != nil || (n == 0 && !zeroOK) {
			return 0, fmt.Errorf("want a port number from 1 to 65535")
		}
		return uint16(n), nil
	}
	if start, err = num(a); err != nil {
		return 0, 0, err
	}
	end = start
	if isRange {
		if end, err = num(b); err != nil {
			return 0, 0, err
		}
		if end < start {
			return 0, 0, fmt.Errorf("the range ends before it starts")
		}
	}
	return start, end, nil
}

// sortedPortKeys orders "80/tcp"-style keys by number, then protocol (as
// docker's natural sort does).
func sortedPortKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ni, pi, _ := strings.Cut(keys[i], "/")
		nj, pj, _ := strings.Cut(keys[j], "/")
		a, _ := strconv.Atoi(ni)
		b, _ := strconv.Atoi(nj)
		if a != b {
			return a < b
		}
		return pi < pj
	})
	return keys
}

// displayPorts is docker's PORTS column: "0.0.0.0:8080->80/tcp" for a
// published port, "80/tcp" for one only exposed. Runs of consecutive
// ports are grouped when a port is published on its own number
// ("0.0.0.0:8000-8002->8000-8002/tcp") or only exposed ("80-82/tcp");
// ports published on another number are listed one by one, last. ps is
// sorted by container port, host IP, host port and protocol.
func displayPorts(ps []container.PortSummary) string {
	type group struct {
		ip          string // "" for exposed only
		proto       string
		first, last uint16
	}
	var groups []*group
	open := map[string]*group{}
	var single []string
	for _, p := range ps {
		ip := ""
		if p.IP.IsValid() {
			ip = p.IP.String()
			if p.PublicPort != p.PrivatePort {
				single = append(single, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(ip, strconv.Itoa(int(p.PublicPort))), p.PrivatePort, p.Type))
				continue
			}
		}
		key := ip + "/" + p.Type
		if g := open[key]; g != nil && g.last+1 == p.PrivatePort {
			g.last = p.PrivatePort
			continue
		}
		g := &group{ip: ip, proto: p.Type, first: p.PrivatePort, last: p.PrivatePort}
		open[key] = g
		groups = append(groups, g)
	}
	var out []string
	for _, g := range groups {
		r := strconv.Itoa(int(g.first))
		if g.last != g.first {
			r += "-" + strconv.Itoa(int(g.last))
		}
		if g.ip != "" {
			r = net.JoinHostPort(g.ip, r) + "->" + r
		}
		out = append(out, r+"/"+g.proto)
	}
	return strings.Join(append(out, single...), ", ")
}

// portFilterMatch is ps's publish= and expose= filters: PORT[-END][/PROTO]
// (tcp unless given) against the container's published ports (a running
// container's ports with a host binding) or its exposed ports.
func portFilterMatch(spec string, c *engine.Container, published bool) bool {
	want, err := parseExpose(spec)
	if err != nil {
		return false
	}
	for _, p := range want {
		if published {
			if len(c.Ports()[p]) > 0 {
				return true
			}
		} else if _, ok := c.Record.Config.ExposedPorts[p]; ok {
			return true
		}
	}
	return false
}
