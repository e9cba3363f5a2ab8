// udpecho is a test helper for UDP port publishing (busybox-static's nc
// has no UDP). Built static by the e2e harness ($UDPECHO) and bind-mounted
// into containers.
//
//	udpecho serve PORT        echo every datagram back, and print it
//	udpecho send ADDR MSG     send MSG until the echo comes back (5 s at
//	                          most), print the echo
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: udpecho serve PORT | udpecho send ADDR MSG")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2])
	case "send":
		if len(os.Args) != 4 {
			err = fmt.Errorf("usage: udpecho send ADDR MSG")
			break
		}
		err = send(os.Args[2], os.Args[3])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpecho:", err)
		os.Exit(1)
	}
}

func serve(port string) error {
	c, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		return err
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		fmt.Printf("%s from %s\n", buf[:n], from)
		if _, err := c.WriteTo(buf[:n], from); err != nil {
			return err
		}
	}
}

func send(addr, msg string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 65536)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte(msg)); err != nil {
			// ECONNREFUSED from an earlier datagram: nobody listens yet.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			fmt.Printf("%s\n", buf[:n])
			return nil
		}
	}
	return fmt.Errorf("no echo from %s within 5s", addr)
}
