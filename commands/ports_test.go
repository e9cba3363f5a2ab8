package commands

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/state"
)

// bindingsString renders a PortMap as "80/tcp=IP|PORT,…;…", sorted.
func bindingsString(m network.PortMap) string {
	var out []string
	for port, bs := range m {
		var b []string
		for _, x := range bs {
			ip := ""
			if x.HostIP.IsValid() {
				ip = x.HostIP.String()
			}
			b = append(b, ip+"|"+x.HostPort)
		}
		out = append(out, port.String()+"="+strings.Join(b, ","))
	}
	sort.Strings(out)
	return strings.Join(out, ";")
}

func TestParsePublish(t *testing.T) {
	cases := map[string]string{
		"80":                           "80/tcp=|",
		"80/udp":                       "80/udp=|",
		"53/UDP":                       "53/udp=|",
		"132/sctp":                     "132/sctp=|",
		"8080:80":                      "80/tcp=|8080",
		"0:80":                         "80/tcp=|",
		":80":                          "80/tcp=|",
		"127.0.0.1:8080:80":            "80/tcp=127.0.0.1|8080",
		"127.0.0.1::80/udp":            "80/udp=127.0.0.1|",
		"[::1]:8080:80":                "80/tcp=::1|8080",
		"::1:8080:80":                  "80/tcp=::1|8080",
		"[::]::80":                     "80/tcp=::|",
		"0.0.0.0:8080:80/tcp":          "80/tcp=0.0.0.0|8080",
		"8000-8002:80-82":              "80/tcp=|8000;81/tcp=|8001;82/tcp=|8002",
		"8000-8010:80":                 "80/tcp=|8000-8010",
		"80-81":                        "80/tcp=|;81/tcp=|",
		"10.0.0.1:9000-9001:90-91/udp": "90/udp=10.0.0.1|9000;91/udp=10.0.0.1|9001",
	}
	for spec, want := range cases {
		m, err := parsePublish(spec)
		if err != nil {
			t.Errorf("parsePublish(%q): %v", spec, err)
			continue
		}
		if got := bindingsString(m); got != want {
			t.Errorf("parsePublish(%q) = %s, want %s", spec, got, want)
		}
	}
	bad := map[string]string{
		"":                "invalid container port \"\"",
		"abc":             "invalid container port \"abc\"",
		"8080:abc":        "invalid container port \"abc\"",
		"80/icmp":         "invalid protocol \"icmp\"",
		"x:80":            "invalid host port \"x\"",
		"70000:80":        "invalid host port \"70000\"",
		"8080:0":          "invalid container port \"0\"",
		"1.2.3:8080:80":   "invalid IP address \"1.2.3\"",
		"8000-8002:80-81": "differ in length",
		"8000:80-81":      "differ in length",
		"90-80":           "the range ends before it starts",
		"0-5:80":          "cannot start at 0",
		"1.2.3.4:80":      "invalid host port \"1.2.3.4\"",
	}
	for spec, want := range bad {
		_, err := parsePublish(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parsePublish(%q) error = %v, want %q", spec, err, want)
		}
	}
}

func TestParseExpose(t *testing.T) {
	ports, err := parseExpose("7000-7002/udp")
	if err != nil || fmt.Sprint(ports) != "[7000/udp 7001/udp 7002/udp]" {
		t.Errorf("parseExpose = %v, %v", ports, err)
	}
	for _, bad := range []string{"x", "80/foo", "0", "9-8"} {
		if _, err := parseExpose(bad); err == nil {
			t.Errorf("parseExpose(%q) succeeded", bad)
		}
	}
}

