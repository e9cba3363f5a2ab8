package netns

import (
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// DefaultBridgeName is the bridge device of a store's default network.
func DefaultBridgeName(root string) string { return bridgeName(root, DefaultNetwork, "") }

// Leftovers lists what a store other than the default one has on the
// host: its bridges, the host ends of its veths, and its nftables tables
// (for the test harness's leak checks).
func Leftovers(root string) (bridges, veths, tables []string) {
	dev, vp := DevicePrefix(root), VethPrefix(root)
	links, _ := retryDump(netlink.LinkList)
	for _, l := range links {
		name := l.Attrs().Name
		switch {
		case strings.HasPrefix(name, dev):
			bridges = append(bridges, name)
		case strings.HasPrefix(name, vp):
			veths = append(veths, name)
		}
	}
	if c, err := nftables.New(); err == nil {
		ts, _ := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
		for _, t := range ts {
			if strings.HasPrefix(t.Name, dev) {
				tables = append(tables, t.Name)
			}
		}
	}
	return bridges, veths, tables
}

// RemoveDevice deletes a network device if it exists.
func RemoveDevice(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	return netlink.LinkDel(l)
}

// RemoveTable deletes berth's nftables table of that name if it exists.
func RemoveTable(name string) error { return deleteTable(name) }
