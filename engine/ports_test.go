package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/netns"
	"github.com/berth-dev/berth/state"
)

func mustPort(s string) network.Port { return network.MustParsePort(s) }

func TestPortMappings(t *testing.T) {
	cfg := &container.Config{ExposedPorts: network.PortSet{mustPort("80/tcp"): {}, mustPort("53/udp"): {}, mustPort("9000/tcp"): {}}}
	hc := &container.HostConfig{
		PublishAllPorts: true,
		PortBindings: network.PortMap{
			mustPort("80/tcp"): {
				{HostPort: "8080"},
				{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "8000-8010"},
				{HostIP: netip.MustParseAddr("::1"), HostPort: ""},
			},
			mustPort("132/sctp"): {{HostPort: "0"}},
		},
	}
	got, err := portMappings(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, m := range got {
		s = append(s, fmt.Sprintf("%v|%d-%d|%d/%s", m.HostIP, m.HostPort, m.HostPortEnd, m.ContainerPort, m.Proto))
	}
	want := []string{
		"<nil>|0-0|53/udp", // -P: exposed, no binding
		"<nil>|8080-0|80/tcp",
		"127.0.0.1|8000-8010|80/tcp",
		"::1|0-0|80/tcp",
		"<nil>|0-0|132/sctp",
		"<nil>|0-0|9000/tcp",
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("portMappings =\n%q\nwant\n%q", s, want)
	}

	hc.PublishAllPorts = false
	if got, _ := portMappings(cfg, hc); len(got) != 4 {
		t.Errorf("without -P: %d mappings, want 4", len(got))
	}

	for _, bad := range []network.PortMap{
		{mustPort("80/tcp"): {{HostPort: "x"}}},
		{mustPort("80/tcp"): {{HostPort: "70000"}}},
		{mustPort("80/tcp"): {{HostPort: "90-80"}}},
		{mustPort("80/icmp"): {{HostPort: "80"}}},
		{mustPort("0/tcp"): {{HostPort: "80"}}},
	} {
		if _, err := portMappings(&container.Config{}, &container.HostConfig{PortBindings: bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("portMappings(%v) error = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestNewRecordExposesImagePorts(t *testing.T) {
	img := testImage(nil, []string{"sh"})
	img.Config.Config.ExposedPorts = map[string]struct{}{"80/tcp": {}, "53/udp": {}}
	rec, err := newRecord(CreateOptions{
		Config:     &container.Config{Image: "img", ExposedPorts: network.PortSet{mustPort("8080/tcp"): {}}},
		HostConfig: &container.HostConfig{},
	}, img)
	if err != nil {
		t.Fatal(err)
	}
	want := network.PortSet{mustPort("80/tcp"): {}, mustPort("53/udp"): {}, mustPort("8080/tcp"): {}}
	if !reflect.DeepEqual(rec.Config.ExposedPorts, want) {
		t.Errorf("ExposedPorts = %v, want %v", rec.Config.ExposedPorts, want)
	}
}

func TestCreateRefusesBadPorts(t *testing.T) {
	e := testEngine(t)
	_, err := e.Create(context.Background(), CreateOptions{
		Config:     &container.Config{Image: "busybox"},
		HostConfig: &container.HostConfig{PortBindings: network.PortMap{mustPort("80/tcp"): {{HostPort: "eighty"}}}},
	})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `port 80/tcp: host port "eighty"`) {
		t.Fatalf("Create with a bad host port: %v", err)
	}
	if ids, _ := e.containers.IDs(); len(ids) != 0 {
		t.Errorf("containers left: %v", ids)
	}
}

func TestContainerPortsDisplay(t *testing.T) {
	rec := &state.Record{
		Config:     &container.Config{ExposedPorts: network.PortSet{mustPort("80/tcp"): {}, mustPort("443/tcp"): {}}},
		HostConfig: &container.HostConfig{NetworkMode: "bridge"},
	}
	st := &state.State{Status: state.StatusRunning, Ports: network.PortMap{
		mustPort("80/tcp"): {{HostIP: netip.IPv4Unspecified(), HostPort: "8080"}, {HostIP: netip.IPv6Unspecified(), HostPort: "8080"}},
	}}
	c := &Container{Record: rec, State: st}
	ports := c.Ports()
	if len(ports) != 2 || ports[mustPort("443/tcp")] != nil || len(ports[mustPort("80/tcp")]) != 2 {
		t.Errorf("Ports() = %v", ports)
	}
	sums := c.PortSummaries()
	if len(sums) != 3 || sums[0].PrivatePort != 80 || sums[0].IP.String() != "0.0.0.0" || sums[1].IP.String() != "::" || sums[2].PublicPort != 0 {
		t.Errorf("PortSummaries() = %+v", sums)
	}
	st.Status = state.StatusExited
	if len(c.Ports()) != 0 {
		t.Errorf("an exited container has ports: %v", c.Ports())
	}
}

// TestPublishPortsState publishes through the engine, in a network
// namespace of the test's own (the test binary re-run in it): the bridge
// and the nftables table vanish with it.
func TestPublishPortsState(t *testing.T) {
	const env = "BERTH_ENGINE_PORTS_CHILD"
	if os.Getenv(env) == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestPublishPortsState$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), env+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if strings.Contains(string(out), "--- SKIP") {
			t.Skipf("%s", out)
		}
		if testing.Verbose() {
			t.Logf("%s", out)
		}
		return
	}
	if err := netns.LoopbackUp(); err != nil {
		t.Fatal(err)
	}
	// The "container" is an address of the bridge itself here: the
	// netns package tests the real paths, this one what the engine keeps.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-eports"}}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.213.5.1/24", "10.213.5.2/24"} {
		addr, _ := netlink.ParseAddr(a)
		if err := netlink.AddrAdd(br, addr); err != nil {
			t.Fatal(err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "10.213.5.2:80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "served")
			c.Close()
		}
	}()

	e := testEngine(t)
	rec := &state.Record{
		ID: strings.Repeat("e", 64), Name: "web", Created: time.Now(),
		Config: &container.Config{ExposedPorts: network.PortSet{mustPort("80/tcp"): {}, mustPort("81/tcp"): {}}},
		HostConfig: &container.HostConfig{NetworkMode: "bridge", PortBindings: network.PortMap{
			mustPort("80/tcp"): {{HostPort: "0"}, {HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "0"}},
		}},
	}
	if err := e.containers.Create(rec); err != nil {
		t.Fatal(err)
	}
	start, _ := pidStartTime(os.Getpid())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.updateState(rec.ID, func(st *state.State) {
		st.Status, st.Pid, st.PidStart = state.StatusRunning, os.Getpid(), start
	}))
	_, subnet, _ := net.ParseCIDR("10.213.5.0/24")
	pub, err := e.publishPorts(rec, net.IPv4(10, 213, 5, 2), "br-eports", "berth-eports", subnet, "")
	must(err)
	defer pub.Close()
	hp := pub.Ports[0].HostPort

	ports, err := e.Port(context.Background(), "web")
	must(err)
	want := []string{"0.0.0.0:" + fmt.Sprint(hp)}
	if pub.IPv6 {
		want = append(want, "[::]:"+fmt.Sprint(hp))
	}
	want = append(want, "127.0.0.1:"+fmt.Sprint(pub.Ports[1].HostPort))
	if !reflect.DeepEqual(ports["80/tcp"], want) || len(ports) != 1 {
		t.Errorf("Port() = %v, want 80/tcp: %v", ports, want)
	}
	resp, err := e.Inspect(context.Background(), "web")
	must(err)
	if p := resp.NetworkSettings.Ports; len(p[mustPort("80/tcp")]) != len(want) || p[mustPort("81/tcp")] != nil {
		t.Errorf("inspect NetworkSettings.Ports = %v", p)
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", hp), 2*time.Second)
	must(err)
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "served" {
		t.Errorf("through the published port: %q", b)
	}

	// A monitor crash: the rules stay until unpublishPorts.
	if rules, _ := netns.PortRules("berth-eports", rec.ID); len(rules) == 0 {
		t.Errorf("no rules after publishPorts")
	}
	must(e.unpublishPorts(rec.ID, "berth-eports"))
	if rules, _ := netns.PortRules("berth-eports", rec.ID); len(rules) != 0 {
		t.Errorf("rules after unpublishPorts: %v", rules)
	}
	if st, _ := e.containers.State(rec.ID); st.Ports != nil {
		t.Errorf("state keeps ports after unpublishPorts: %v", st.Ports)
	}

	// host and none publish nothing.
	for _, mode := range []string{"host", "none"} {
		r := *rec
		hc := *rec.HostConfig
		hc.NetworkMode = container.NetworkMode(mode)
		r.HostConfig = &hc
		p, err := e.publishPorts(&r, net.IPv4(10, 213, 5, 2), "br-eports", "berth-eports", subnet, "")
		if p != nil || err != nil {
			t.Errorf("--network %s published: %v %v", mode, p, err)
		}
	}
}
