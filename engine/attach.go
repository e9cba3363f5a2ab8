package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The attach socket of a detached container's monitor speaks frames with
// Docker's stdcopy header: [kind, 0, 0, 0, size (uint32, big endian)].
// Monitor to client: kind 1 stdout, 2 stderr (a terminal's output is all
// kind 1), 5 the container's exit code (int32, big endian) just before the
// monitor ends the attachment. Client to monitor: kind 0 stdin data, 3 stdin closed, 4 resize
// (rows, cols as two uint16). The client first sends one JSON line, an
// attachRequest.
const (
	frameStdin   = 0
	frameStdout  = 1
	frameStderr  = 2
	frameEOF     = 3
	frameResize  = 4
	frameExit    = 5
	attachSocket = "attach.sock"
	maxFrame     = 1 << 20
)

// ErrDetached is returned by Attach when the user typed the detach keys.
var ErrDetached = errors.New("detached from the container")

type attachRequest struct {
	Stdin bool `json:"stdin"`
}

func writeFrame(w io.Writer, kind byte, p []byte) error {
	var hdr [8]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("attach frame of %d bytes is too large", n)
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return hdr[0], p, err
}

// shortPath reaches a path in dir through /proc/self/fd, which keeps unix
// socket paths under the kernel's 108-byte limit whatever the run root.
func shortPath(dir, name string) (string, func(), error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", fd, name), func() { unix.Close(fd) }, nil
}

// attachHub is the monitor's side: it fans a detached container's output
// out to attached clients and feeds their input to the container.
type attachHub struct {
	mu       sync.Mutex
	clients  map[*attachConn]bool
	pending  *bytes.Buffer // output kept for the first client (run -it)
	stdin    io.WriteCloser
	pty      *os.File
	closeIn  bool // close the container's stdin when a client's input ends
	listener net.Listener
	// firstAttached is closed when the first client, for whom pending
	// was kept, has attached.
	firstAttached chan struct{}
}

// firstClientWait bounds how long a monitor whose container exited waits
// for the client that was about to attach (run -it of a short command).
const firstClientWait = 5 * time.Second

type attachConn struct {
	conn net.Conn
	mu   sync.Mutex
}

func (c *attachConn) send(kind byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return writeFrame(c.conn, kind, p)
}

// listenAttach opens the attach socket in the container's run directory.
func listenAttach(runDir string, keepFirstOutput bool) (*attachHub, error) {
	path, done, err := shortPath(runDir, attachSocket)
	if err != nil {
		return nil, err
	}
	defer done()
	os.Remove(filepath.Join(runDir, attachSocket))
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("creating attach socket: %w", err)
	}
	h := &attachHub{clients: map[*attachConn]bool{}, listener: l}
	if keepFirstOutput {
		h.pending = &bytes.Buffer{}
		h.firstAttached = make(chan struct{})
	}
	return h, nil
}

// serve accepts clients until the listener is closed.
func (h *attachHub) serve() {
	for {
		conn, err := h.listener.Accept()
		if err != nil {
			return
		}
		go h.handle(conn)
	}
}

func (h *attachHub) handle(conn net.Conn) {
	br := bufio.NewReader(conn)
	line, err := br.ReadBytes('\n')
	var req attachRequest
	if err != nil || json.Unmarshal(line, &req) != nil {
		conn.Close()
		return
	}
	c := &attachConn{conn: conn}
	h.mu.Lock()
	if h.pending != nil {
		if h.pending.Len() > 0 {
			c.send(frameStdout, h.pending.Bytes())
		}
		h.pending = nil
		close(h.firstAttached)
	}
	h.clients[c] = true
	h.mu.Unlock()
	for {
		kind, p, err := readFrame(br)
		if err != nil {
			break
		}
		switch kind {
		case frameStdin:
			if req.Stdin && h.stdin != nil {
				h.stdin.Write(p)
			}
		case frameEOF:
			if req.Stdin && h.stdin != nil && h.closeIn {
				h.stdin.Close()
			}
		case frameResize:
			if h.pty != nil && len(p) == 4 {
				pty.Setsize(h.pty, &pty.Winsize{Rows: binary.BigEndian.Uint16(p), Cols: binary.BigEndian.Uint16(p[2:])})
			}
		}
	}
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	conn.Close()
}

// writer returns the io.Writer the output copier of one stream writes to.
func (h *attachHub) writer(kind byte) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		h.mu.Lock()
		if h.pending != nil && h.pending.Len() < 1<<20 {
			h.pending.Write(p)
		}
		clients := make([]*attachConn, 0, len(h.clients))
		for c := range h.clients {
			clients = append(clients, c)
		}
		h.mu.Unlock()
		for _, c := range clients {
			if err := c.send(kind, p); err != nil {
				c.conn.Close() // a stuck client is dropped, the container is not
			}
		}
		return len(p), nil
	})
}

