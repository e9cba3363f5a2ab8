package netns

// Port publishing (docker's -p/-P) for a container on a bridge network.
//
// API:
//
//	func Publish(o PublishOptions) (*Published, error)
//	func (p *Published) Close() error
//	func Unpublish(table, containerID string) error
//
// Publish, called by the process that owns the container (its monitor, or
// the CLI of a foreground run), for every mapping:
//
//   - reserves the host port by listening on it (HostIP, or every address
//     when HostIP is nil). HostPort 0 picks a free port of the ephemeral
//     range (/proc/sys/net/ipv4/ip_local_port_range); HostPort..HostPortEnd
//     picks the first free port of that range (docker's "8000-8010:80").
//     A port already taken fails with "port N/tcp is already in use".
//   - forwards what reaches that listener to ContainerIP:ContainerPort
//     (a userland proxy, TCP with half-close and UDP with per-client flows
//     that end after UDPIdleTimeout). Only loopback (127.0.0.1, ::1) and
//     IPv6 traffic reaches it: everything else is DNAT'ed first.
//   - adds nftables rules to `table ip <Table>` (the network's table: the
//     table and three base chains are created if missing, so the bridge
//     code and this code may each come first; the bridge code must add the
//     table, never flush or recreate it while containers run):
//
//     chain berth-ports-pre  { type nat hook prerouting priority dstnat }
//     fib daddr type local tcp dport HOSTPORT dnat to CIP:CPORT
//     chain berth-ports-out  { type nat hook output priority dstnat }
//     ip daddr != 127.0.0.0/8 fib daddr type local tcp dport HOSTPORT dnat to CIP:CPORT
//     chain berth-ports-post { type nat hook postrouting priority srcnat }
//     ct status dnat ip saddr SUBNET ip daddr CIP oifname BRIDGE masquerade
//
//     (with HostIP: `ip daddr HOSTIP` instead of the fib match). The DNAT
//     keeps the client's source address; the masquerade rule makes hairpin
//     traffic (a container on the bridge reaching a published port of the
//     host, served by itself or another container on the bridge) answer
//     through the host. Every rule carries the comment "berth:<container
//     ID>", which is how Unpublish finds them: from any process, after a
//     crash, any number of times.
//
// IPv6 host addresses are served by the proxy only (the table is `ip`).
// SCTP mappings get the DNAT rules and a reserved port but no proxy, so
// they do not answer on loopback.
//
// Forwarded traffic (a client on another host) needs net.ipv4.ip_forward
// and a forward filter that accepts `ct status dnat` towards the bridge;
// both are the bridge code's. So is hairpin mode on each container's
// bridge port (netlink.LinkSetHairpin): with br_netfilter loaded, a
// container reaching its own published port through a host address gets
// its DNAT'ed frame bridged back out of the port it came in by.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// PortMapping is one published port.
type PortMapping struct {
	// HostIP is the host address to publish on; nil means every address
	// (IPv4 and IPv6). 0.0.0.0 means every IPv4 address, :: every IPv6
	// address.
	HostIP net.IP
	// HostPort is the host port; 0 picks a free one. With HostPortEnd
	// (> HostPort), the first free port of HostPort..HostPortEnd.
	HostPort    uint16
	HostPortEnd uint16
	// ContainerPort is the port inside the container.
	ContainerPort uint16
	// Proto is "tcp" (also for ""), "udp" or "sctp".
	Proto string
}

// String gives the mapping as docker's ps shows it: 0.0.0.0:8080->80/tcp.
func (m PortMapping) String() string {
	return fmt.Sprintf("%s->%d/%s", m.hostString(), m.ContainerPort, m.proto())
}

func (m PortMapping) proto() string {
	if m.Proto == "" {
		return "tcp"
	}
	return m.Proto
}

func (m PortMapping) hostString() string {
	port := strconv.Itoa(int(m.HostPort))
	if m.HostPortEnd > m.HostPort {
		port += "-" + strconv.Itoa(int(m.HostPortEnd))
	}
	ip := "0.0.0.0"
	if m.HostIP != nil {
		ip = m.HostIP.String()
	}
	return net.JoinHostPort(ip, port)
}

