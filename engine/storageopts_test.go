package engine

import (
	"reflect"
	"testing"
)

func TestSplitStorageOpts(t *testing.T) {
	for in, want := range map[string][]string{
		"": nil,
		"overlay.mount_program=/usr/bin/fuse-overlayfs":               {"overlay.mount_program=/usr/bin/fuse-overlayfs"},
		"overlay.mountopt=nodev,metacopy=on,overlay.mount_program=/p": {"overlay.mountopt=nodev,metacopy=on", "overlay.mount_program=/p"},
		"vfs.ignore_chown_errors=true, overlay.size=1G":               {"vfs.ignore_chown_errors=true", "overlay.size=1G"},
	} {
		if got := SplitStorageOpts(in); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitStorageOpts(%q) = %q, want %q", in, got, want)
		}
	}
}

// The options reach the processes berth starts (a detached monitor
// opens the store again) through the environment.
func TestStorageOptsExported(t *testing.T) {
	t.Setenv(storageOptsEnv, "")
	dir := t.TempDir()
	opts := []string{"overlay.mountopt=nodev,metacopy=on", "vfs.ignore_chown_errors=true"}
	if _, err := New(Config{Root: dir + "/root", RunRoot: dir + "/run", StorageDriver: "vfs", StorageOpts: opts}); err != nil {
		t.Fatal(err)
	}
	if got := DefaultConfig().StorageOpts; !reflect.DeepEqual(got, opts) {
		t.Errorf("a child's StorageOpts = %q, want %q", got, opts)
	}
	if _, err := New(Config{Root: dir + "/root", RunRoot: dir + "/run", StorageDriver: "zfs"}); err == nil {
		t.Errorf("New accepted storage driver zfs")
	}
}
