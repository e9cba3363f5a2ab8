// sdnotify is a test helper for systemd's notify protocol: a fake
// $NOTIFY_SOCKET that records what it receives, and a client like
// systemd-notify (busybox has none). Built static by the e2e harness
// ($SDNOTIFY) and bind-mounted into containers.
//
//	sdnotify listen SOCKET FILE   receive datagrams on the unixgram SOCKET and
//	                              append each one to FILE, ending with a line
//	                              "--"; exit on a datagram saying STOP=1, or
//	                              after 60 s
//	sdnotify send MSG...          send the lines MSG... as one datagram to
//	                              $NOTIFY_SOCKET
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	var err error
	switch {
	case len(os.Args) == 4 && os.Args[1] == "listen":
		err = listen(os.Args[2], os.Args[3])
	case len(os.Args) >= 3 && os.Args[1] == "send":
		err = send(strings.Join(os.Args[2:], "\n") + "\n")
	default:
		err = fmt.Errorf("usage: sdnotify listen SOCKET FILE | sdnotify send MSG...")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdnotify:", err)
		os.Exit(1)
	}
}

func listen(socket, file string) error {
	os.Remove(socket)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer os.Remove(socket)
	out, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		msg := string(buf[:n])
		if !strings.HasSuffix(msg, "\n") {
			msg += "\n"
		}
		if _, err := out.WriteString(msg + "--\n"); err != nil {
			return err
		}
		if strings.Contains(msg, "STOP=1\n") {
			return nil
		}
	}
}

func send(msg string) error {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return fmt.Errorf("NOTIFY_SOCKET is not set")
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(msg))
	return err
}
