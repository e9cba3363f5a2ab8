package netns

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Interface is what AttachVeth makes: a veth pair whose host end HostVeth
// is a port of the network's bridge and whose other end is Name inside
// the network namespace of Pid, with IP/prefix, MAC and (unless Gateway
// is nil) a default route.
type Interface struct {
	Pid      int
	Name     string // eth0, eth1, …
	HostVeth string
	IP       net.IP
	Prefix   int
	Gateway  net.IP
	MAC      net.HardwareAddr
}

// MACFor is docker's classic MAC for an IPv4 address: 02:42 then the
// address's four bytes (unique per network as the address is).
func MACFor(ip net.IP) net.HardwareAddr {
	ip4 := ip.To4()
	return net.HardwareAddr{0x02, 0x42, ip4[0], ip4[1], ip4[2], ip4[3]}
}

// AttachVeth makes the interface: CreateVeth then ConfigurePeer. All of
// it is done from the host side over netlink (a handle in the
// container's namespace), no process is started. On error nothing is
// left.
func AttachVeth(n *Network, ifc Interface) error {
	if err := CreateVeth(n, ifc.Pid, ifc.Name, ifc.HostVeth); err != nil {
		return err
	}
	if err := ConfigurePeer(ifc); err != nil {
		DetachVeth(ifc.HostVeth)
		return err
	}
	return nil
}

// CreateVeth makes the veth pair: hostVeth, up, a port of n's bridge, and
// its peer ifname (down, without an address) in the network namespace of
// pid. It needs no address, so it runs while one is being allocated.
func CreateVeth(n *Network, pid int, ifname, hostVeth string) error {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s of network %s: %w", n.Bridge, n.Name, err)
	}
	ns, err := vnetns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("opening network namespace of pid %d: %w", pid, err)
	}
	defer ns.Close()
	mtu := br.Attrs().MTU
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostVeth, MTU: mtu, MasterIndex: br.Attrs().Index},
		PeerName:      ifname,
		PeerNamespace: netlink.NsFd(int(ns)),
		PeerMTU:       uint32(mtu),
	}
	// A veth of the same name may still be on its way out with the
	// namespace of the container's previous run: the kernel deletes it
	// in the background.
	for try := 0; ; try++ {
		err := netlink.LinkAdd(veth)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || try == 50 {
			return fmt.Errorf("creating veth %s: %w", hostVeth, err)
		}
		DetachVeth(hostVeth)
		time.Sleep(10 * time.Millisecond)
	}
	// Hairpin: a container reaching its own published port through a
	// host address gets the DNAT'ed frame back out of its own port.
	if err := netlink.LinkSetHairpin(veth, true); err != nil {
		DetachVeth(hostVeth)
		return fmt.Errorf("setting hairpin mode on %s: %w", hostVeth, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		DetachVeth(hostVeth)
		return fmt.Errorf("bringing up %s: %w", hostVeth, err)
	}
	return nil
}

// ConfigurePeer gives the container's end of a veth made by CreateVeth
// its MAC and address, brings it up and, with a gateway, adds the
// default route. It works on a thread in the container's namespace (see
// Do: netlink's own NewHandleAt would move a thread back to a namespace
// a rootless berth cannot re-enter).
func ConfigurePeer(ifc Interface) error {
	return Do(fmt.Sprintf("/proc/%d/ns/net", ifc.Pid), func() error {
		peer, err := netlink.LinkByName(ifc.Name)
		if err != nil {
			return fmt.Errorf("finding %s in the container: %w", ifc.Name, err)
		}
		if len(ifc.MAC) == 6 {
			if err := netlink.LinkSetHardwareAddr(peer, ifc.MAC); err != nil {
				return fmt.Errorf("setting MAC address %s of %s: %w", ifc.MAC, ifc.Name, err)
			}
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: ifc.IP.To4(), Mask: net.CIDRMask(ifc.Prefix, 32)}}
		if err := netlink.AddrAdd(peer, addr); err != nil {
			return fmt.Errorf("adding %s to %s: %w", addr.IPNet, ifc.Name, err)
		}
		if err := netlink.LinkSetUp(peer); err != nil {
			return fmt.Errorf("bringing up %s: %w", ifc.Name, err)
		}
		if ifc.Gateway != nil {
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: peer.Attrs().Index, Gw: ifc.Gateway.To4()}); err != nil {
				return fmt.Errorf("adding default route via %s: %w", ifc.Gateway, err)
			}
		}
		return nil
	})
}

// DetachVeth deletes the veth pair whose host end is hostVeth; a missing
// one is no error (the pair goes away by itself with the container's
// namespace).
func DetachVeth(hostVeth string) error {
	l, err := netlink.LinkByName(hostVeth)
	if err != nil {
		return nil
	}
	if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("removing %s: %w", hostVeth, err)
	}
	return nil
}
