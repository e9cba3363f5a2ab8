package engine

import (
	"net/netip"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestResolvConf(t *testing.T) {
	host := "# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
	cases := []struct {
		name string
		hc   container.HostConfig
		host bool
		want string
	}{
		{"bridge drops localhost", container.HostConfig{}, false,
			"# generated\nsearch corp.example\nnameserver 192.0.2.53\noptions edns0\n"},
		{"host keeps everything", container.HostConfig{}, true,
			"# generated\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 192.0.2.53\noptions edns0\n"},
		{"flags replace", container.HostConfig{DNS: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, DNSSearch: []string{"a.example", "b.example"}, DNSOptions: []string{"ndots:2"}}, false,
			"# generated\nsearch a.example b.example\nnameserver 127.0.0.1\noptions ndots:2\n"},
		{"search . clears", container.HostConfig{DNSSearch: []string{"."}}, false,
			"# generated\nnameserver 192.0.2.53\noptions edns0\n"},
	}
	for _, c := range cases {
		if got := resolvConf(host, &c.hc, c.host); got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.name, got, c.want)
		}
	}
	if got := resolvConf("nameserver 127.0.0.53\n", &container.HostConfig{}, false); got != "nameserver 8.8.8.8\nnameserver 8.8.4.4\n" {
		t.Errorf("only a localhost nameserver: %q", got)
	}
}

func TestNetworkMode(t *testing.T) {
	cases := map[string][2]string{
		"":              {modeBridge, "bridge"},
		"default":       {modeBridge, "bridge"},
		"bridge":        {modeBridge, "bridge"},
		"none":          {modeNone, ""},
		"host":          {modeHost, ""},
		"slirp4netns":   {modeSlirp, ""},
		"container:web": {modeContainer, "web"},
		"my-net":        {modeBridge, "my-net"},
	}
	for in, want := range cases {
		k, n := networkMode(&container.HostConfig{NetworkMode: container.NetworkMode(in)})
		if k != want[0] || n != want[1] {
			t.Errorf("%q: got %s %s, want %s %s", in, k, n, want[0], want[1])
		}
	}
}

func TestParseLink(t *testing.T) {
	for in, want := range map[string][2]string{"db": {"db", "db"}, "db:mydb": {"db", "mydb"}, "/db:/x/mydb": {"db", "mydb"}} {
		n, a, err := parseLink(in)
		if err != nil || n != want[0] || a != want[1] {
			t.Errorf("%q: %s %s %v", in, n, a, err)
		}
	}
}

func TestSlirpDNSConfig(t *testing.T) {
	hc := &container.HostConfig{NetworkMode: modeSlirp}
	if got := slirpDNSConfig(hc, true); len(got.DNS) != 1 || got.DNS[0].String() != slirpDNS || len(hc.DNS) != 0 {
		t.Errorf("slirp4netns without --dns: %v (input %v)", got.DNS, hc.DNS)
	}
	none := &container.HostConfig{NetworkMode: modeNone}
	if got := slirpDNSConfig(none, true); got != none {
		t.Errorf("none changed: %v", got.DNS)
	}
	br := &container.HostConfig{NetworkMode: "mynet"}
	if got := slirpDNSConfig(br, true); len(got.DNS) != 1 || got.DNS[0].String() != slirpDNS {
		t.Errorf("rootless bridge without --dns: %v", got.DNS)
	}
	if got := slirpDNSConfig(br, false); got != br {
		t.Errorf("root's bridge changed: %v", got.DNS)
	}
}