// dnat tells whether the mapping gets nftables DNAT rules: IPv4 host
// addresses other than loopback.
func (m PortMapping) dnat() bool {
	return m.HostIP == nil || (m.HostIP.To4() != nil && !m.HostIP.IsLoopback())
}

// PublishOptions are what Publish needs of the container and its network.
type PublishOptions struct {
	Table       string     // the network's nftables table (family ip)
	Bridge      string     // the network's bridge device
	Subnet      *net.IPNet // the bridge's IPv4 subnet; nil: read from Bridge
	ContainerID string     // tags the rules (comment "berth:<ID>")
	ContainerIP net.IP     // the container's IPv4 address on Bridge
	Ports       []PortMapping
	// DialNS, when set, is the network namespace (a path) from which the
	// container is reached: a rootless user's, whose bridges the host's
	// nftables cannot see. Every mapping is then served by the proxy
	// (IPv4 and IPv6, loopback or not; no SCTP), which listens in the
	// caller's namespace and connects from DialNS; no rules are added.
	DialNS string
}

// Published holds a container's published ports while it runs.
type Published struct {
	// Ports are the mappings as asked, with HostPort resolved (random
	// ports picked, ranges narrowed: HostPortEnd is 0).
	Ports []PortMapping
	// IPv6 tells that the mappings without HostIP listen on IPv6 too
	// ([::], a dual-stack socket): false on a host without IPv6.
	IPv6 bool

	table, id string
	rules     bool
	closers   []func()
	udp       []*udpProxy
	once      sync.Once
	err       error
}

// UDPIdleTimeout ends a UDP proxy flow (one client address) after this
// long without traffic in either direction (docker-proxy's value).
var UDPIdleTimeout = 90 * time.Second

// Names of the base chains this code adds to the network's table.
const (
	chainPre  = "berth-ports-pre"
	chainOut  = "berth-ports-out"
	chainPost = "berth-ports-post"
)

func ruleTag(containerID string) string { return "berth:" + containerID }

// Publish reserves the host ports, installs the DNAT rules and starts the
// proxies. On error nothing is left behind.
func Publish(o PublishOptions) (*Published, error) {
	if o.ContainerID == "" {
		return nil, errors.New("publishing ports: no container ID")
	}
	cip := o.ContainerIP.To4()
	if cip == nil {
		return nil, fmt.Errorf("publishing ports: container address %v is not IPv4", o.ContainerIP)
	}
	p := &Published{table: o.Table, id: o.ContainerID}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	dial := directDialer
	if o.DialNS != "" {
		fd, err := unix.Open(o.DialNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("publishing ports: opening network namespace %s: %w", o.DialNS, err)
		}
		p.closers = append(p.closers, func() { unix.Close(fd) })
		dial = nsDialer(fd)
	}
	var listeners []any
	needDNAT := false
	for _, m := range o.Ports {
		m.Proto = m.proto()
		if m.ContainerPort == 0 {
			return nil, fmt.Errorf("publishing %s: container port 0", m.hostString())
		}
		if o.DialNS != "" && m.Proto == "sctp" {
			return nil, fmt.Errorf("cannot publish %s: sctp ports are not forwarded here (rootless berth forwards tcp and udp)", m.String())
		}
		ln, port, err := reserve(m)
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, func() { closeListener(ln) })
		m.HostPort, m.HostPortEnd = port, 0
		p.Ports = append(p.Ports, m)
		listeners = append(listeners, ln)
		if m.HostIP == nil && dualStack(ln) {
			p.IPv6 = true
		}
		needDNAT = needDNAT || m.dnat() && o.DialNS == ""
	}
	if needDNAT {
		if o.Table == "" || o.Bridge == "" {
			return nil, errors.New("publishing ports: no nftables table or bridge given")
		}
		subnet := o.Subnet
		if subnet == nil {
			var err error
			if subnet, err = bridgeSubnet(o.Bridge, cip); err != nil {
				return nil, err
			}
		}
		// Rules left by an earlier run of this container (a crash) go first.
		if err := Unpublish(o.Table, o.ContainerID); err != nil {
			return nil, err
		}
		p.rules = true
		if err := addRules(o, cip, subnet, p.Ports); err != nil {
			return nil, err
		}
	}
	for i, m := range p.Ports {
		target := &net.TCPAddr{IP: cip, Port: int(m.ContainerPort)}
		switch ln := listeners[i].(type) {
		case *net.TCPListener:
			tp := &tcpProxy{ln: ln, target: target, dial: dial, conns: map[net.Conn]struct{}{}}
			p.closers = append(p.closers, tp.close)
			go tp.serve()
		case *net.UDPConn:
			up := &udpProxy{ln: ln, target: &net.UDPAddr{IP: cip, Port: int(m.ContainerPort)}, dial: dial, flows: map[string]*udpFlow{}}
			p.closers = append(p.closers, up.close)
			p.udp = append(p.udp, up)
			go up.serve()
		}
	}
	ok = true
	return p, nil
}