// close ends every attachment once the container exited with code: the
// clients get the code, then EOF. The client that run -it is attaching
// is waited for (a bounded time), so that it gets the output and the code
// even when the container was quicker (and, with --rm, is gone next).
func (h *attachHub) close(code int) {
	if h.firstAttached != nil {
		select {
		case <-h.firstAttached:
		case <-time.After(firstClientWait):
		}
	}
	h.listener.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(int32(code)))
	for c := range h.clients {
		c.send(frameExit, p[:])
		c.mu.Lock()
		if uc, ok := c.conn.(*net.UnixConn); ok {
			uc.CloseWrite()
		} else {
			c.conn.Close()
		}
		c.mu.Unlock()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// AttachOptions is `attach`.
type AttachOptions struct {
	Streams    *Streams
	NoStdin    bool
	DetachKeys string // docker's format, e.g. "ctrl-p,ctrl-q"; "" uses that default
}

// Attach connects the caller's streams to a running detached container
// and returns its exit code once it stops, or ErrDetached.
func (e *Engine) Attach(ctx context.Context, ref string, o AttachOptions) (int, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return 125, err
	}
	st, err := e.State(id)
	if err != nil {
		return 125, err
	}
	if !st.Active() {
		return 125, fmt.Errorf("you cannot attach to a stopped container, start it first")
	}
	if st.Status == "restarting" { // engine/restart.go
		return 125, fmt.Errorf("you cannot attach to a restarting container, wait until it is running")
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return 125, err
	}
	keys, err := ParseDetachKeys(o.DetachKeys)
	if err != nil {
		return 125, err
	}
	return e.attach(rec.ID, rec.Config.Tty, rec.Config.OpenStdin && !o.NoStdin, keys, o.Streams)
}

func (e *Engine) attach(id string, tty, stdin bool, keys []byte, s *Streams) (int, error) {
	path, done, err := shortPath(e.containers.RunDir(id), attachSocket)
	if err != nil {
		return 125, err
	}
	conn, err := net.Dial("unix", path)
	done()
	if err != nil {
		return 125, fmt.Errorf("attaching to container %s: %w", id[:12], err)
	}
	defer conn.Close()
	attachedTo, _ := e.containers.State(id) // the run attached to
	req, _ := json.Marshal(attachRequest{Stdin: stdin && s.Stdin != nil})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return 125, err
	}
	var wmu sync.Mutex
	send := func(kind byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return writeFrame(conn, kind, p)
	}
	detached := make(chan struct{})
	if stdin && s.Stdin != nil {
		go func() {
			err := copyWithDetachKeys(s.Stdin, keys, func(p []byte) error { return send(frameStdin, p) })
			if errors.Is(err, ErrDetached) {
				close(detached)
				conn.Close()
				return
			}
			send(frameEOF, nil)
		}()
	}
	if tty && s.TerminalSize != nil {
		sendSize := func() {
			if rows, cols, ok := s.TerminalSize(); ok {
				var p [4]byte
				binary.BigEndian.PutUint16(p[:], rows)
				binary.BigEndian.PutUint16(p[2:], cols)
				send(frameResize, p[:])
			}
		}
		sendSize()
		if s.Resize != nil {
			go func() {
				for range s.Resize {
					sendSize()
				}
			}()
		}
	}
	if s.Signals != nil {
		go func() {
			for sig := range s.Signals {
				if st, err := e.containers.State(id); err == nil && st.Pid > 0 {
					unix.Kill(st.Pid, sig.(unix.Signal))
				}
			}
		}()
	}
	exitCode := -1
	for {
		kind, p, err := readFrame(conn)
		if err != nil {
			break
		}
		switch kind {
		case frameStdout:
			s.Stdout.Write(p)
		case frameStderr:
			s.Stderr.Write(p)
		case frameExit:
			if len(p) == 4 {
				exitCode = int(int32(binary.BigEndian.Uint32(p)))
			}
		}
	}
	select {
	case <-detached:
		return 0, ErrDetached
	default:
	}
	if exitCode >= 0 {
		// The monitor said how it ended (the container may be gone: --rm).
		e.waitExitRecorded(id, attachedTo) // engine/restart.go
		return exitCode, nil
	}
	e.waitStopped(id, -1, 255)
	st, err := e.containers.State(id)
	if err != nil {
		return 125, err
	}
	return st.ExitCode, nil
}

// ParseDetachKeys reads docker's --detach-keys: comma-separated keys, each
// a single character or ctrl-<char>. "" gives the default ctrl-p,ctrl-q.
func ParseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		s = "ctrl-p,ctrl-q"
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(strings.ToLower(k), "ctrl-") && len(k) == 6:
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c >= '@' && c <= '_':
				out = append(out, c-'@')
			default:
				return nil, invalidf("detach keys %q: unknown key %q", s, k)
			}
		default:
			return nil, invalidf("detach keys %q: unknown key %q", s, k)
		}
	}
	return out, nil
}

// copyWithDetachKeys sends input on, holding back a partial match of the
// detach sequence; the full sequence ends the copy with ErrDetached.
func copyWithDetachKeys(r io.Reader, keys []byte, send func([]byte) error) error {
	buf := make([]byte, 4096)
	matched := 0
	for {
		n, err := r.Read(buf)
		out := make([]byte, 0, n+len(keys))
		for _, b := range buf[:n] {
			if len(keys) > 0 && b == keys[matched] {
				matched++
				if matched == len(keys) {
					if len(out) > 0 {
						send(out) // what was typed before the keys still counts
					}
					return ErrDetached
				}
				continue
			}
			if matched > 0 {
				out = append(out, keys[:matched]...)
				matched = 0
				if b == keys[0] {
					matched = 1
					continue
				}
			}
			out = append(out, b)
		}
		if len(out) > 0 {
			if serr := send(out); serr != nil {
				return serr
			}
		}
		if err != nil {
			if matched > 0 {
				send(keys[:matched]) // the input ended inside a partial match
			}
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}
