package netns

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	vns "github.com/vishvananda/netns"
)

// The port tests run in a child process (this test binary again) inside a
// network namespace of its own: the "host" of the test. Its bridge, veths,
// container namespaces, nftables table and forwarding switch vanish with
// it, and nothing reaches the real host's network.
const childEnv = "BERTH_PORTS_TEST_CHILD"

// inPrivateHost re-runs the test in a fresh network namespace and reports
// true when the caller is that child (and should run the test body).
func inPrivateHost(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		if err := LoopbackUp(); err != nil {
			t.Fatal(err)
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("test in a private network namespace: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "--- SKIP: "+t.Name()) {
		t.Skipf("skipped in the private namespace:\n%s", out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
	return false
}

// nftablesUsable skips when nftables cannot be used at all here.
func nftablesUsable(t *testing.T) {
	c, err := nftables.New()
	if err == nil {
		_, err = c.ListTables()
	}
	if err == nil {
		tb := c.AddTable(&nftables.Table{Name: "berth-probe", Family: nftables.TableFamilyIPv4})
		c.AddChain(&nftables.Chain{Name: "p", Table: tb, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
		c.DelTable(tb)
		err = c.Flush()
	}
	if err != nil {
		t.Skipf("nftables is not available: %v", err)
	}
}

// testNet is the test's network inside the private host: a bridge with
// two containers, and an "outside" namespace linked to the host by a veth
// pair of its own (a client on another machine).
type testNet struct {
	host           vns.NsHandle
	ctr1, ctr2     vns.NsHandle
	ext            vns.NsHandle
	bridge, table  string
	subnet         *net.IPNet
	gw, ip1, ip2   net.IP
	hostExt, extIP net.IP
}

// inNS runs fn on a thread in ns (sockets made there belong to ns).
func inNS(t *testing.T, ns vns.NsHandle, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := vns.Get()
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		if err := vns.Set(ns); err != nil {
			t.Error(err)
			return
		}
		fn()
		if err := vns.Set(orig); err != nil {
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	<-done
}

func newNS(t *testing.T) vns.NsHandle {
	t.Helper()
	var ns vns.NsHandle
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // this thread ends in the new namespace
		var err error
		ns, err = vns.New()
		if err == nil {
			err = LoopbackUp()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func setupTestNet(t *testing.T) *testNet {
	host, err := vns.Get()
	must(t, err)
	n := &testNet{
		host: host, bridge: "br-bports", table: "berth-ports-test",
		gw: net.IPv4(10, 213, 1, 1).To4(), ip1: net.IPv4(10, 213, 1, 2).To4(), ip2: net.IPv4(10, 213, 1, 3).To4(),
		hostExt: net.IPv4(10, 213, 9, 1).To4(), extIP: net.IPv4(10, 213, 9, 2).To4(),
	}
	_, n.subnet, _ = net.ParseCIDR("10.213.1.0/24")
	must(t, os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)) // this namespace's own
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.bridge}}
	must(t, netlink.LinkAdd(br))
	t.Cleanup(func() { netlink.LinkDel(br) })
	must(t, netlink.AddrAdd(br, &netlink.Addr{IPNet: &net.IPNet{IP: n.gw, Mask: n.subnet.Mask}}))
	must(t, netlink.LinkSetUp(br))

	n.ctr1, n.ctr2, n.ext = newNS(t), newNS(t), newNS(t)
	link := func(name string, ns vns.NsHandle, master netlink.Link, hostAddr, peerAddr net.IP, gw net.IP) {
		t.Helper()
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "h"}, PeerName: name + "c", PeerNamespace: netlink.NsFd(int(ns))}
		must(t, netlink.LinkAdd(veth))
		t.Cleanup(func() { netlink.LinkDel(veth) })
		if master != nil {
			must(t, netlink.LinkSetMaster(veth, master))
			// A container reaching its own published port through the
			// host: with br_netfilter the DNAT'ed frame is bridged back
			// out of the port it came in by (the bridge code must set it).
			must(t, netlink.LinkSetHairpin(veth, true))
		} else {
			must(t, netlink.AddrAdd(veth, &netlink.Addr{IPNet: &net.IPNet{IP: hostAddr, Mask: net.CIDRMask(24, 32)}}))
		}
		must(t, netlink.LinkSetUp(veth))
		h, err := netlink.NewHandleAt(ns)
		must(t, err)
		defer h.Close()
		peer, err := h.LinkByName(name + "c")
		must(t, err)
		must(t, h.AddrAdd(peer, &netlink.Addr{IPNet: &net.IPNet{IP: peerAddr, Mask: net.CIDRMask(24, 32)}}))
		must(t, h.LinkSetUp(peer))
		must(t, h.RouteAdd(&netlink.Route{LinkIndex: peer.Attrs().Index, Gw: gw}))
	}
	link("vbp1", n.ctr1, br, nil, n.ip1, n.gw)
	link("vbp2", n.ctr2, br, nil, n.ip2, n.gw)
	link("vbpx", n.ext, nil, n.hostExt, n.extIP, n.hostExt)
	t.Cleanup(func() {
		c, err := nftables.New()
		if err == nil {
			c.DelTable(&nftables.Table{Name: n.table, Family: nftables.TableFamilyIPv4})
			c.Flush()
		}
	})
	return n
}

// serve starts, in ns, a TCP server and a UDP server on port that answer
// "NAME CLIENT-IP DATA": TCP after the client's EOF (so half-close is
// exercised), UDP per datagram.
func serve(t *testing.T, ns vns.NsHandle, name string, port int) {
	var tl net.Listener
	var ul net.PacketConn
	inNS(t, ns, func() {
		var err error
		if tl, err = net.Listen("tcp4", fmt.Sprintf(":%d", port)); err != nil {
			t.Error(err)
			return
		}
		if ul, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port)); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	t.Cleanup(func() { tl.Close(); ul.Close() })
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				data, _ := io.ReadAll(c)
				ip, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				fmt.Fprintf(c, "%s %s %s", name, ip, data)
			}()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			ip, _, _ := net.SplitHostPort(from.String())
			ul.WriteTo([]byte(fmt.Sprintf("%s %s %s", name, ip, buf[:n])), from)
		}
	}()
}

