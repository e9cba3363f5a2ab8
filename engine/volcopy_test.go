package engine

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestSeedVolume(t *testing.T) {
	rootfs, vol, host := t.TempDir(), t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(rootfs, "data/sub"), 0o755))
	must(os.WriteFile(filepath.Join(rootfs, "data/sub/f"), []byte("content"), 0o640))
	must(os.Chmod(filepath.Join(rootfs, "data"), 0o750))
	must(os.Symlink("sub/f", filepath.Join(rootfs, "data/link")))
	must(os.Symlink(host, filepath.Join(rootfs, "escape")))
	must(syscall.Mkfifo(filepath.Join(rootfs, "data/fifo"), 0o600))
	must(os.Chmod(filepath.Join(rootfs, "data/fifo"), 0o624))
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(rootfs, "data/sub/f"), 1000, 1001))
	}
	must(seedVolume(rootfs, "/data", vol))
	b, err := os.ReadFile(filepath.Join(vol, "sub/f"))
	if err != nil || string(b) != "content" {
		t.Fatalf("sub/f = %q, %v", b, err)
	}
	fi, _ := os.Stat(vol)
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("volume root mode %v, want 0750 (the image directory's)", fi.Mode().Perm())
	}
	fi, _ = os.Stat(filepath.Join(vol, "sub/f"))
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("sub/f mode %v", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 1000 || st.Gid != 1001) {
		t.Errorf("sub/f owner %d:%d", st.Uid, st.Gid)
	}
	if fi, err := os.Lstat(filepath.Join(vol, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o624 {
		t.Errorf("fifo = %v, %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(vol, "link")); err != nil || l != "sub/f" {
		t.Errorf("link = %q, %v", l, err)
	}

	// A non-empty volume is not seeded again.
	must(os.WriteFile(filepath.Join(rootfs, "data/new"), nil, 0o644))
	must(seedVolume(rootfs, "/data", vol))
	if _, err := os.Stat(filepath.Join(vol, "new")); err == nil {
		t.Error("a non-empty volume was seeded again")
	}

	// A symlink to a host path is resolved inside the rootfs: the host's
	// directory is never read.
	must(os.WriteFile(filepath.Join(host, "secret"), []byte("x"), 0o644))
	vol2 := t.TempDir()
	must(seedVolume(rootfs, "/escape", vol2))
	if entries, _ := os.ReadDir(vol2); len(entries) != 0 {
		t.Errorf("seeding through a symlink read the host: %v", entries)
	}
	// A missing path or a file: nothing to copy.
	must(seedVolume(rootfs, "/nothing/here", vol2))
	must(seedVolume(rootfs, "/data/sub/f", vol2))
}
