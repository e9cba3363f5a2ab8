package netns

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func taken(t *testing.T, cidrs ...string) []takenNet {
	var out []takenNet
	for _, c := range cidrs {
		out = append(out, takenNet{mustNet(t, c), "test"})
	}
	return out
}

func TestChooseSubnet(t *testing.T) {
	cases := []struct {
		taken []string
		want  string
	}{
		{nil, "172.17.0.0/16"},
		{[]string{"172.17.0.0/16"}, "172.18.0.0/16"},
		// A host route inside a candidate rules it out.
		{[]string{"172.17.5.0/24", "172.18.0.1/32"}, "172.19.0.0/16"},
		// A large range covering all of 172.16/12 moves on to 10.89.x.0/24.
		{[]string{"172.16.0.0/12"}, "10.89.0.0/24"},
		{[]string{"172.16.0.0/12", "10.89.0.0/23"}, "10.89.2.0/24"},
		{[]string{"172.16.0.0/12", "10.0.0.0/8"}, "192.168.255.0/24"},
	}
	for _, c := range cases {
		sn, err := chooseSubnet(taken(t, c.taken...))
		if err != nil {
			t.Errorf("taken %v: %v", c.taken, err)
			continue
		}
		if sn.String() != c.want {
			t.Errorf("taken %v: got %s, want %s", c.taken, sn, c.want)
		}
	}
	if _, err := chooseSubnet(taken(t, "172.16.0.0/12", "10.0.0.0/8", "192.168.0.0/16")); err == nil {
		t.Error("a subnet was chosen with every candidate taken")
	}
}

func TestOverlapping(t *testing.T) {
	tk := taken(t, "192.0.2.0/24")
	if overlapping(mustNet(t, "192.0.2.128/25"), tk) == "" {
		t.Error("a subnet inside a taken one does not overlap")
	}
	if overlapping(mustNet(t, "192.0.0.0/16"), tk) == "" {
		t.Error("a subnet around a taken one does not overlap")
	}
	if overlapping(mustNet(t, "192.0.3.0/24"), tk) != "" {
		t.Error("disjoint subnets overlap")
	}
}

func TestNameserverNets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("# x\nnameserver 172.17.0.53\nnameserver ::1\nsearch a\n"), 0o644)
	ns := nameserverNets(p)
	if len(ns) != 1 || !ns[0].net.Contains(net.ParseIP("172.17.0.53")) {
		t.Fatalf("nameservers = %v", ns)
	}
	if sn, _ := chooseSubnet(ns); sn.String() != "172.18.0.0/16" {
		t.Errorf("subnet with a nameserver in 172.17/16: %s", sn)
	}
}

func TestNames(t *testing.T) {
	if got := bridgeName(DefaultRoot, DefaultNetwork, ""); got != "berth0" {
		t.Errorf("default bridge = %s", got)
	}
	for _, root := range []string{"/tmp/a/root", "/tmp/b/root"} {
		for _, n := range []string{DefaultNetwork, "a-network-with-a-long-name"} {
			b := bridgeName(root, n, "0123456789abcdef")
			if len(b) > 15 || b[:9] != DevicePrefix(root) {
				t.Errorf("bridge name %q of %s/%s", b, root, n)
			}
		}
		v := VethName(root, "0123456789abcdef0123", "bridge")
		if len(v) > 15 || v[:8] != VethPrefix(root) {
			t.Errorf("veth name %q", v)
		}
	}
	if bridgeName("/tmp/a/root", "x", "") == bridgeName("/tmp/b/root", "x", "") {
		t.Error("two stores share a bridge name")
	}
	if len(bridgeName(DefaultRoot, "x", "0123456789abcdef")) > 15 {
		t.Error("default store user bridge name too long")
	}
}

func TestNewNetworkValidation(t *testing.T) {
	s := OpenStore(t.TempDir())
	bad := []CreateRequest{
		{Name: "x", Subnet: "bogus"},
		{Name: "x", Subnet: "10.1.2.3/24"},
		{Name: "x", Subnet: "10.1.2.0/31"},
		{Name: "x", Subnet: "10.1.2.0/24", Gateway: "10.1.3.1"},
		{Name: "x", Subnet: "10.1.2.0/24", Gateway: "10.1.2.255"},
		{Name: "x", Subnet: "10.1.2.0/24", IPRange: "10.1.3.0/25"},
		{Name: "x", Gateway: "10.1.2.1"},
	}
	for _, r := range bad {
		if _, err := s.newNetwork(r); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	n, err := s.newNetwork(CreateRequest{Name: "x", Subnet: "10.1.2.0/24", IPRange: "10.1.2.128/25"})
	if err != nil || n.Gateway != "10.1.2.1" || n.Prefix() != 24 {
		t.Errorf("good request: %+v, %v", n, err)
	}
}