// portContext parses args with run's port flags.
func portContext(t *testing.T, args ...string) (*cli.Context, *bytes.Buffer) {
	t.Helper()
	var stderr bytes.Buffer
	app := &cli.App{ErrWriter: &stderr}
	set := flag.NewFlagSet("run", flag.ContinueOnError)
	for _, f := range portFlags() {
		if err := f.Apply(set); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(app, set, nil), &stderr
}

func TestParsePortFlags(t *testing.T) {
	c, _ := portContext(t, "-p", "8080:80", "-p", "127.0.0.1:8081:80", "--expose", "53/udp", "-P", "-p", "9000-9001:90-91")
	cfg, hc := &container.Config{}, &container.HostConfig{}
	if err := parsePortFlags(c, cfg, hc); err != nil {
		t.Fatal(err)
	}
	if got, want := bindingsString(hc.PortBindings), "80/tcp=|8080,127.0.0.1|8081;90/tcp=|9000;91/tcp=|9001"; got != want {
		t.Errorf("PortBindings = %s, want %s", got, want)
	}
	var exposed []string
	for p := range cfg.ExposedPorts {
		exposed = append(exposed, p.String())
	}
	sort.Strings(exposed)
	if got := strings.Join(exposed, " "); got != "53/udp 80/tcp 90/tcp 91/tcp" {
		t.Errorf("ExposedPorts = %s", got)
	}
	if !hc.PublishAllPorts {
		t.Error("-P did not set PublishAllPorts")
	}

	c, _ = portContext(t, "-p", "8080:x")
	err := parsePortFlags(c, &container.Config{}, &container.HostConfig{})
	var ue *UsageError
	if !errors.As(err, &ue) || err.Error() != `invalid -p/--publish "8080:x": invalid container port "x": want a port number from 1 to 65535` {
		t.Errorf("bad -p: %v", err)
	}
	c, _ = portContext(t, "--expose", "80/x")
	if err := parsePortFlags(c, &container.Config{}, &container.HostConfig{}); !errors.As(err, &ue) || !strings.Contains(err.Error(), `invalid --expose "80/x"`) {
		t.Errorf("bad --expose: %v", err)
	}

	c, stderr := portContext(t, "-p", "80:80")
	hc = &container.HostConfig{NetworkMode: "host"}
	if err := parsePortFlags(c, &container.Config{}, hc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "WARNING: Published ports are discarded when using host network mode") {
		t.Errorf("no warning for -p with --network host: %q", stderr.String())
	}
}

func TestSortedPortKeys(t *testing.T) {
	m := map[string][]string{"443/tcp": nil, "80/udp": nil, "80/tcp": nil, "8080/tcp": nil, "53/udp": nil}
	if got := strings.Join(sortedPortKeys(m), " "); got != "53/udp 80/tcp 80/udp 443/tcp 8080/tcp" {
		t.Errorf("sortedPortKeys = %s", got)
	}
}

func TestDisplayPorts(t *testing.T) {
	v4, v6, lo := netip.IPv4Unspecified(), netip.IPv6Unspecified(), netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		in   []container.PortSummary
		want string
	}{
		{nil, ""},
		{[]container.PortSummary{{PrivatePort: 80, Type: "tcp"}}, "80/tcp"},
		{[]container.PortSummary{{IP: v4, PrivatePort: 80, PublicPort: 8080, Type: "tcp"}, {IP: v6, PrivatePort: 80, PublicPort: 8080, Type: "tcp"}},
			"0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"},
		{[]container.PortSummary{{PrivatePort: 80, Type: "tcp"}, {PrivatePort: 81, Type: "tcp"}, {PrivatePort: 82, Type: "tcp"}, {PrivatePort: 53, Type: "udp"}},
			"80-82/tcp, 53/udp"},
		{[]container.PortSummary{{IP: v4, PrivatePort: 8000, PublicPort: 8000, Type: "tcp"}, {IP: v4, PrivatePort: 8001, PublicPort: 8001, Type: "tcp"}, {IP: lo, PrivatePort: 9000, PublicPort: 9001, Type: "udp"}},
			"0.0.0.0:8000-8001->8000-8001/tcp, 127.0.0.1:9001->9000/udp"},
	}
	for _, c := range cases {
		if got := displayPorts(c.in); got != c.want {
			t.Errorf("displayPorts(%+v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPortFilters(t *testing.T) {
	c := &engine.Container{
		Record: &state.Record{
			Config:     &container.Config{ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}, network.MustParsePort("8080/tcp"): {}, network.MustParsePort("53/udp"): {}}},
			HostConfig: &container.HostConfig{NetworkMode: "bridge"},
		},
		State: &state.State{Status: state.StatusRunning, Ports: network.PortMap{
			network.MustParsePort("80/tcp"): {{HostIP: netip.IPv4Unspecified(), HostPort: "32768"}},
		}},
	}
	f, err := parsePsFilters([]string{"publish=80"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		filter string
		want   bool
	}{
		{"publish=80", true}, {"publish=80/tcp", true}, {"publish=80/udp", false}, {"publish=8080", false},
		{"publish=70-90", true}, {"expose=8080", true}, {"expose=8000-8100/tcp", true}, {"expose=53", false},
		{"expose=53/udp", true}, {"expose=81", false},
	}
	for _, tc := range cases {
		f, err = parsePsFilters([]string{tc.filter})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := f.match(nil, c); got != tc.want {
			t.Errorf("%s matched: %v, want %v", tc.filter, got, tc.want)
		}
	}
	if _, err := parsePsFilters([]string{"publish=x"}); err == nil {
		t.Error("publish=x accepted")
	}
	c.State.Status = state.StatusExited
	f, _ = parsePsFilters([]string{"expose=53/udp"})
	if ok, _ := f.match(nil, c); !ok {
		t.Error("expose=53/udp does not match an exited container")
	}
	f, _ = parsePsFilters([]string{"publish=80"})
	if ok, _ := f.match(nil, c); ok {
		t.Error("publish=80 matches an exited container")
	}
}
