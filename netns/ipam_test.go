package netns

import (
	"net"
	"sync"
	"testing"
)

func mustNet(t *testing.T, cidr string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNextFree(t *testing.T) {
	sn := mustNet(t, "10.0.0.0/29") // hosts .1–.6
	gw := net.ParseIP("10.0.0.1")
	used := map[string]*Endpoint{}
	var got []string
	var last net.IP
	for i := 0; i < 5; i++ {
		ip, err := nextFree(sn, sn, gw, used, last)
		if err != nil {
			t.Fatal(err)
		}
		used[ip.String()] = &Endpoint{}
		last = ip
		got = append(got, ip.String())
	}
	want := []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocations = %v, want %v", got, want)
		}
	}
	if _, err := nextFree(sn, sn, gw, used, last); err == nil {
		t.Fatal("a full subnet gave an address")
	}
	// Freed addresses are reused only after the others (round robin).
	delete(used, "10.0.0.3")
	delete(used, "10.0.0.5")
	ip, _ := nextFree(sn, sn, gw, used, net.ParseIP("10.0.0.4"))
	if ip.String() != "10.0.0.5" {
		t.Errorf("after .4 got %s, want 10.0.0.5", ip)
	}
	ip, _ = nextFree(sn, sn, gw, used, net.ParseIP("10.0.0.6"))
	if ip.String() != "10.0.0.3" {
		t.Errorf("wrapping got %s, want 10.0.0.3", ip)
	}
}

func TestNextFreeRange(t *testing.T) {
	sn := mustNet(t, "10.0.0.0/24")
	r := mustNet(t, "10.0.0.128/30")
	used := map[string]*Endpoint{}
	var got []string
	for {
		ip, err := nextFree(sn, r, net.ParseIP("10.0.0.1"), used, nil)
		if err != nil {
			break
		}
		used[ip.String()] = &Endpoint{}
		got = append(got, ip.String())
	}
	if len(got) != 4 || got[0] != "10.0.0.128" || got[3] != "10.0.0.131" {
		t.Errorf("range allocations = %v", got)
	}
}

func testNetwork(t *testing.T, cidr, gw string) (*Store, *Network) {
	s := OpenStore(t.TempDir())
	if err := s.mkdir(); err != nil {
		t.Fatal(err)
	}
	n := &Network{ID: "0123456789abcdef", Name: "n1", Subnet: cidr, Gateway: gw}
	return s, n
}

func TestAllocateRelease(t *testing.T) {
	s, n := testNetwork(t, "10.9.0.0/24", "10.9.0.1")
	a, err := s.Allocate(n, "ctr-a", nil, []string{"a"})
	if err != nil || a.String() != "10.9.0.2" {
		t.Fatalf("first allocation %v, %v", a, err)
	}
	// The same container asking again keeps its address.
	again, err := s.Allocate(n, "ctr-a", nil, []string{"a", "alias"})
	if err != nil || !again.Equal(a) {
		t.Fatalf("second allocation for the same container %v, %v", again, err)
	}
	if _, err := s.Allocate(n, "ctr-b", net.ParseIP("10.9.0.2"), nil); err == nil {
		t.Fatal("an address in use was given twice")
	}
	for _, bad := range []string{"10.9.1.5", "10.9.0.0", "10.9.0.255", "10.9.0.1"} {
		if _, err := s.Allocate(n, "ctr-b", net.ParseIP(bad), nil); err == nil {
			t.Errorf("--ip %s was accepted", bad)
		}
	}
	b, err := s.Allocate(n, "ctr-b", net.ParseIP("10.9.0.50"), nil)
	if err != nil || b.String() != "10.9.0.50" {
		t.Fatalf("wanted address: %v, %v", b, err)
	}
	eps, _ := s.Endpoints("n1")
	if len(eps) != 2 || eps[0].ContainerID != "ctr-a" || len(eps[0].Names) != 2 {
		t.Fatalf("endpoints = %+v", eps)
	}
	if changed, err := s.Release("n1", "ctr-a"); !changed || err != nil {
		t.Fatalf("release: %v %v", changed, err)
	}
	if changed, _ := s.Release("n1", "ctr-a"); changed {
		t.Fatal("a second release changed something")
	}
	eps, _ = s.Endpoints("n1")
	if len(eps) != 1 || eps[0].IP != "10.9.0.50" {
		t.Fatalf("endpoints after release = %+v", eps)
	}
}

func TestAllocateConcurrent(t *testing.T) {
	s, n := testNetwork(t, "10.9.0.0/24", "10.9.0.1")
	var wg sync.WaitGroup
	ips := make([]string, 20)
	for i := range ips {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l, err := s.LockNetwork("n1")
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Unlock()
			ip, err := s.Allocate(n, string(rune('a'+i)), nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			ips[i] = ip.String()
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, ip := range ips {
		if seen[ip] {
			t.Fatalf("address %s given twice: %v", ip, ips)
		}
		seen[ip] = true
	}
}
