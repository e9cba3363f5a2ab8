package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostNetworks lists the address ranges in use on the host: the networks
// of every address and every route (except default routes) in any table,
// and the resolv.conf nameservers. except names a device to leave out.
func hostNetworks(except string) ([]takenNet, error) {
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing host interfaces: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []takenNet
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("listing host addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IPNet == nil || names[a.LinkIndex] == except {
			continue
		}
		ones, bits := a.Mask.Size()
		out = append(out, takenNet{&net.IPNet{IP: a.IP.Mask(a.Mask), Mask: net.CIDRMask(ones, bits)}, "address " + a.IPNet.String() + " on " + names[a.LinkIndex]})
	}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("listing host routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask) || names[r.LinkIndex] == except && except != "" {
			continue
		}
		if r.Dst.IP.IsLoopback() || r.Type == unix.RTN_BROADCAST || r.Type == unix.RTN_LOCAL {
			continue
		}
		out = append(out, takenNet{r.Dst, "route to " + r.Dst.String() + " via " + names[r.LinkIndex]})
	}
	out = append(out, nameserverNets("/etc/resolv.conf")...)
	return out, nil
}

// retryDump repeats a netlink dump that the kernel reports as
// interrupted (the list changed meanwhile: other containers' veths come
// and go all the time).
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	for try := 0; ; try++ {
		out, err := dump()
		if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) || try == 20 {
			return out, err
		}
	}
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// makeBridge makes n's bridge device with its gateway address, brings it
// up and makes its nftables table (or updates berth's chains of an
// existing one). The caller holds the global lock. A device of the same
// name left from before is replaced.
func makeBridge(n *Network) error {
	if old, err := netlink.LinkByName(n.Bridge); err == nil {
		netlink.LinkDel(old)
	}
	hadTable := TableExists(n.Table())
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, Alias: "berth network " + n.Name}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("creating bridge %s: %w", n.Bridge, err)
	}
	ok := false
	defer func() {
		if !ok {
			netlink.LinkDel(br)
			if !hadTable {
				deleteTable(n.Table())
			}
		}
	}()
	gw := net.ParseIP(n.Gateway).To4()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw, Mask: net.CIDRMask(n.Prefix(), 32)}}
	if err := netlink.AddrAdd(br, addr); err != nil {
		return fmt.Errorf("adding %s to bridge %s: %w", addr.IPNet, n.Bridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bringing up bridge %s: %w", n.Bridge, err)
	}
	if err := setupTable(n); err != nil {
		return err
	}
	if !n.Internal {
		if err := enableForwarding(); err != nil {
			return err
		}
	}
	ok = true
	return nil
}

// RemoveBridge deletes n's bridge device and nftables table; it is
// idempotent.
func RemoveBridge(n *Network) error {
	if l, err := netlink.LinkByName(n.Bridge); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			return fmt.Errorf("removing bridge %s: %w", n.Bridge, err)
		}
	}
	return deleteTable(n.Table())
}

// removeBridge is RemoveBridge where the store's bridges are. A rootless
// store whose namespace was never made has nothing to remove.
func (s *Store) removeBridge(n *Network) error {
	if s.nsPath != "" && !IsNamespace(s.nsPath) {
		return nil
	}
	return Do(s.nsPath, func() error { return RemoveBridge(n) })
}

// IsNamespace tells whether path is a network namespace (a bind mount of
// one, or /proc/PID/ns/net).
func IsNamespace(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// EnsureBridge makes sure n's bridge exists, making it again after a
// reboot (or after its removal by hand). This is on every container
// start: the common case is one netlink lookup.
func (s *Store) EnsureBridge(n *Network) (*Network, error) {
	exists := false
	if err := s.Do(func() error {
		if _, err := netlink.LinkByName(n.Bridge); err != nil {
			return nil
		}
		exists = true
		if !n.Internal {
			// Someone may have turned it off since (one read of /proc).
			return enableForwarding()
		}
		return nil
	}); err != nil || exists {
		return n, err
	}
	lock, err := s.LockNetwork(n.Name)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	if cur, err := s.Get(n.Name); err == nil {
		n = cur
	}
	eps, _ := s.Endpoints(n.Name)
	glock, err := s.lockGlobal()
	if err != nil {
		return nil, err
	}
	defer glock.Unlock()
	var taken []takenNet
	if err := s.Do(func() error {
		if _, err := netlink.LinkByName(n.Bridge); err == nil {
			exists = true
			return nil
		}
		taken, err = hostNetworks(n.Bridge)
		return err
	}); err != nil || exists {
		return n, err
	}
	if t := overlapping(n.IPNet(), taken); t != "" {
		if !n.IsDefault() || len(eps) > 0 {
			return nil, fmt.Errorf("cannot bring up network %s: its subnet %s now overlaps with %s", n.Name, n.Subnet, t)
		}
		// The default network follows the host: choose again.
		others, _ := s.List()
		for _, o := range others {
			if o.Name != n.Name && o.IPNet() != nil {
				taken = append(taken, takenNet{o.IPNet(), "network " + o.Name})
			}
		}
		sn, err := chooseSubnet(taken)
		if err != nil {
			return nil, err
		}
		n.Subnet, n.Gateway = sn.String(), addIP(sn.IP, 1).String()
		if err := s.save(n); err != nil {
			return nil, err
		}
	}
	if err := s.Do(func() error { return makeBridge(n) }); err != nil {
		return nil, err
	}
	return n, nil
}

// enableForwarding turns on IPv4 forwarding, as docker does when it
// makes a bridge network.
func enableForwarding() error {
	const path = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enabling IPv4 forwarding: %w", err)
	}
	return nil
}

// BridgeExists tells whether a device of that name exists.
func BridgeExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}
