package state

import "net"

// Attachment is one network interface of a running container: what berth
// made for it on the host and inside its network namespace. It is kept in
// the container's state (State.Networks) from the moment the interface is
// made until it is released, so that a crashed monitor's leftovers can be
// found and removed by whichever command notices the crash.
type Attachment struct {
	Network   string   `json:"network"`   // network name ("bridge" for the default one)
	NetworkID string   `json:"networkID"` // 64 hex
	Bridge    string   `json:"bridge"`    // the bridge device on the host
	Table     string   `json:"table"`     // berth's nftables table of the network (family ip)
	Interface string   `json:"interface"` // inside the container: eth0, eth1, …
	HostVeth  string   `json:"hostVeth"`  // the host end of the veth pair
	IP        string   `json:"ip"`        // the container's IPv4 address
	Prefix    int      `json:"prefix"`    // the subnet's prefix length
	Gateway   string   `json:"gateway"`   // "" on an --internal network
	MAC       string   `json:"mac"`
	Aliases   []string `json:"aliases,omitempty"` // names the container has on this network
	Internal  bool     `json:"internal,omitempty"`
}

// Subnet is the network's subnet: IP masked by Prefix (nil if IP is not
// an IPv4 address).
func (a Attachment) Subnet() *net.IPNet {
	ip := net.ParseIP(a.IP).To4()
	if ip == nil {
		return nil
	}
	mask := net.CIDRMask(a.Prefix, 32)
	return &net.IPNet{IP: ip.Mask(mask), Mask: mask}
}
