package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.podman.io/storage/pkg/archive"
)

// changeContainer makes a container on image and adds, changes and
// deletes files in it, as a process in it would.
func changeContainer(t *testing.T, store *Store, id, image string) {
	t.Helper()
	if err := store.CreateRootfs(id, image, RootfsOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.RemoveRootfs(id) })
	dir, err := store.MountRootfs(id)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"etc/newfile": "new\n", "etc/motd": "changed\n", "etc/hosts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "bin/hello")); err != nil {
		t.Fatal(err)
	}
	if err := store.UnmountRootfs(id); err != nil {
		t.Fatal(err)
	}
}

func TestContainerChanges(t *testing.T) {
	store := openTestStore(t)
	image := importTestImage(t, store, "base")
	changeContainer(t, store, "c1", image.ID)

	changes, err := store.ContainerChanges("c1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.String())
	}
	want := []string{"C /bin", "D /bin/hello", "C /etc", "C /etc/motd", "A /etc/newfile"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}

	// A container that only received mount point stubs changed nothing.
	if err := store.CreateRootfs("c2", image.ID, RootfsOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.RemoveRootfs("c2") })
	dir, err := store.MountRootfs("c2")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etc/hosts", "etc/hostname", "etc/resolv.conf"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if changes, err := store.ContainerChanges("c2"); err != nil || len(changes) != 0 {
		t.Errorf("changes of a container with stubs only = %v, %v", changes, err)
	}
	if _, err := store.ContainerChanges("nosuch"); err == nil {
		t.Errorf("ContainerChanges of an unknown container succeeded")
	}
}

func TestFilterChangesSorts(t *testing.T) {
	raw := []archive.Change{
		{Path: "/tmp/x", Kind: archive.ChangeAdd},
		{Path: "/etc/hosts", Kind: archive.ChangeAdd},
		{Path: "/etc", Kind: archive.ChangeModify},
		{Path: "/a", Kind: archive.ChangeDelete},
		{Path: "/tmp", Kind: archive.ChangeModify},
	}
	got, skipped := filterChanges(raw)
	want := []Change{{"D", "/a"}, {"C", "/tmp"}, {"A", "/tmp/x"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("filterChanges = %v, want %v", got, want)
	}
	if !skipped["/etc"] || !skipped["/etc/hosts"] || len(skipped) != 2 {
		t.Errorf("skipped = %v", skipped)
	}
}

// layerTarNames lists the entries of the top layer of image as stored.
func layerTarNames(t *testing.T, store *Store, image *Image) []string {
	t.Helper()
	rc, err := store.store.Diff("", image.TopLayer, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
	sort.Strings(names)
	return names
}

func TestCommit(t *testing.T) {
	store := openTestStore(t)
	base := importTestImage(t, store, "base")
	changeContainer(t, store, "c1", base.ID)

	image, err := store.Commit(context.Background(), "c1", CommitOptions{
		Ref:       "committed:v1",
		Author:    "Someone <s@example.com>",
		Message:   "a message",
		Changes:   []string{`CMD ["cat","/etc/newfile"]`, "ENV B=c"},
		CreatedBy: "/bin/sh -c edit",
		ContainerConfig: v1.Config{
			Cmd:        []string{"/bin/sh", "-c", "edit"},
			Env:        []string{"A=b", "B=old"},
			WorkingDir: "/data",
			Labels:     map[string]string{"l": "1"},
		},
	})
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if image.Names[0] != "docker.io/library/committed:v1" {
		t.Errorf("names = %v", image.Names)
	}
	cf := image.Config
	if got := cf.Config.Cmd; !reflect.DeepEqual(got, []string{"cat", "/etc/newfile"}) {
		t.Errorf("Cmd = %q", got)
	}
	if got := cf.Config.Env; !reflect.DeepEqual(got, []string{"B=c", "A=b"}) {
		t.Errorf("Env = %q", got)
	}
	if cf.Config.WorkingDir != "/data" || cf.Config.Labels["l"] != "1" || cf.Author != "Someone <s@example.com>" {
		t.Errorf("config = %+v", cf)
	}
	if len(cf.RootFS.DiffIDs) != 2 || cf.RootFS.DiffIDs[0] != base.Config.RootFS.DiffIDs[0] {
		t.Errorf("diff IDs = %v", cf.RootFS.DiffIDs)
	}
	if len(cf.History) != 2 {
		t.Fatalf("history = %+v", cf.History)
	}
	h := cf.History[1]
	if h.Comment != "a message" || h.Author != "Someone <s@example.com>" || h.CreatedBy != "/bin/sh -c edit" || h.EmptyLayer {
		t.Errorf("history entry = %+v", h)
	}
	// The new layer is an OCI layer: a whiteout for the deleted file, no
	// mount point stub.
	want := []string{"bin/", "bin/.wh.hello", "etc/", "etc/motd", "etc/newfile"}
	if got := layerTarNames(t, store, image); !reflect.DeepEqual(got, want) {
		t.Errorf("layer entries = %q, want %q", got, want)
	}
	// The image's ID is the digest of its config.
	configBytes, err := store.store.ImageBigData(image.ID, configKey)
	if err != nil || imageIDOf(configBytes) != image.ID {
		t.Errorf("image ID %s does not match its config: %v", image.ID, err)
	}

	// A container of the new image sees the changes.
	if err := store.CreateRootfs("c2", image.ID, RootfsOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.RemoveRootfs("c2") })
	dir, err := store.MountRootfs("c2")
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "etc/newfile")); err != nil || string(data) != "new\n" {
		t.Errorf("etc/newfile = %q, %v", data, err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "etc/motd")); err != nil || string(data) != "changed\n" {
		t.Errorf("etc/motd = %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin/hello")); !os.IsNotExist(err) {
		t.Errorf("bin/hello is back: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/hosts")); !os.IsNotExist(err) {
		t.Errorf("the etc/hosts stub was committed: %v", err)
	}

	// History: newest first, the base image named for its entry.
	entries, err := store.History("committed:v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].ID != image.ID || entries[0].Comment != "a message" || entries[0].Size <= 0 {
		t.Fatalf("history = %+v", entries)
	}
	if entries[1].ID != base.ID || entries[1].CreatedBy != "berth import" || entries[1].Size <= 0 {
		t.Errorf("base entry = %+v", entries[1])
	}
}

