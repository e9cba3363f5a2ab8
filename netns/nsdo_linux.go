package netns

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on a thread in the network namespace at path (a bind mount
// of one, or /proc/PID/ns/net) and waits for it. Sockets fn makes
// (netlink, nftables, a dial) belong to that namespace, and keep
// belonging to it afterwards. fn must not hand work to other goroutines:
// they run on other threads.
// An empty path runs fn where the caller is.
func Do(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	return DoFd(fd, fn)
}

// DoFd is Do with the namespace given as an open descriptor.
//
// fn runs on a thread of its own that never comes back: a rootless
// berth may enter its own namespace but not return to the host's (that
// needs CAP_SYS_ADMIN over the host's user namespace), so the thread
// stays locked and the runtime ends it with the goroutine. (Go makes new
// threads from a clean template thread, never from one moved elsewhere.)
func DoFd(fd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering a network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
