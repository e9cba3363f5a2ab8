package netns

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/berth-dev/berth/state"
)

// Endpoint is one address in use on a network: ROOT/networks/NAME.ipam.json
// maps each address to its endpoint. Names are what the address is called
// in the hosts files of the network's other containers.
type Endpoint struct {
	ContainerID string   `json:"containerID"`
	IP          string   `json:"ip"`
	Names       []string `json:"names,omitempty"`
}

type ipamFile struct {
	Last      string               `json:"last,omitempty"` // the address given out last
	Endpoints map[string]*Endpoint `json:"endpoints"`      // by address
}

func (s *Store) ipamPath(name string) string { return filepath.Join(s.dir, name+".ipam.json") }

func (s *Store) readIPAM(name string) (*ipamFile, error) {
	f := &ipamFile{Endpoints: map[string]*Endpoint{}}
	data, err := os.ReadFile(s.ipamPath(name))
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(data) == 0) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, f); err != nil {
		return nil, fmt.Errorf("decoding addresses of network %s: %w", name, err)
	}
	if f.Endpoints == nil {
		f.Endpoints = map[string]*Endpoint{}
	}
	return f, nil
}

func (s *Store) writeIPAM(name string, f *ipamFile) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	// No fsync: allocations matter only while containers run, and the
	// release of a crashed container's address is idempotent.
	return state.ReplaceFile(s.ipamPath(name), data, 0o600)
}

// Endpoints lists the addresses in use on a network, by address.
func (s *Store) Endpoints(name string) ([]*Endpoint, error) {
	f, err := s.readIPAM(name)
	if err != nil {
		return nil, err
	}
	out := make([]*Endpoint, 0, len(f.Endpoints))
	for _, e := range f.Endpoints {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return ip4u(net.ParseIP(out[i].IP)) < ip4u(net.ParseIP(out[j].IP)) })
	return out, nil
}

// Allocate gives container id an address on n: want if given (it must be
// in the subnet and free), else the next free one after the last given
// out. The caller holds the network's lock. A container that has an
// address already gets it again.
func (s *Store) Allocate(n *Network, id string, want net.IP, names []string) (net.IP, error) {
	f, err := s.readIPAM(n.Name)
	if err != nil {
		return nil, err
	}
	sn := n.IPNet()
	if sn == nil {
		return nil, fmt.Errorf("network %s has no valid subnet", n.Name)
	}
	for ip, e := range f.Endpoints {
		if e.ContainerID == id && (want == nil || want.Equal(net.ParseIP(ip))) {
			e.Names = names
			return net.ParseIP(ip).To4(), s.writeIPAM(n.Name, f)
		}
	}
	var ip net.IP
	if want != nil {
		ip, err = checkWanted(n, sn, want, f)
	} else {
		ip, err = nextFree(sn, ipRange(n), net.ParseIP(n.Gateway), f.Endpoints, net.ParseIP(f.Last))
	}
	if err != nil {
		return nil, err
	}
	f.Endpoints[ip.String()] = &Endpoint{ContainerID: id, IP: ip.String(), Names: names}
	f.Last = ip.String()
	if err := s.writeIPAM(n.Name, f); err != nil {
		return nil, err
	}
	return ip, nil
}

// Release frees every address of container id on the network; it is
// idempotent. The caller holds the network's lock.
func (s *Store) Release(name, id string) (bool, error) {
	f, err := s.readIPAM(name)
	if err != nil {
		return false, err
	}
	changed := false
	for ip, e := range f.Endpoints {
		if e.ContainerID == id {
			delete(f.Endpoints, ip)
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	return true, s.writeIPAM(name, f)
}

func ipRange(n *Network) *net.IPNet {
	if n.IPRange == "" {
		return n.IPNet()
	}
	_, r, err := net.ParseCIDR(n.IPRange)
	if err != nil {
		return n.IPNet()
	}
	return r
}

// CheckIP tells whether ip may be asked for on n (--ip): inside the
// subnet, not the network, broadcast or gateway address.
func CheckIP(n *Network, ip net.IP) error {
	sn := n.IPNet()
	if sn == nil || ip.To4() == nil || !sn.Contains(ip) {
		return invalidf("address %s is not in the subnet %s of network %s", ip, n.Subnet, n.Name)
	}
	if ip.Equal(sn.IP) || ip.Equal(broadcast(sn)) || ip.Equal(net.ParseIP(n.Gateway)) {
		return invalidf("address %s is reserved on network %s", ip, n.Name)
	}
	return nil
}

func checkWanted(n *Network, sn *net.IPNet, want net.IP, f *ipamFile) (net.IP, error) {
	if err := CheckIP(n, want); err != nil {
		return nil, err
	}
	if e, ok := f.Endpoints[want.To4().String()]; ok {
		return nil, invalidf("address %s is already in use on network %s by container %.12s", want, n.Name, e.ContainerID)
	}
	return want.To4(), nil
}

// nextFree returns the first free host address of r (within sn) after
// last, wrapping around, skipping the network, broadcast and gateway
// addresses. Not reusing an address at once (as docker) keeps a stale
// hosts entry or ARP cache from pointing at a new container.
func nextFree(sn, r *net.IPNet, gw net.IP, used map[string]*Endpoint, last net.IP) (net.IP, error) {
	lo, hi := ip4u(r.IP), ip4u(broadcast(r))
	snLo, snHi := ip4u(sn.IP), ip4u(broadcast(sn))
	if lo <= snLo {
		lo = snLo + 1
	}
	if hi >= snHi {
		hi = snHi - 1
	}
	if lo > hi {
		return nil, fmt.Errorf("no addresses in range %s", r)
	}
	start := lo
	if last != nil && last.To4() != nil {
		if l := ip4u(last); l >= lo && l < hi {
			start = l + 1
		}
	}
	size := hi - lo + 1
	for i := uint32(0); i < size; i++ {
		v := lo + (start-lo+i)%size
		ip := u2ip(v)
		if gw != nil && ip.Equal(gw) {
			continue
		}
		if _, ok := used[ip.String()]; ok {
			continue
		}
		return ip, nil
	}
	return nil, fmt.Errorf("no free address left in %s", r)
}
