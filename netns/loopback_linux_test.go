package netns

import (
	"net"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLoopbackUp(t *testing.T) {
	done := make(chan error, 1)
	go func() {
		// This goroutine's thread goes into a fresh network namespace and
		// is never unlocked, so it ends with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			done <- err
			return
		}
		if lo.Flags&net.FlagUp != 0 {
			t.Errorf("lo is up before LoopbackUp in a new namespace")
		}
		if err := LoopbackUp(); err != nil {
			done <- err
			return
		}
		lo, err = net.InterfaceByName("lo")
		if err == nil && lo.Flags&net.FlagUp == 0 {
			t.Errorf("lo is still down after LoopbackUp")
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