func TestCommitUnchangedIsEmptyLayer(t *testing.T) {
	store := openTestStore(t)
	base := importTestImage(t, store, "base")
	if err := store.CreateRootfs("c1", base.ID, RootfsOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.RemoveRootfs("c1") })
	image, err := store.Commit(context.Background(), "c1", CommitOptions{CreatedBy: "true"})
	if err != nil {
		t.Fatal(err)
	}
	if image.TopLayer != base.TopLayer || len(image.Config.RootFS.DiffIDs) != 1 || !image.Config.History[1].EmptyLayer {
		t.Errorf("unchanged commit: top layer %s (base %s), config %+v", image.TopLayer, base.TopLayer, image.Config)
	}
	entries, err := store.History(image.ID)
	if err != nil || len(entries) != 2 || entries[0].Size != 0 || !entries[0].EmptyLayer || entries[1].Size <= 0 {
		t.Errorf("history = %+v, %v", entries, err)
	}
}

func TestCommitFailureLeavesNothing(t *testing.T) {
	store := openTestStore(t)
	base := importTestImage(t, store, "base")
	changeContainer(t, store, "c1", base.ID)
	layersBefore, _ := store.store.Layers()
	for _, o := range []CommitOptions{
		{Changes: []string{"BOGUS x"}},
		{Ref: "Not A Ref"},
	} {
		if _, err := store.Commit(context.Background(), "c1", o); err == nil {
			t.Errorf("Commit(%+v) succeeded", o)
		}
	}
	if _, err := store.Commit(context.Background(), "nosuch", CommitOptions{}); err == nil {
		t.Errorf("Commit of an unknown container succeeded")
	}
	layersAfter, _ := store.store.Layers()
	images, _ := store.Images()
	if len(layersAfter) != len(layersBefore) || len(images) != 1 {
		t.Errorf("failed commits left %d layers (before %d), %d images", len(layersAfter), len(layersBefore), len(images))
	}
}

func TestMergeCommitConfig(t *testing.T) {
	ctr := v1.Config{
		Entrypoint:   []string{"/entry"},
		Cmd:          []string{"arg"},
		Env:          []string{"A=1", "B=2"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
		User:         "nobody",
	}
	// CMD alone keeps the container's entrypoint.
	var user v1.Config
	if err := ApplyChanges(&user, []string{"CMD other", "ENV B=3", "EXPOSE 443"}); err != nil {
		t.Fatal(err)
	}
	mergeCommitConfig(&user, &ctr)
	if !reflect.DeepEqual(user.Entrypoint, []string{"/entry"}) || !reflect.DeepEqual(user.Cmd, []string{"/bin/sh", "-c", "other"}) {
		t.Errorf("entrypoint/cmd = %q %q", user.Entrypoint, user.Cmd)
	}
	if !reflect.DeepEqual(user.Env, []string{"B=3", "A=1"}) || user.User != "nobody" || len(user.ExposedPorts) != 2 {
		t.Errorf("merged = %+v", user)
	}
	// ENTRYPOINT drops the container's cmd, as docker's merge does.
	user = v1.Config{}
	if err := ApplyChanges(&user, []string{`ENTRYPOINT ["/new"]`}); err != nil {
		t.Fatal(err)
	}
	mergeCommitConfig(&user, &ctr)
	if !reflect.DeepEqual(user.Entrypoint, []string{"/new"}) || user.Cmd != nil {
		t.Errorf("entrypoint/cmd = %q %q", user.Entrypoint, user.Cmd)
	}
}

func TestCopyLayerTarSkipsStubs(t *testing.T) {
	in := makeTar(t, []tarEntry{
		{name: "etc/", typeflag: tar.TypeDir},
		{name: "etc/hosts"},
		{name: "etc/passwd", body: "root\n"},
		{name: ".wh.gone"},
	})
	var out bytes.Buffer
	n, err := copyLayerTar(context.Background(), &out, bytes.NewReader(in), map[string]bool{}, LayerTimes{})
	if err != nil || n != 3 {
		t.Fatalf("copyLayerTar = %d, %v", n, err)
	}
	n, err = copyLayerTar(context.Background(), io.Discard, bytes.NewReader(makeTar(t, []tarEntry{{name: "etc/", typeflag: tar.TypeDir}, {name: "etc/hostname"}})), map[string]bool{"/etc": true}, LayerTimes{})
	if err != nil || n != 0 {
		t.Errorf("stubs only: %d entries, %v", n, err)
	}
}
