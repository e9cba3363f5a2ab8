package engine

// Rootless outbound networking (docs/compat.md, Rootless): slirp4netns
// gives a network namespace (a container's, or the rootless network
// namespace of engine/rootlessnet.go) a tap device whose traffic it
// carries over ordinary sockets of the user on the host. Published ports
// are berth's own proxies (netns.Publish with DialNS).

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/netns"
	"github.com/berth-dev/berth/state"
)

// modeSlirp is the rootless default network (podman's name).
const modeSlirp = "slirp4netns"

// The addresses slirp4netns --configure gives (its defaults).
const (
	slirpIP      = "10.0.2.100"
	slirpPrefix  = 24
	slirpGateway = "10.0.2.2"
	slirpDNS     = "10.0.2.3"
	slirpIfname  = "tap0"
)

// slirpReadyTimeout bounds the wait for slirp4netns to configure tap0.
const slirpReadyTimeout = 10 * time.Second

// slirp is a running slirp4netns.
type slirp struct {
	cmd    *exec.Cmd
	exitW  *os.File // closing it makes slirp4netns exit (--exit-fd)
	stderr *limitedBuffer
	once   sync.Once
}

// startSlirp starts slirp4netns for the network namespace of pid (the
// container's init child) and waits until tap0 is configured. The write
// end of its exit pipe is this process's only: it exits when the
// container stops, or when this monitor dies.
func (e *Engine) startSlirp(pid int) (*slirp, error) {
	return startSlirpFor(strconv.Itoa(pid))
}

// startSlirpFor starts slirp4netns for target (a pid; a path with
// --netns-type=path in extra) and waits until tap0 is configured.
func startSlirpFor(target string, extra ...string) (*slirp, error) {
	bin, err := exec.LookPath("slirp4netns")
	if err != nil {
		return nil, errors.New("rootless: networking needs slirp4netns, which is not installed (in PATH); use --network none or host")
	}
	exitR, exitW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		exitR.Close()
		exitW.Close()
		return nil, err
	}
	defer readyR.Close()
	s := &slirp{exitW: exitW, stderr: &limitedBuffer{}}
	args := append([]string{"--configure", "--mtu=65520", "--disable-host-loopback", "--exit-fd=3", "--ready-fd=4"}, extra...)
	s.cmd = exec.Command(bin, append(args, target, slirpIfname)...)
	s.cmd.ExtraFiles = []*os.File{exitR, readyW}
	s.cmd.Stderr = s.stderr
	// Its own process group: a terminal's ^C is the container's.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = s.cmd.Start()
	exitR.Close()
	readyW.Close()
	if err != nil {
		exitW.Close()
		return nil, fmt.Errorf("starting slirp4netns: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := readyR.Read(b)
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(slirpReadyTimeout):
		err = errors.New("timed out")
	}
	if err != nil {
		s.stop()
		msg := strings.TrimSpace(s.stderr.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		hint := ""
		if strings.Contains(s.stderr.String(), "/dev/net/tun") {
			hint = " (slirp4netns needs /dev/net/tun readable and writable by the user: mode 0666)"
		}
		if errors.Is(err, io.EOF) {
			err = errors.New("it exited")
		}
		return nil, fmt.Errorf("rootless: slirp4netns did not start: %v: %s%s", err, msg, hint)
	}
	return s, nil
}

// stop ends slirp4netns and waits for it. Idempotent; nil does nothing.
func (s *slirp) stop() {
	if s == nil {
		return
	}
	s.once.Do(func() {
		s.exitW.Close()
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
	})
}

// publishSlirp publishes the ports of a container on the slirp4netns
// network (its init child is pid): proxies in this process listen on the
// host and connect to 10.0.2.100:PORT from inside the container's own
// network namespace, so UDP answers find their way back to any client,
// also on the host's loopback.
func (e *Engine) publishSlirp(rec *state.Record, pid int) (*netns.Published, error) {
	for _, m := range mustMappings(rec) {
		if m.Proto == "sctp" {
			return nil, fmt.Errorf("rootless: cannot publish %s: only tcp and udp ports are forwarded", m.String())
		}
	}
	return e.publishPorts(rec, net.ParseIP(slirpIP), "", "", nil, fmt.Sprintf("/proc/%d/ns/net", pid))
}

// mustMappings is the container's port mappings (checked at create).
func mustMappings(rec *state.Record) []netns.PortMapping {
	if !publishesPorts(rec.HostConfig) {
		return nil
	}
	maps, _ := portMappings(rec.Config, rec.HostConfig)
	return maps
}

// slirpEndpoint is the inspect entry of a running slirp4netns container.
func slirpEndpoint() *network.EndpointSettings {
	return &network.EndpointSettings{
		IPPrefixLen: slirpPrefix,
		IPAddress:   netip.MustParseAddr(slirpIP),
		Gateway:     netip.MustParseAddr(slirpGateway),
	}
}

// slirpDNSConfig gives a container whose traffic leaves through
// slirp4netns (its own, or rootless, the rootless network namespace's)
// slirp's DNS forwarder as its nameserver unless --dns is given.
func slirpDNSConfig(hc *container.HostConfig, rootless bool) *container.HostConfig {
	kind, _ := networkMode(hc)
	if !(kind == modeSlirp || rootless && kind == modeBridge) || len(hc.DNS) > 0 {
		return hc
	}
	c := *hc
	c.DNS = []netip.Addr{netip.MustParseAddr(slirpDNS)}
	return &c
}