// Close stops the proxies, frees the ports and removes the rules. It may
// be called more than once, and on a nil *Published (nothing published).
func (p *Published) Close() error {
	if p == nil {
		return nil
	}
	p.once.Do(func() {
		for i := len(p.closers) - 1; i >= 0; i-- {
			p.closers[i]()
		}
		if p.rules {
			p.err = Unpublish(p.table, p.id)
		}
	})
	return p.err
}

// Unpublish removes the rules Publish added for containerID to the table.
// It needs nothing of the process that published them, and does nothing
// when there are none (or no table).
func Unpublish(table, containerID string) error {
	if table == "" || containerID == "" {
		return nil
	}
	var err error
	for try := 0; try < 3; try++ {
		if err = unpublish(table, ruleTag(containerID)); err == nil || !errors.Is(err, unix.ENOENT) {
			break
		}
		// Another process removed some of them meanwhile: look again.
	}
	if err != nil {
		return fmt.Errorf("removing port rules of %s from table %s: %w", short(containerID), table, err)
	}
	return nil
}

func unpublish(table, tag string) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	chains, err := ourChains(c, table)
	if err != nil || len(chains) == 0 {
		return err
	}
	n := 0
	for _, ch := range chains {
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if s, _ := userdata.GetString(r.UserData, userdata.TypeComment); s == tag {
				if err := c.DelRule(r); err != nil {
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	return c.Flush()
}

// ourChains lists the base chains of Publish that exist in the table.
func ourChains(c *nftables.Conn, table string) ([]*nftables.Chain, error) {
	all, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, err
	}
	var out []*nftables.Chain
	for _, ch := range all {
		if ch.Table != nil && ch.Table.Name == table && (ch.Name == chainPre || ch.Name == chainOut || ch.Name == chainPost) {
			out = append(out, ch)
		}
	}
	return out, nil
}

// PortRules returns, per chain, the number of rules tagged for the
// container in the table (for tests and diagnostics).
func PortRules(table, containerID string) (map[string]int, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	chains, err := ourChains(c, table)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, ch := range chains {
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			if s, _ := userdata.GetString(r.UserData, userdata.TypeComment); s == ruleTag(containerID) {
				out[ch.Name]++
			}
		}
	}
	return out, nil
}

