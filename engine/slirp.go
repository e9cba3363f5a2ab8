package engine

// Rootless outbound networking and published ports (docs/compat.md,
// Rootless): slirp4netns gives the container's network namespace a tap
// device whose traffic it carries over ordinary sockets of the user on
// the host; published ports are its host forwards.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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

// slirp is a container's running slirp4netns.
type slirp struct {
	cmd    *exec.Cmd
	exitW  *os.File // closing it makes slirp4netns exit (--exit-fd)
	sock   string   // its API socket
	stderr *limitedBuffer
	once   sync.Once
}

// slirpSocket is where a container's slirp4netns API socket is: short,
// for sun_path's 108 bytes.
func (e *Engine) slirpSocket(id string) string {
	return filepath.Join(e.cfg.RunRoot, "slirp", id[:12]+".sock")
}

// startSlirp starts slirp4netns for the network namespace of pid (the
// container's init child) and waits until tap0 is configured. The write
// end of its exit pipe is this process's only: it exits when the
// container stops, or when this monitor dies.
func (e *Engine) startSlirp(id string, pid int) (*slirp, error) {
	bin, err := exec.LookPath("slirp4netns")
	if err != nil {
		return nil, errors.New("rootless: the slirp4netns network needs slirp4netns, which is not installed (in PATH); use --network none or host")
	}
	sock := e.slirpSocket(id)
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		return nil, err
	}
	os.Remove(sock) // a leftover of a crash
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
	s := &slirp{exitW: exitW, sock: sock, stderr: &limitedBuffer{}}
	s.cmd = exec.Command(bin, "--configure", "--mtu=65520", "--disable-host-loopback",
		"--exit-fd=3", "--ready-fd=4", "--api-socket", sock, strconv.Itoa(pid), slirpIfname)
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
		os.Remove(s.sock)
	})
}

// call sends one request to the slirp4netns API and returns its "return".
func (s *slirp) call(req any) (json.RawMessage, error) {
	c, err := net.DialTimeout("unix", s.sock, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	c.(*net.UnixConn).CloseWrite()
	var resp struct {
		Return json.RawMessage `json:"return"`
		Error  *struct {
			Desc string `json:"desc"`
		} `json:"error"`
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("slirp4netns API: %w", err)
	}
	if resp.Error != nil {
		return nil, errors.New(resp.Error.Desc)
	}
	return resp.Return, nil
}

// publishSlirp publishes the container's ports as slirp4netns host
// forwards (host address:port → 10.0.2.100:port), and records them in
// its state. The forwards go with slirp4netns.
func (e *Engine) publishSlirp(rec *state.Record, s *slirp) error {
	if !publishesPorts(rec.HostConfig) {
		return nil
	}
	maps, err := portMappings(rec.Config, rec.HostConfig)
	if err != nil || len(maps) == 0 {
		return err
	}
	var done []netns.PortMapping
	for _, m := range maps {
		if m.Proto == "sctp" {
			return fmt.Errorf("rootless: cannot publish %s: slirp4netns forwards only tcp and udp", m.String())
		}
		if m.HostIP != nil && m.HostIP.To4() == nil {
			return fmt.Errorf("rootless: cannot publish %s: slirp4netns forwards IPv4 host addresses only", m.String())
		}
		// The port is picked and checked as for root (the same errors),
		// then handed to slirp4netns.
		port, err := netns.ReservePort(m)
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("%w (rootless: ports below net.ipv4.ip_unprivileged_port_start, 1024 by default, are root's)", err)
		}
		if err != nil {
			return err
		}
		hostAddr := "0.0.0.0"
		if m.HostIP != nil {
			hostAddr = m.HostIP.String()
		}
		proto := m.Proto
		if proto == "" {
			proto = "tcp"
		}
		_, err = s.call(map[string]any{"execute": "add_hostfwd", "arguments": map[string]any{
			"proto": proto, "host_addr": hostAddr, "host_port": port,
			"guest_addr": slirpIP, "guest_port": m.ContainerPort,
		}})
		m.HostPort, m.HostPortEnd = port, 0
		if err != nil {
			return fmt.Errorf("cannot publish %s: %v", m.String(), err)
		}
		if m.HostIP == nil {
			m.HostIP = net.IPv4zero
		}
		done = append(done, m)
	}
	pm := resolvedPortMap(&netns.Published{Ports: done})
	return e.updateState(rec.ID, func(st *state.State) { st.Ports = pm })
}

// slirpEndpoint is the inspect entry of a running slirp4netns container.
func slirpEndpoint() *network.EndpointSettings {
	return &network.EndpointSettings{
		IPPrefixLen: slirpPrefix,
		IPAddress:   netip.MustParseAddr(slirpIP),
		Gateway:     netip.MustParseAddr(slirpGateway),
	}
}

// slirpDNSConfig gives a slirp4netns container slirp's DNS forwarder as
// its nameserver unless --dns is given.
func slirpDNSConfig(hc *container.HostConfig) *container.HostConfig {
	if kind, _ := networkMode(hc); kind != modeSlirp || len(hc.DNS) > 0 {
		return hc
	}
	c := *hc
	c.DNS = []netip.Addr{netip.MustParseAddr(slirpDNS)}
	return &c
}
