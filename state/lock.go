package state

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Lock is an flock(2) held on a file. It is released by Unlock or when the
// process dies, so a crashed berth never leaves a stale lock behind.
type Lock struct{ f *os.File }

// LockFile takes an exclusive lock on path, creating the file if needed,
// and blocks until it is granted.
func LockFile(path string) (*Lock, error) { return lockFile(path, unix.LOCK_EX) }

// LockFileShared takes a shared lock on path and blocks until granted.
func LockFileShared(path string) (*Lock, error) { return lockFile(path, unix.LOCK_SH) }

// TryLockFile takes an exclusive lock without blocking; ok is false when
// another process holds it.
func TryLockFile(path string) (l *Lock, ok bool, err error) {
	l, err = lockFile(path, unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		return nil, false, nil
	}
	return l, err == nil, err
}

func lockFile(path string, how int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, err
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// File returns the locked file (a monitor hands it to no one; it is
// exposed so the holder can keep it open across a fork if it must).
func (l *Lock) File() *os.File { return l.f }

// Unlock releases the lock. It is safe to call on a nil Lock.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}