// addRules adds the table (if missing), the base chains (if missing) and
// the container's rules, in one transaction.
func addRules(o PublishOptions, cip net.IP, subnet *net.IPNet, ports []PortMapping) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Name: o.Table, Family: nftables.TableFamilyIPv4})
	pre := c.AddChain(&nftables.Chain{Name: chainPre, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	out := c.AddChain(&nftables.Chain{Name: chainOut, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	post := c.AddChain(&nftables.Chain{Name: chainPost, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	tag := userdata.AppendString(nil, userdata.TypeComment, ruleTag(o.ContainerID))
	for _, m := range ports {
		if !m.dnat() {
			continue
		}
		var daddr, daddrOut []expr.Any
		if m.HostIP != nil && !m.HostIP.IsUnspecified() {
			daddr = matchIPv4(16, m.HostIP.To4(), net.CIDRMask(32, 32), true)
			daddrOut = daddr
		} else {
			daddr = fibDaddrLocal()
			// Loopback traffic is the proxy's: DNAT to another host needs
			// route_localnet, which docker turns on and berth does not.
			daddrOut = append(matchIPv4(16, net.IPv4(127, 0, 0, 0).To4(), net.CIDRMask(8, 32), false), fibDaddrLocal()...)
		}
		dnat := append(matchPort(m.Proto, m.HostPort), dnatTo(cip, m.ContainerPort)...)
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, UserData: tag, Exprs: append(append([]expr.Any{}, daddr...), dnat...)})
		c.AddRule(&nftables.Rule{Table: t, Chain: out, UserData: tag, Exprs: append(append([]expr.Any{}, daddrOut...), dnat...)})
	}
	// Hairpin: DNAT'ed traffic from the bridge back onto the bridge is
	// answered through the host.
	ones, _ := subnet.Mask.Size()
	hairpin := []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(0x20 /* IPS_DST_NAT */), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
	hairpin = append(hairpin, matchIPv4(12, subnet.IP.To4(), net.CIDRMask(ones, 32), true)...)
	hairpin = append(hairpin, matchIPv4(16, cip, net.CIDRMask(32, 32), true)...)
	hairpin = append(hairpin,
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nftIfname(o.Bridge)},
		&expr.Masq{},
	)
	c.AddRule(&nftables.Rule{Table: t, Chain: post, UserData: tag, Exprs: hairpin})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("adding port rules to nftables table %s: %w", o.Table, err)
	}
	return nil
}

// matchIPv4 compares the IPv4 address at offset (12 saddr, 16 daddr),
// masked, with ip.
func matchIPv4(offset uint32, ip net.IP, mask net.IPMask, eq bool) []expr.Any {
	op := expr.CmpOpEq
	if !eq {
		op = expr.CmpOpNeq
	}
	out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}}
	if ones, _ := mask.Size(); ones != 32 {
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(mask), Xor: []byte{0, 0, 0, 0}})
	}
	return append(out, &expr.Cmp{Op: op, Register: 1, Data: []byte(ip.Mask(mask).To4())})
}

func fibDaddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func matchPort(proto string, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNumber(proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

func dnatTo(ip net.IP, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: []byte(ip.To4())},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

func nftIfname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func protoNumber(proto string) byte {
	switch proto {
	case "udp":
		return unix.IPPROTO_UDP
	case "sctp":
		return unix.IPPROTO_SCTP
	}
	return unix.IPPROTO_TCP
}

// bridgeSubnet finds the bridge's IPv4 subnet that holds the container.
func bridgeSubnet(bridge string, cip net.IP) (*net.IPNet, error) {
	ifc, err := net.InterfaceByName(bridge)
	if err != nil {
		return nil, fmt.Errorf("publishing ports: %w", err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil, fmt.Errorf("publishing ports: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.Contains(cip) {
			return &net.IPNet{IP: n.IP.Mask(n.Mask).To4(), Mask: n.Mask}, nil
		}
	}
	return nil, fmt.Errorf("publishing ports: bridge %s has no IPv4 subnet holding %v", bridge, cip)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// EphemeralPortRange reads the kernel's range for ports picked at random.
func EphemeralPortRange() (lo, hi uint16) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return
	}
	l, err1 := strconv.ParseUint(f[0], 10, 16)
	h, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || l == 0 || h < l {
		return
	}
	return uint16(l), uint16(h)
}

// reserve binds the mapping's host port and returns the listener (a
// *net.TCPListener, *net.UDPConn, or an SCTP socket as *os.File, or nil
// when the kernel has no SCTP) and the port.
func reserve(m PortMapping) (any, uint16, error) {
	var candidates []uint16
	random := false
	switch {
	case m.HostPort == 0:
		lo, hi := EphemeralPortRange()
		n := int(hi) - int(lo) + 1
		start := rand.IntN(n)
		for i := 0; i < n; i++ {
			candidates = append(candidates, uint16(int(lo)+(start+i)%n))
		}
		random = true
	case m.HostPortEnd > m.HostPort:
		for p := int(m.HostPort); p <= int(m.HostPortEnd); p++ {
			candidates = append(candidates, uint16(p))
		}
	default:
		candidates = []uint16{m.HostPort}
	}
	var lastErr error
	for _, port := range candidates {
		ln, err := listen(m.HostIP, port, m.Proto)
		if err == nil {
			return ln, port, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) && !errors.Is(err, unix.EACCES) {
			return nil, 0, describeBindError(m, port, err)
		}
		lastErr = err
	}
	switch {
	case random:
		return nil, 0, fmt.Errorf("cannot publish %s: no free host port for %s", m.String(), m.Proto)
	case len(candidates) > 1:
		return nil, 0, fmt.Errorf("cannot publish %s: every port of %d-%d/%s is already in use", m.String(), m.HostPort, m.HostPortEnd, m.Proto)
	}
	return nil, 0, describeBindError(m, m.HostPort, lastErr)
}

func describeBindError(m PortMapping, port uint16, err error) error {
	m.HostPort, m.HostPortEnd = port, 0
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return fmt.Errorf("cannot publish %s: port %d/%s is already in use", m.String(), port, m.Proto)
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Errorf("cannot publish %s: %v is not an address of this host", m.String(), m.HostIP)
	}
	return fmt.Errorf("cannot publish %s: %w", m.String(), err)
}

func listen(ip net.IP, port uint16, proto string) (any, error) {
	// nil: every address, IPv4 and IPv6 (a dual-stack socket where the
	// host has IPv6); an explicit 0.0.0.0 or :: only that family.
	network := proto
	if ip != nil {
		if ip.To4() != nil {
			network += "4"
		} else {
			network += "6"
		}
	}
	switch proto {
	case "tcp":
		return net.ListenTCP(network, &net.TCPAddr{IP: ip, Port: int(port)})
	case "udp":
		return net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: int(port)})
	case "sctp":
		return reserveSCTP(ip, port)
	}
	return nil, fmt.Errorf("unknown protocol %q", proto)
}

// reserveSCTP binds an SCTP socket to the port. A kernel without SCTP
// gives nil: the port is not reserved.
func reserveSCTP(ip net.IP, port uint16) (any, error) {
	var sa unix.Sockaddr
	family := unix.AF_INET6
	if ip4 := ip.To4(); ip4 != nil {
		family = unix.AF_INET
		a := &unix.SockaddrInet4{Port: int(port)}
		copy(a.Addr[:], ip4)
		sa = a
	} else {
		a := &unix.SockaddrInet6{Port: int(port)}
		if ip != nil {
			copy(a.Addr[:], ip.To16())
		}
		sa = a
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if err != nil && ip == nil {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(port)}
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	}
	if err != nil {
		return nil, nil // no SCTP here
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "sctp"), nil
}

// dualStack tells whether a listener on every address is an IPv6 socket
// (it then takes IPv4 too).
func dualStack(ln any) bool {
	switch l := ln.(type) {
	case *net.TCPListener:
		return l.Addr().(*net.TCPAddr).IP.To4() == nil
	case *net.UDPConn:
		return l.LocalAddr().(*net.UDPAddr).IP.To4() == nil
	}
	return false
}

func closeListener(ln any) {
	switch l := ln.(type) {
	case *net.TCPListener:
		l.Close()
	case *net.UDPConn:
		l.Close()
	case *os.File:
		l.Close()
	}
}

// ReservePort picks the host port of m as Publish does (a free one for
// 0, the first free one of a range) and checks that it can be bound,
// with Publish's errors; it binds nothing. For a forwarder of its own
// (rootless slirp4netns).
func ReservePort(m PortMapping) (uint16, error) {
	ln, port, err := reserve(m)
	if err != nil {
		return 0, err
	}
	closeListener(ln)
	return port, nil
}
