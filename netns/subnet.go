package netns

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"
)

// takenNet is an address range in use on the host, and by what.
type takenNet struct {
	net  *net.IPNet
	what string
}

// candidateSubnets are the private ranges berth picks from, in order:
// docker's 172.17–172.31 /16s, then /24s of 10.89.0.0/16 (podman's range for
// its own networks) and of 192.168.0.0/16, from the top.
func candidateSubnets() []*net.IPNet {
	var out []*net.IPNet
	for b := 17; b <= 31; b++ {
		out = append(out, &net.IPNet{IP: net.IPv4(172, byte(b), 0, 0).To4(), Mask: net.CIDRMask(16, 32)})
	}
	for c := 0; c <= 255; c++ {
		out = append(out, &net.IPNet{IP: net.IPv4(10, 89, byte(c), 0).To4(), Mask: net.CIDRMask(24, 32)})
	}
	for c := 255; c >= 100; c-- {
		out = append(out, &net.IPNet{IP: net.IPv4(192, 168, byte(c), 0).To4(), Mask: net.CIDRMask(24, 32)})
	}
	return out
}

// chooseSubnet returns the first candidate that overlaps nothing taken.
func chooseSubnet(taken []takenNet) (*net.IPNet, error) {
	for _, c := range candidateSubnets() {
		if overlapping(c, taken) == "" {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no free private subnet left for a new network: give one with --subnet")
}

// overlapping names the first taken range that overlaps sn ("" if none).
func overlapping(sn *net.IPNet, taken []takenNet) string {
	if sn == nil {
		return ""
	}
	for _, t := range taken {
		if overlaps(sn, t.net) {
			return fmt.Sprintf("%s (%s)", t.net, t.what)
		}
	}
	return ""
}

func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

func ip4u(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func u2ip(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

func addIP(ip net.IP, n int) net.IP { return u2ip(ip4u(ip) + uint32(n)) }

func broadcast(sn *net.IPNet) net.IP {
	ones, _ := sn.Mask.Size()
	return u2ip(ip4u(sn.IP) | (1<<(32-ones) - 1))
}

// nameserverNets are the resolv.conf nameservers of the host, as /32s: a
// bridge must not hide them.
func nameserverNets(path string) []takenNet {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []takenNet
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]).To4(); ip != nil {
				out = append(out, takenNet{&net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}, "nameserver in /etc/resolv.conf"})
			}
		}
	}
	return out
}
