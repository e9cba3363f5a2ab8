package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// SealedExe returns the path of a read-only bind mount of the running
// berth binary, kept at runroot/berth.exe, creating or refreshing it when
// needed. Containers' init children are exec'd from it, so a process in a
// container that reaches the binary through /proc/PID/exe cannot rewrite
// the host's berth (CVE-2019-5736): writes fail with EROFS. Checking an
// existing mount costs two stat calls.
func SealedExe(runroot string) (string, error) {
	target := filepath.Join(runroot, "berth.exe")
	var self, cur unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return "", fmt.Errorf("finding own binary: %w", err)
	}
	if unix.Stat(target, &cur) == nil && cur.Dev == self.Dev && cur.Ino == self.Ino && readOnly(target) {
		return target, nil
	}
	// Someone else may be doing the same: serialize on a lock file.
	lf, err := os.OpenFile(target+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("sealing berth binary: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("sealing berth binary: %w", err)
	}
	if unix.Stat(target, &cur) == nil && cur.Dev == self.Dev && cur.Ino == self.Ino && readOnly(target) {
		return target, nil
	}
	// Drop stale mounts of an older binary.
	for unix.Unmount(target, unix.MNT_DETACH) == nil {
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o500)
	if err != nil {
		return "", fmt.Errorf("sealing berth binary: %w", err)
	}
	f.Close()
	if err := unix.Mount("/proc/self/exe", target, "", unix.MS_BIND, ""); err != nil {
		// A rootless berth was exec'd before it joined its user's mount
		// namespace: its /proc/self/exe is in the host's, which cannot be
		// bound here. The same binary by its path can.
		path, lerr := os.Readlink("/proc/self/exe")
		if !errors.Is(err, unix.EINVAL) || lerr != nil {
			return "", fmt.Errorf("bind-mounting berth binary: %w", err)
		}
		if err := unix.Mount(path, target, "", unix.MS_BIND, ""); err != nil {
			return "", fmt.Errorf("bind-mounting berth binary %s: %w", path, err)
		}
	}
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		unix.Unmount(target, unix.MNT_DETACH)
		return "", fmt.Errorf("making berth binary read-only: %w", err)
	}
	return target, nil
}

// UnsealExe removes the read-only bind mount made by SealedExe.
func UnsealExe(runroot string) {
	target := filepath.Join(runroot, "berth.exe")
	for unix.Unmount(target, unix.MNT_DETACH) == nil {
	}
}

func readOnly(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Flags&unix.ST_RDONLY != 0
}
