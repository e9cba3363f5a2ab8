package storage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDriver(t *testing.T) {
	fuse, err := exec.LookPath("true") // any absolute executable
	if err != nil {
		t.Skip(err)
	}
	good := []struct {
		driver string
		opts   []string
	}{
		{"", nil},
		{"overlay", []string{"overlay.mount_program=" + fuse, "overlay.mountopt=nodev,metacopy=on"}},
		{"vfs", []string{"vfs.ignore_chown_errors=true", "overlay.mountopt=nodev"}},
		{"", []string{"overlay2.size=1G", "mountopt=nodev", "Overlay.MountOpt=nodev"}},
	}
	for _, c := range good {
		if err := CheckDriver(c.driver, c.opts); err != nil {
			t.Errorf("CheckDriver(%q, %q) = %v", c.driver, c.opts, err)
		}
	}
	bad := []struct {
		driver string
		opts   []string
		want   string
	}{
		{"btrfs", nil, `unknown storage driver "btrfs"`},
		{"overlay", []string{"overlay.mount_program"}, `malformed storage option "overlay.mount_program"`},
		{"", []string{"=x"}, `malformed storage option "=x"`},
		{"", []string{"zfs.size=1G"}, `unknown driver "zfs"`},
		{"", []string{"overlay.bogus=1"}, `unknown overlay option "bogus"`},
		{"", []string{"vfs.mountopt=nodev"}, `unknown vfs option "mountopt"`},
		{"", []string{"bogus=1"}, `unknown option "bogus"`},
		{"", []string{"overlay.mountopt="}, `has no value`},
		{"", []string{"overlay.mount_program=fuse-overlayfs"}, `absolute path to an executable`},
		{"", []string{"overlay.mount_program=/nonexistent/fuse-overlayfs"}, `absolute path to an executable`},
	}
	for _, c := range bad {
		err := CheckDriver(c.driver, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("CheckDriver(%q, %q) = %v, want one line with %q", c.driver, c.opts, err, c.want)
		}
	}
}

func TestDriverOption(t *testing.T) {
	opts := []string{"overlay.mount_program=/a", "vfs.mount_program=/b", "overlay2.mountopt=nodev", "mount_program=/c"}
	if got := driverOption(opts, "overlay", "mount_program"); got != "/c" {
		t.Errorf("mount_program = %q, want the last one for overlay, /c", got)
	}
	if got := driverOption(opts, "overlay", "mountopt"); got != "nodev" {
		t.Errorf("mountopt = %q", got)
	}
}

// kernelCannot records in a store's run root what c/storage records after
// its test mount failed (once per boot): native overlay is unusable.
func kernelCannot(t *testing.T, runRoot string) {
	t.Helper()
	dir := filepath.Join(runRoot, "storage", "overlay")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "overlay-false"), []byte("kernel does not support overlay fs: planted by a test"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The kernel cannot, and fuse-overlayfs is not in PATH: vfs, saying why.
func TestOverlayUnusableVFSLast(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("storage tests need root")
	}
	dir := t.TempDir()
	t.Cleanup(func() { checkNoMountsUnder(t, dir) })
	o := Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")}
	kernelCannot(t, o.RunRoot)
	t.Setenv("PATH", t.TempDir())
	store, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Shutdown(true)
	if store.Driver() != "vfs" || !strings.Contains(store.NoOverlay(), "planted by a test") {
		t.Errorf("Driver() = %s, NoOverlay() = %q; want vfs and c/storage's recorded reason", store.Driver(), store.NoOverlay())
	}
	// Forced overlay is not silently replaced.
	if _, err := Open(Options{Root: filepath.Join(dir, "root2"), RunRoot: o.RunRoot, Driver: "overlay"}); err == nil {
		t.Errorf("Open with driver overlay succeeded where overlay cannot be mounted")
	}
}

// The kernel cannot, fuse-overlayfs is installed: overlay through it, a
// rootfs that is a FUSE mount; once made so, the store stays so (after a
// "reboot" that cleared the run root); without fuse-overlayfs then, an
// error rather than an empty vfs store.
func TestOverlayThroughFuse(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("storage tests need root")
	}
	fuse, err := exec.LookPath(fuseOverlayfs)
	if err != nil {
		t.Skip("fuse-overlayfs is not installed")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	dir := t.TempDir()
	t.Cleanup(func() { checkNoMountsUnder(t, dir) })
	o := Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")}
	kernelCannot(t, o.RunRoot)
	store, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if mp, why := store.MountProgram(); store.Driver() != "overlay" || mp != fuse || why != MountProgramKernel {
		t.Fatalf("Driver() = %s, MountProgram() = %q, %q; want overlay through %s (kernel)", store.Driver(), mp, why, fuse)
	}
	if st := store.DriverStatus(); st[len(st)-1] != [2]string{"Mount Program", fuse} {
		t.Errorf("DriverStatus() = %q", st)
	}
	image := importTestImage(t, store, "f")
	if err := store.CreateRootfs("c", image.ID, RootfsOptions{}); err != nil {
		t.Fatal(err)
	}
	rootfs, err := store.MountRootfs("c")
	if err != nil {
		t.Fatal(err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if !strings.Contains(string(mounts), " "+rootfs+" ") || !strings.Contains(string(mounts), "fuse.fuse-overlayfs") {
		t.Errorf("%s is not a fuse-overlayfs mount:\n%s", rootfs, mounts)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "bin/hello")); err != nil {
		t.Errorf("rootfs lacks bin/hello: %v", err)
	}
	if err := store.RemoveRootfs("c"); err != nil {
		t.Fatal(err)
	}
	if err := store.Shutdown(true); err != nil {
		t.Fatal(err)
	}

	// A reboot: the run root's records are gone, the store's flag stays.
	if err := os.RemoveAll(o.RunRoot); err != nil {
		t.Fatal(err)
	}
	plan, err := planOverlay(filepath.Join(o.Root, "storage"), filepath.Join(o.RunRoot, "storage"))
	if err != nil || plan.mountProgram != fuse || plan.why != MountProgramStore {
		t.Errorf("after reboot: plan %+v, %v; want %s (store)", plan, err, fuse)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := planOverlay(filepath.Join(o.Root, "storage"), filepath.Join(o.RunRoot, "storage")); err == nil || !strings.Contains(err.Error(), "made with a mount program") {
		t.Errorf("without fuse-overlayfs: %v", err)
	}
}