// tcpAsk connects from ns to addr, sends msg, half-closes and returns the
// answer.
func tcpAsk(t *testing.T, ns vns.NsHandle, addr, msg string) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	inNS(t, ns, func() { c, err = net.DialTimeout("tcp", addr, 3*time.Second) })
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

func udpAsk(t *testing.T, ns vns.NsHandle, addr, msg string) (string, error) {
	t.Helper()
	var c net.Conn
	var err error
	inNS(t, ns, func() { c, err = net.Dial("udp", addr) })
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 2048)
	for try := 0; try < 5; try++ {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("no UDP answer from %s", addr)
}

func wantAnswer(t *testing.T, got string, err error, want string) {
	t.Helper()
	if err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func freePort(t *testing.T, proto string) uint16 {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenUDP("udp", &net.UDPAddr{})
		must(t, err)
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.ListenTCP("tcp", &net.TCPAddr{})
	must(t, err)
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func TestPublishPorts(t *testing.T) {
	if !inPrivateHost(t) {
		return
	}
	nftablesUsable(t)
	n := setupTestNet(t)
	serve(t, n.ctr1, "ctr1", 80)
	serve(t, n.ctr2, "ctr2", 80)
	UDPIdleTimeout = 300 * time.Millisecond

	const id1 = "1111111111111111111111111111111111111111111111111111111111111111"
	const id2 = "2222222222222222222222222222222222222222222222222222222222222222"
	hp := freePort(t, "tcp")
	pub, err := Publish(PublishOptions{
		Table: n.table, Bridge: n.bridge, ContainerID: id1, ContainerIP: n.ip1, // Subnet read from the bridge
		Ports: []PortMapping{
			{HostPort: hp, ContainerPort: 80},
			{HostPort: hp, ContainerPort: 80, Proto: "udp"},
			{ContainerPort: 80},
			{HostIP: n.hostExt, HostPort: hp + 1, ContainerPort: 80},
			{HostIP: net.IPv4(127, 0, 0, 1), HostPort: hp + 2, ContainerPort: 80},
		},
	})
	must(t, err)
	t.Cleanup(func() { pub.Close() })
	addr := func(ip net.IP, port uint16) string { return net.JoinHostPort(ip.String(), fmt.Sprint(port)) }
	lo := net.IPv4(127, 0, 0, 1)

	t.Run("resolved", func(t *testing.T) {
		if len(pub.Ports) != 5 || pub.Ports[0].HostPort != hp || pub.Ports[0].Proto != "tcp" {
			t.Fatalf("resolved ports: %+v", pub.Ports)
		}
		min, max := EphemeralPortRange()
		if r := pub.Ports[2].HostPort; r < min || r > max {
			t.Errorf("random port %d outside %d-%d", r, min, max)
		}
		if s := pub.Ports[0].String(); s != fmt.Sprintf("0.0.0.0:%d->80/tcp", hp) {
			t.Errorf("String() = %q", s)
		}
	})
	t.Run("tcp loopback proxy", func(t *testing.T) {
		got, err := tcpAsk(t, n.host, addr(lo, hp), "hi")
		wantAnswer(t, got, err, "ctr1 10.213.1.1 hi") // the proxy connects from the bridge address
	})
	t.Run("tcp ipv6 loopback proxy", func(t *testing.T) {
		if _, err := net.Listen("tcp6", "[::1]:0"); err != nil {
			t.Skip("no IPv6 loopback:", err)
		}
		got, err := tcpAsk(t, n.host, addr(net.IPv6loopback, hp), "v6")
		wantAnswer(t, got, err, "ctr1 10.213.1.1 v6")
	})
	t.Run("tcp dnat keeps the client address", func(t *testing.T) {
		got, err := tcpAsk(t, n.ext, addr(n.hostExt, hp), "from outside")
		wantAnswer(t, got, err, "ctr1 10.213.9.2 from outside")
	})
	t.Run("tcp dnat of local traffic", func(t *testing.T) {
		got, err := tcpAsk(t, n.host, addr(n.hostExt, hp), "local")
		wantAnswer(t, got, err, "ctr1 10.213.9.1 local")
	})
	t.Run("random port", func(t *testing.T) {
		got, err := tcpAsk(t, n.host, addr(lo, pub.Ports[2].HostPort), "r")
		wantAnswer(t, got, err, "ctr1 10.213.1.1 r")
		got, err = tcpAsk(t, n.ext, addr(n.hostExt, pub.Ports[2].HostPort), "r")
		wantAnswer(t, got, err, "ctr1 10.213.9.2 r")
	})
	t.Run("host ip", func(t *testing.T) {
		got, err := tcpAsk(t, n.ext, addr(n.hostExt, hp+1), "x")
		wantAnswer(t, got, err, "ctr1 10.213.9.2 x")
		if _, err := tcpAsk(t, n.host, addr(lo, hp+1), "x"); err == nil {
			t.Errorf("port %d answers on 127.0.0.1 though published on %v only", hp+1, n.hostExt)
		}
		got, err = tcpAsk(t, n.host, addr(lo, hp+2), "lo")
		wantAnswer(t, got, err, "ctr1 10.213.1.1 lo")
		if _, err := tcpAsk(t, n.ext, addr(n.hostExt, hp+2), "x"); err == nil {
			t.Errorf("port %d answers on %v though published on 127.0.0.1 only", hp+2, n.hostExt)
		}
	})
	t.Run("udp", func(t *testing.T) {
		got, err := udpAsk(t, n.host, addr(lo, hp), "u1")
		wantAnswer(t, got, err, "ctr1 10.213.1.1 u1")
		got, err = udpAsk(t, n.ext, addr(n.hostExt, hp), "u2")
		wantAnswer(t, got, err, "ctr1 10.213.9.2 u2")
		if pub.udp[0].flowCount() != 1 {
			t.Errorf("%d UDP flows, want 1", pub.udp[0].flowCount())
		}
		deadline := time.Now().Add(3 * time.Second)
		for pub.udp[0].flowCount() != 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if c := pub.udp[0].flowCount(); c != 0 {
			t.Errorf("%d UDP flows after the idle timeout", c)
		}
	})
	t.Run("hairpin", func(t *testing.T) {
		// ctr2 reaches ctr1's published port through the host's bridge
		// address and through another host address; ctr1 reaches itself.
		got, err := tcpAsk(t, n.ctr2, addr(n.gw, hp), "h1")
		wantAnswer(t, got, err, "ctr1 10.213.1.1 h1")
		got, err = tcpAsk(t, n.ctr2, addr(n.hostExt, hp), "h2")
		wantAnswer(t, got, err, "ctr1 10.213.1.1 h2")
		got, err = tcpAsk(t, n.ctr1, addr(n.hostExt, hp), "self")
		wantAnswer(t, got, err, "ctr1 10.213.1.1 self")
		got, err = udpAsk(t, n.ctr2, addr(n.gw, hp), "hu")
		wantAnswer(t, got, err, "ctr1 10.213.1.1 hu")
	})
	t.Run("port in use", func(t *testing.T) {
		_, err := Publish(PublishOptions{Table: n.table, Bridge: n.bridge, Subnet: n.subnet, ContainerID: id2, ContainerIP: n.ip2,
			Ports: []PortMapping{{HostPort: hp + 3, ContainerPort: 80}, {HostPort: hp, ContainerPort: 80}}})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d/tcp is already in use", hp)) {
			t.Fatalf("err = %v, want port %d/tcp is already in use", err, hp)
		}
		if rules, err := PortRules(n.table, id2); err != nil || len(rules) != 0 {
			t.Errorf("rules left by a failed publish: %v %v", rules, err)
		}
		// hp+3 was freed again.
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", hp+3))
		if err != nil {
			t.Fatalf("port of a failed publish still taken: %v", err)
		}
		l.Close()
		_, err = Publish(PublishOptions{Table: n.table, Bridge: n.bridge, ContainerID: id2, ContainerIP: n.ip2,
			Ports: []PortMapping{{HostIP: net.IPv4(10, 9, 9, 9), HostPort: hp + 3, ContainerPort: 80}}})
		if err == nil || !strings.Contains(err.Error(), "not an address of this host") {
			t.Errorf("publishing on a foreign address: %v", err)
		}
	})
	t.Run("range", func(t *testing.T) {
		// hp is taken: a range starting there takes the next free port.
		p2, err := Publish(PublishOptions{Table: n.table, Bridge: n.bridge, Subnet: n.subnet, ContainerID: id2, ContainerIP: n.ip2,
			Ports: []PortMapping{{HostPort: hp, HostPortEnd: hp + 3, ContainerPort: 80, Proto: "udp"}, {HostPort: hp, HostPortEnd: hp + 3, ContainerPort: 80}}})
		must(t, err)
		defer p2.Close()
		if p2.Ports[0].HostPort != hp+1 || p2.Ports[0].HostPortEnd != 0 || p2.Ports[1].HostPort != hp+3 {
			t.Errorf("range resolved to %+v", p2.Ports)
		}
		if _, err := Publish(PublishOptions{Table: n.table, Bridge: n.bridge, ContainerID: id2 + "x", ContainerIP: n.ip2,
			Ports: []PortMapping{{HostPort: hp, HostPortEnd: hp + 2, ContainerPort: 80}}}); err == nil || !strings.Contains(err.Error(), "already in use") {
			t.Errorf("full range: %v", err)
		}
	})
	t.Run("two containers and unpublish", func(t *testing.T) {
		hp2 := freePort(t, "tcp")
		p2, err := Publish(PublishOptions{Table: n.table, Bridge: n.bridge, Subnet: n.subnet, ContainerID: id2, ContainerIP: n.ip2,
			Ports: []PortMapping{{HostPort: hp2, ContainerPort: 80}}})
		must(t, err)
		got, err := tcpAsk(t, n.ext, addr(n.hostExt, hp2), "two")
		wantAnswer(t, got, err, "ctr2 10.213.9.2 two")
		got, err = tcpAsk(t, n.ctr1, addr(n.gw, hp2), "one to two")
		wantAnswer(t, got, err, "ctr2 10.213.1.1 one to two")
		rules, err := PortRules(n.table, id2)
		must(t, err)
		if rules[chainPre] != 1 || rules[chainOut] != 1 || rules[chainPost] != 1 {
			t.Errorf("rules of the second container: %v", rules)
		}
		// A crash: another process removes the rules with nothing but the
		// table and the ID; twice is fine.
		must(t, Unpublish(n.table, id2))
		must(t, Unpublish(n.table, id2))
		if rules, _ := PortRules(n.table, id2); len(rules) != 0 {
			t.Errorf("rules after Unpublish: %v", rules)
		}
		// Without its DNAT rule the port is served by the proxy, which
		// cannot keep the client's address.
		got, err = tcpAsk(t, n.ext, addr(n.hostExt, hp2), "proxied")
		wantAnswer(t, got, err, "ctr2 10.213.1.1 proxied")
		must(t, p2.Close())
		must(t, p2.Close())
		// The first container's rules are untouched.
		got, err = tcpAsk(t, n.ext, addr(n.hostExt, hp), "still")
		wantAnswer(t, got, err, "ctr1 10.213.9.2 still")
	})
	t.Run("close", func(t *testing.T) {
		rules, err := PortRules(n.table, id1)
		must(t, err)
		// four DNAT'ed mappings (the 127.0.0.1 one is the proxy's only), one masquerade
		if rules[chainPre] != 4 || rules[chainOut] != 4 || rules[chainPost] != 1 {
			t.Errorf("rules of the first container: %v", rules)
		}
		must(t, pub.Close())
		if rules, _ := PortRules(n.table, id1); len(rules) != 0 {
			t.Errorf("rules after Close: %v", rules)
		}
		if _, err := tcpAsk(t, n.host, addr(lo, hp), "gone"); err == nil {
			t.Errorf("proxy still answers after Close")
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", hp))
		if err != nil {
			t.Fatalf("port still taken after Close: %v", err)
		}
		l.Close()
		must(t, Unpublish("no-such-table", id1))
	})
}

// TestPublishTableFirst: the bridge code may create the table (with chains
// of its own) before or after Publish; neither side breaks the other.
func TestPublishTableFirst(t *testing.T) {
	if !inPrivateHost(t) {
		return
	}
	nftablesUsable(t)
	n := setupTestNet(t)
	serve(t, n.ctr1, "ctr1", 8080)
	c, err := nftables.New()
	must(t, err)
	tb := c.AddTable(&nftables.Table{Name: n.table, Family: nftables.TableFamilyIPv4})
	c.AddChain(&nftables.Chain{Name: "postrouting", Table: tb, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	must(t, c.Flush())
	hp := freePort(t, "tcp")
	pub, err := Publish(PublishOptions{Table: n.table, Bridge: n.bridge, Subnet: n.subnet, ContainerID: "abc", ContainerIP: n.ip1,
		Ports: []PortMapping{{HostPort: hp, ContainerPort: 8080}}})
	must(t, err)
	defer pub.Close()
	// The bridge code adding its table again changes nothing.
	c.AddTable(&nftables.Table{Name: n.table, Family: nftables.TableFamilyIPv4})
	must(t, c.Flush())
	got, err := tcpAsk(t, n.ext, net.JoinHostPort(n.hostExt.String(), fmt.Sprint(hp)), "t")
	wantAnswer(t, got, err, "ctr1 10.213.9.2 t")
	// Publishing again for the same ID (a restart after a crash) replaces
	// the old rules instead of doubling them.
	must(t, pub.Close())
	pub2, err := Publish(PublishOptions{Table: n.table, Bridge: n.bridge, Subnet: n.subnet, ContainerID: "abc", ContainerIP: n.ip1,
		Ports: []PortMapping{{HostPort: hp, ContainerPort: 8080}}})
	must(t, err)
	defer pub2.Close()
	// As if this process crashed: its ports are free, its rules stay.
	for _, cl := range pub2.closers {
		cl()
	}
	pub2.rules = false
	pub3, err := Publish(PublishOptions{Table: n.table, Bridge: n.bridge, Subnet: n.subnet, ContainerID: "abc", ContainerIP: n.ip1,
		Ports: []PortMapping{{HostPort: hp, ContainerPort: 8080}}})
	must(t, err)
	defer pub3.Close()
	rules, err := PortRules(n.table, "abc")
	must(t, err)
	if rules[chainPre] != 1 {
		t.Errorf("rules after a republish: %v", rules)
	}
	// The table's deletion by the bridge code takes the rules with it.
	c.DelTable(tb)
	must(t, c.Flush())
	must(t, Unpublish(n.table, "abc"))
}

func TestNilPublishedClose(t *testing.T) {
	var p *Published // publishPorts returns nil when there is nothing to publish
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
