package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load installs the filter with seccomp(SECCOMP_SET_MODE_FILTER,
// SECCOMP_FILTER_FLAG_TSYNC). TSYNC applies it atomically to every thread of
// the calling process, so it does not matter which OS thread the Go runtime
// runs Load on: the thread that later calls execve is covered, and so are
// threads created afterwards (filters are inherited). The filter stays in
// force across execve and cannot be removed.
//
// Load does not set no_new_privs. The kernel only accepts a filter from a
// thread that has CAP_SYS_ADMIN in its user namespace or has no_new_privs set
// (prctl(PR_SET_NO_NEW_PRIVS, 1)); a caller without CAP_SYS_ADMIN must set
// no_new_privs first (on the calling thread — with runtime.LockOSThread so it
// is the same thread), otherwise Load fails with EACCES. A privileged caller
// can load the filter before dropping capabilities and leave no_new_privs
// alone (as runc does when noNewPrivileges is false).
//
// Note that once loaded, the filter also restricts the rest of the caller's
// own (Go) code: load it as the last step before execve.
func (f *Filter) Load() error {
	if len(f.prog) == 0 {
		return errors.New("seccomp: empty filter")
	}
	fprog := unix.SockFprog{Len: uint16(len(f.prog)), Filter: &f.prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, f.flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(f)
	switch {
	case errno == unix.EACCES:
		return fmt.Errorf("seccomp: loading filter: %w (caller needs CAP_SYS_ADMIN or no_new_privs)", errno)
	case errno != 0:
		return fmt.Errorf("seccomp: loading filter: %w", errno)
	case r != 0:
		// With TSYNC, a positive return is the ID of a thread that could
		// not be synchronized (it has an unrelated filter); nothing was
		// installed.
		return fmt.Errorf("seccomp: loading filter: thread %d could not be synchronized", r)
	}
	return nil
}
