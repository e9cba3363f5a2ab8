package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// seedVolume copies what a container's rootfs holds at dest into an empty
// volume directory, as docker does on a volume's first use: owners,
// modes, times, symlinks, device nodes and (where the filesystems allow)
// extended attributes. dest is resolved inside the rootfs
// (openat2 RESOLVE_IN_ROOT), so a symlink in the image cannot make berth
// read the host. A volume that has any entry already is left alone, and
// so is a dest the image lacks or that is not a directory. Hard links
// become separate copies.
func seedVolume(rootfs, dest, volumeDir string) error {
	root, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	fd, err := openat2(int(root.Fd()), strings.TrimPrefix(dest, "/"), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return err
	}
	src := os.NewFile(uintptr(fd), dest)
	defer src.Close()
	dst, err := os.Open(volumeDir)
	if err != nil {
		return err
	}
	defer dst.Close()
	if names, _ := dst.Readdirnames(1); len(names) > 0 {
		return nil
	}
	names, err := src.Readdirnames(-1)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	// The volume's root takes the owner and mode of the image's directory.
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	unix.Fchown(int(dst.Fd()), int(st.Uid), int(st.Gid))
	unix.Fchmod(int(dst.Fd()), st.Mode&0o7777)
	if err := copyEntries(src, dst, names); err != nil {
		return err
	}
	copyXattrs(int(src.Fd()), int(dst.Fd()))
	return nil
}

func openat2(dirfd int, p string, flags int) (int, error) {
	if p == "" {
		p = "."
	}
	how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(dirfd, p, how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "openat2", Path: p, Err: err}
		}
		return fd, nil
	}
}

func copyEntries(src, dst *os.File, names []string) error {
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		perm := st.Mode & 0o7777
		times := []unix.Timespec{st.Atim, st.Mtim}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			s, err := openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
			if err != nil {
				return err
			}
			d, err := openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
			if err != nil {
				s.Close()
				return err
			}
			sub, err := s.Readdirnames(-1)
			if err == nil {
				err = copyEntries(s, d, sub)
			}
			if err == nil {
				copyXattrs(int(s.Fd()), int(d.Fd()))
				unix.Fchown(int(d.Fd()), int(st.Uid), int(st.Gid))
				unix.Fchmod(int(d.Fd()), perm)
			}
			s.Close()
			d.Close()
			if err != nil {
				return err
			}
		case unix.S_IFREG:
			s, err := openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW)
			if err != nil {
				return err
			}
			d, err := openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				s.Close()
				return err
			}
			_, err = io.Copy(d, s)
			if err == nil {
				copyXattrs(int(s.Fd()), int(d.Fd()))
				unix.Fchown(int(d.Fd()), int(st.Uid), int(st.Gid))
				unix.Fchmod(int(d.Fd()), perm) // after chown, which clears setuid
			}
			s.Close()
			if cerr := d.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case unix.S_IFLNK:
			target, err := readlinkat(src, name)
			if err != nil {
				return err
			}
			if err := unix.Symlinkat(target, dfd, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
		default: // device nodes, fifos, sockets
			if err := unix.Mknodat(dfd, name, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
			chmodNoFollow(dfd, name, perm)
		}
		unix.UtimesNanoAt(dfd, name, times, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

// copyXattrs copies the extended attributes it can; a filesystem that
// refuses one (or has none) is not an error.
func copyXattrs(src, dst int) {
	size, err := unix.Flistxattr(src, nil)
	if err != nil || size <= 0 {
		return
	}
	buf := make([]byte, size)
	if size, err = unix.Flistxattr(src, buf); err != nil {
		return
	}
	for _, name := range strings.Split(string(buf[:size]), "\x00") {
		if name == "" {
			continue
		}
		n, err := unix.Fgetxattr(src, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, n)
		if n, err = unix.Fgetxattr(src, name, val); err != nil {
			continue
		}
		unix.Fsetxattr(dst, name, val[:n], 0)
	}
}

// chmodNoFollow changes the mode of the node dir/name itself, never of what
// a symlink put there meanwhile would point to: fchmodat cannot refuse
// symlinks, so the node is opened O_PATH|O_NOFOLLOW and changed through
// its /proc/self/fd entry.
func chmodNoFollow(dir int, name string, perm uint32) {
	fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return
	}
	unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), perm)
}
