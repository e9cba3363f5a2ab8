package netns

// The userland proxies of published ports: what reaches a published port's
// listener (loopback and IPv6 traffic; the rest is DNAT'ed before) is
// forwarded to the container.

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// proxyDialTimeout bounds the connection to the container.
const proxyDialTimeout = 10 * time.Second

// dialer connects a proxy to the container: network is tcp4 or udp4.
type dialer func(network, addr string) (net.Conn, error)

func directDialer(network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: proxyDialTimeout}
	return d.Dial(network, addr)
}

// nsDialer connects from the network namespace open at fd: the socket is
// made on a thread in it (and stays in it), then used from anywhere.
func nsDialer(fd int) dialer {
	return func(network, addr string) (c net.Conn, err error) {
		if nerr := DoFd(fd, func() error {
			// A locked goroutine keeps its thread while the connect
			// waits in the poller.
			c, err = directDialer(network, addr)
			return nil
		}); nerr != nil {
			return nil, nerr
		}
		return c, err
	}
}

type tcpProxy struct {
	ln     *net.TCPListener
	target *net.TCPAddr
	dial   dialer

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: wait instead of spinning.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go p.handle(c)
	}
}

func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *tcpProxy) handle(client *net.TCPConn) {
	if !p.track(client) {
		client.Close()
		return
	}
	uc, err := p.dial("tcp4", p.target.String())
	if err != nil {
		// The container does not listen (yet): the client sees the
		// connection closed, as with docker-proxy.
		p.untrack(client)
		return
	}
	upstream := uc.(*net.TCPConn)
	if !p.track(upstream) {
		upstream.Close()
		p.untrack(client)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src *net.TCPConn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			// A reset or an error: end both sides now.
			client.Close()
			upstream.Close()
			return
		}
		dst.CloseWrite() // half-close: pass the EOF on
	}
	go pipe(upstream, client)
	go pipe(client, upstream)
	wg.Wait()
	p.untrack(client, upstream)
}

func (p *tcpProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}

// udpProxy forwards datagrams per client address: each client gets its
// own socket towards the container, so the answers find their way back.
// A flow ends after UDPIdleTimeout without traffic.
type udpProxy struct {
	ln     *net.UDPConn
	target *net.UDPAddr
	dial   dialer

	mu     sync.Mutex
	flows  map[string]*udpFlow
	closed bool
}

type udpFlow struct {
	conn *net.UDPConn
	mu   sync.Mutex
	last time.Time
}

func (f *udpFlow) touch() {
	f.mu.Lock()
	f.last = time.Now()
	f.mu.Unlock()
}

func (f *udpFlow) idle() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Since(f.last)
}

func (p *udpProxy) serve() {
	buf := make([]byte, 65535)
	for {
		n, from, err := p.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		f := p.flow(from)
		if f == nil {
			continue
		}
		f.touch()
		f.conn.Write(buf[:n])
	}
}

func (p *udpProxy) flow(from netip.AddrPort) *udpFlow {
	key := from.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if f := p.flows[key]; f != nil {
		return f
	}
	uc, err := p.dial("udp4", p.target.String())
	if err != nil {
		return nil
	}
	c := uc.(*net.UDPConn)
	f := &udpFlow{conn: c, last: time.Now()}
	p.flows[key] = f
	go p.answer(key, from, f)
	return f
}

// answer copies the container's datagrams back to the client until the
// flow has been idle for UDPIdleTimeout.
func (p *udpProxy) answer(key string, to netip.AddrPort, f *udpFlow) {
	defer func() {
		p.mu.Lock()
		if p.flows[key] == f {
			delete(p.flows, key)
		}
		p.mu.Unlock()
		f.conn.Close()
	}()
	buf := make([]byte, 65535)
	timeout := UDPIdleTimeout
	for {
		f.conn.SetReadDeadline(time.Now().Add(timeout - f.idle()))
		n, err := f.conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && f.idle() < timeout {
				continue
			}
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
				return
			}
			// ECONNREFUSED (nothing listens in the container yet): keep
			// the flow, the client may retry.
			if f.idle() >= timeout {
				return
			}
			continue
		}
		f.touch()
		if _, err := p.ln.WriteToUDPAddrPort(buf[:n], to); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

func (p *udpProxy) flowCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.flows)
}

func (p *udpProxy) close() {
	p.mu.Lock()
	p.closed = true
	for _, f := range p.flows {
		f.conn.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}
