package storage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if ReexecInit() {
		return
	}
	os.Exit(m.Run())
}

// openTestStore opens a store in a fresh temporary directory and makes sure
// nothing stays mounted there when the test ends.
func openTestStore(t *testing.T) *Store {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("storage tests need root")
	}
	dir := t.TempDir()
	t.Cleanup(func() { checkNoMountsUnder(t, dir) })
	store, err := Open(Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Shutdown(true); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return store
}

func checkNoMountsUnder(t *testing.T, dir string) {
	t.Helper()
	file, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir) {
			t.Errorf("mount left behind: %s", fields[4])
		}
	}
}

// tarEntry is one file of a generated test tar.
type tarEntry struct {
	name     string
	body     string
	typeflag byte
	linkname string
}

var rootfsEntries = []tarEntry{
	{name: "bin/", typeflag: tar.TypeDir},
	{name: "bin/hello", body: "#!/bin/sh\necho hello\n"},
	{name: "etc/", typeflag: tar.TypeDir},
	{name: "etc/motd", body: "welcome\n"},
	{name: "data/", typeflag: tar.TypeDir},
	{name: "motd", typeflag: tar.TypeSymlink, linkname: "etc/motd"},
}

func makeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		header := &tar.Header{Name: e.name, Typeflag: e.typeflag, Linkname: e.linkname, ModTime: time.Unix(1700000000, 0)}
		switch e.typeflag {
		case tar.TypeDir:
			header.Mode = 0o755
		case tar.TypeSymlink:
			header.Mode = 0o777
		default:
			header.Typeflag = tar.TypeReg
			header.Mode = 0o755
			header.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(header); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func importTestImage(t *testing.T, store *Store, ref string) *Image {
	t.Helper()
	image, err := store.Import(context.Background(), bytes.NewReader(makeTar(t, rootfsEntries)), ImportOptions{
		Ref:     ref,
		Changes: []string{`CMD ["/bin/hello"]`, "ENV A=b"},
		Message: "test import",
	})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return image
}

func TestImportAndLookup(t *testing.T) {
	store := openTestStore(t)
	image := importTestImage(t, store, "busybox")

	if len(image.ID) != 64 {
		t.Fatalf("image ID %q is not a hex sha256", image.ID)
	}
	if want := []string{"docker.io/library/busybox:latest"}; strings.Join(image.Names, ",") != want[0] {
		t.Errorf("Names = %v, want %v", image.Names, want)
	}
	if image.Config == nil || strings.Join(image.Config.Config.Cmd, " ") != "/bin/hello" {
		t.Errorf("config Cmd = %v", image.Config)
	}
	if got := image.Config.Config.Env; len(got) != 1 || got[0] != "A=b" {
		t.Errorf("Env = %v", got)
	}
	if len(image.Config.History) != 1 || image.Config.History[0].Comment != "test import" || image.Config.History[0].CreatedBy != "berth import" {
		t.Errorf("History = %+v", image.Config.History)
	}
	if len(image.Config.RootFS.DiffIDs) != 1 {
		t.Errorf("DiffIDs = %v", image.Config.RootFS.DiffIDs)
	}
	if image.Size <= 0 {
		t.Errorf("Size = %d", image.Size)
	}
	if image.Config.OS != "linux" || image.Config.Architecture == "" {
		t.Errorf("platform %s/%s", image.Config.OS, image.Config.Architecture)
	}

	for _, query := range []string{
		"busybox", "busybox:latest", "docker.io/library/busybox:latest", "library/busybox",
		image.ID, "sha256:" + image.ID, image.ID[:12], "sha256:" + image.ID[:5],
	} {
		found, err := store.LookupImage(query)
		if err != nil {
			t.Errorf("LookupImage(%q): %v", query, err)
			continue
		}
		if found.ID != image.ID {
			t.Errorf("LookupImage(%q) = %s, want %s", query, found.ID, image.ID)
		}
	}
	for _, query := range []string{"nosuch", "busybox:1.0", "0000000", image.ID[:2], ""} {
		_, err := store.LookupImage(query)
		if !errors.Is(err, ErrImageNotFound) {
			t.Errorf("LookupImage(%q) error = %v, want ErrImageNotFound", query, err)
		}
	}
	if _, err := store.LookupImage("nosuch"); err == nil || !strings.Contains(err.Error(), "no such image: nosuch") {
		t.Errorf("not-found message = %v", err)
	}

	images, err := store.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || images[0].ID != image.ID {
		t.Fatalf("Images() = %+v", images)
	}
}

func TestImportMovesNameAndReusesLayer(t *testing.T) {
	store := openTestStore(t)
	first := importTestImage(t, store, "app:1")
	time.Sleep(time.Millisecond) // a distinct Created, so a distinct config
	second, err := store.Import(context.Background(), bytes.NewReader(gzipBytes(t, makeTar(t, rootfsEntries))), ImportOptions{Ref: "app:1"})
	if err != nil {
		t.Fatalf("Import gzip: %v", err)
	}
	if first.ID == second.ID {
		t.Fatal("two imports made the same image")
	}
	if second.TopLayer != first.TopLayer {
		t.Errorf("identical content got a new layer: %s vs %s", second.TopLayer, first.TopLayer)
	}
	old, err := store.LookupImage(first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(old.Names) != 0 {
		t.Errorf("old image still has names %v", old.Names)
	}
	found, err := store.LookupImage("app:1")
	if err != nil || found.ID != second.ID {
		t.Errorf("app:1 -> %v, %v; want %s", found, err, second.ID)
	}

	untagged, err := store.Import(context.Background(), bytes.NewReader(makeTar(t, rootfsEntries[:2])), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(untagged.Names) != 0 {
		t.Errorf("untagged import has names %v", untagged.Names)
	}
	layers, err := store.store.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Errorf("have %d layers, want 2", len(layers))
	}

	images, err := store.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 3 {
		t.Fatalf("Images() has %d images, want 3", len(images))
	}
}

func TestImportCorruptLeavesNothing(t *testing.T) {
	store := openTestStore(t)
	valid := makeTar(t, []tarEntry{{name: "big", body: strings.Repeat("x", 100000)}})
	truncated := valid[:50000]
	garbageGzip := append([]byte{0x1f, 0x8b, 0x08, 0x00}, bytes.Repeat([]byte{0xff}, 1000)...)
	for name, input := range map[string][]byte{
		"truncated tar":      truncated,
		"truncated gzip":     gzipBytes(t, valid)[:200],
		"garbage gzip":       garbageGzip,
		"not a tar":          bytes.Repeat([]byte("not a tar archive\n"), 100),
		"truncated gzip tar": gzipBytes(t, truncated),
	} {
		_, err := store.Import(context.Background(), bytes.NewReader(input), ImportOptions{Ref: "broken"})
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrCorruptArchive) {
			t.Errorf("%s: error = %v, want ErrCorruptArchive", name, err)
		}
	}
	layers, err := store.store.Layers()
	if err != nil {
		t.Fatal(err)
	}
	images, err := store.store.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 0 || len(images) != 0 {
		t.Errorf("left behind %d layers and %d images", len(layers), len(images))
	}
}

func TestImportBadChange(t *testing.T) {
	store := openTestStore(t)
	_, err := store.Import(context.Background(), bytes.NewReader(makeTar(t, rootfsEntries)), ImportOptions{Changes: []string{"FOO x"}})
	if err == nil || err.Error() != `invalid --change "FOO x": unknown instruction FOO` {
		t.Fatalf("error = %v", err)
	}
}

func TestRootfs(t *testing.T) {
	store := openTestStore(t)
	image := importTestImage(t, store, "busybox")

	for _, id := range []string{"c1", "c2"} {
		if err := store.CreateRootfs(id, image.ID, RootfsOptions{}); err != nil {
			t.Fatalf("CreateRootfs(%s): %v", id, err)
		}
		t.Cleanup(func() { _ = store.RemoveRootfs(id) })
	}
	dir1, err := store.MountRootfs("c1")
	if err != nil {
		t.Fatal(err)
	}
	dir2, err := store.MountRootfs("c2")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := store.MountRootfs("c1"); err != nil || again != dir1 {
		t.Errorf("second mount: %q, %v; want %q", again, err, dir1)
	}

	data, err := os.ReadFile(filepath.Join(dir1, "etc/motd"))
	if err != nil || string(data) != "welcome\n" {
		t.Errorf("etc/motd = %q, %v", data, err)
	}
	if target, err := os.Readlink(filepath.Join(dir1, "motd")); err != nil || target != "etc/motd" {
		t.Errorf("motd symlink = %q, %v", target, err)
	}
	if info, err := os.Stat(filepath.Join(dir1, "data")); err != nil || !info.IsDir() {
		t.Errorf("data dir: %v", err)
	}

	if err := os.WriteFile(filepath.Join(dir1, "data/written"), bytes.Repeat([]byte("y"), 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "data/written")); !os.IsNotExist(err) {
		t.Errorf("write in c1 visible in c2: %v", err)
	}
	size, err := store.RootfsSize("c1")
	if err != nil {
		t.Fatal(err)
	}
	if size < 8192 {
		t.Errorf("RootfsSize(c1) = %d, want >= 8192", size)
	}
	if size2, err := store.RootfsSize("c2"); err != nil || size2 >= 8192 {
		t.Errorf("RootfsSize(c2) = %d, %v", size2, err)
	}

	for i := 0; i < 2; i++ {
		if err := store.UnmountRootfs("c1"); err != nil {
			t.Errorf("UnmountRootfs #%d: %v", i, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir1, "etc/motd")); err == nil {
		t.Errorf("rootfs still mounted after UnmountRootfs")
	}
	// Remounting shows the earlier write again: it is persistent.
	dir1, err = store.MountRootfs("c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir1, "data/written")); err != nil {
		t.Errorf("write lost after remount: %v", err)
	}

	if err := store.RemoveImage(image.ID); err == nil {
		t.Errorf("RemoveImage of an image in use succeeded")
	}
	for i := 0; i < 2; i++ {
		for _, id := range []string{"c1", "c2"} {
			if err := store.RemoveRootfs(id); err != nil {
				t.Errorf("RemoveRootfs(%s) #%d: %v", id, i, err)
			}
		}
	}
	if err := store.UnmountRootfs("never-existed"); err != nil {
		t.Errorf("UnmountRootfs(unknown): %v", err)
	}
	if err := store.CreateRootfs("c3", "nosuchimage", RootfsOptions{}); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("CreateRootfs with unknown image: %v", err)
	}
	if err := store.RemoveImage("busybox"); err != nil {
		t.Errorf("RemoveImage: %v", err)
	}
	if layers, _ := store.store.Layers(); len(layers) != 0 {
		t.Errorf("%d layers left after removing the image", len(layers))
	}
}

func TestReopen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("storage tests need root")
	}
	dir := t.TempDir()
	t.Cleanup(func() { checkNoMountsUnder(t, dir) })
	options := Options{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run")}
	store, err := Open(options)
	if err != nil {
		t.Fatal(err)
	}
	if store.Driver() != "overlay" && store.Driver() != "vfs" {
		t.Errorf("Driver() = %q", store.Driver())
	}
	if len(store.DriverStatus()) == 0 {
		t.Errorf("DriverStatus() is empty")
	}
	image := importTestImage(t, store, "persist:1")
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store, err = Open(options)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := store.Shutdown(true); err != nil {
			t.Error(err)
		}
	}()
	found, err := store.LookupImage("persist:1")
	if err != nil || found.ID != image.ID {
		t.Fatalf("after reopen: %v, %v", found, err)
	}
}
