package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func tarLayer(t *testing.T, entries []tarEntry) v1.Layer {
	t.Helper()
	data := makeTar(t, entries)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return layer
}

func configID(t *testing.T, img v1.Image) string {
	t.Helper()
	digest, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return digest.Hex
}

func mustParseRef(t *testing.T, ref string) name.Reference {
	t.Helper()
	parsed, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

func TestLoadDockerArchive(t *testing.T) {
	store := openTestStore(t)

	base := tarLayer(t, rootfsEntries)
	app := tarLayer(t, []tarEntry{{name: "app/", typeflag: tar.TypeDir}, {name: "app/run", body: "app\n"}})
	appImage, err := mutate.AppendLayers(empty.Image, base, app)
	if err != nil {
		t.Fatal(err)
	}
	appImage, err = mutate.Config(appImage, v1.Config{Cmd: []string{"/app/run"}})
	if err != nil {
		t.Fatal(err)
	}
	baseImage, err := mutate.AppendLayers(empty.Image, base)
	if err != nil {
		t.Fatal(err)
	}
	untagged, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	untaggedDigest, err := untagged.Digest()
	if err != nil {
		t.Fatal(err)
	}

	var archive bytes.Buffer
	err = tarball.MultiRefWrite(map[name.Reference]v1.Image{
		mustParseRef(t, "example.com/app:1"):                           appImage,
		mustParseRef(t, "busybox:2"):                                   appImage,
		mustParseRef(t, "base"):                                        baseImage,
		mustParseRef(t, "example.com/random@"+untaggedDigest.String()): untagged,
	}, &archive)
	if err != nil {
		t.Fatal(err)
	}

	loaded, err := store.Load(context.Background(), bytes.NewReader(gzipBytes(t, archive.Bytes())))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	sort.Strings(loaded)
	want := []string{
		"docker.io/library/base:latest",
		"docker.io/library/busybox:2",
		"example.com/app:1",
		"sha256:" + configID(t, untagged),
	}
	sort.Strings(want)
	if strings.Join(loaded, " ") != strings.Join(want, " ") {
		t.Errorf("Load returned %v, want %v", loaded, want)
	}

	for ref, img := range map[string]v1.Image{"example.com/app:1": appImage, "busybox:2": appImage, "base": baseImage, configID(t, untagged): untagged} {
		found, err := store.LookupImage(ref)
		if err != nil {
			t.Errorf("LookupImage(%s): %v", ref, err)
			continue
		}
		if found.ID != configID(t, img) {
			t.Errorf("%s has ID %s, want config digest %s", ref, found.ID, configID(t, img))
		}
	}
	layers, err := store.store.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 {
		t.Errorf("have %d layers, want 3 (the base layer shared)", len(layers))
	}
	images, err := store.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 3 {
		t.Errorf("have %d images, want 3", len(images))
	}

	// The app image's rootfs has both layers.
	if err := store.CreateRootfs("app", configID(t, appImage), RootfsOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.RemoveRootfs("app") })
	dir, err := store.MountRootfs("app")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"etc/motd", "app/run"} {
		if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
			t.Errorf("rootfs lacks %s: %v", file, err)
		}
	}

	// Loading again changes nothing.
	if _, err := store.Load(context.Background(), bytes.NewReader(archive.Bytes())); err != nil {
		t.Fatalf("second Load: %v", err)
	}
	if layers, _ := store.store.Layers(); len(layers) != 4 { // 3 + the container's layer
		t.Errorf("second load: have %d layers, want 4", len(layers))
	}
}

// handImage is an image for a docker-archive written by hand.
type handImage struct {
	layers   [][]byte
	tags     []string
	badDiffs bool   // write a config whose diff_ids do not match the layers
	env      string // an Env entry, to vary the config
}

// writeDockerArchive writes a docker-archive the way `docker save` before
// v25 did: <id>.json configs, <dir>/layer.tar layers, manifest.json.
func writeDockerArchive(t *testing.T, images []handImage) ([]byte, []string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	var manifest tarball.Manifest
	var ids []string
	for i, image := range images {
		config := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}
		config.Config.Env = []string{"IMAGE=" + string(rune('a'+i))}
		if image.env != "" {
			config.Config.Env = append(config.Config.Env, image.env)
		}
		entry := tarball.Descriptor{RepoTags: image.tags}
		for j, layer := range image.layers {
			sum := sha256.Sum256(layer)
			if image.badDiffs {
				sum[0] ^= 0xff
			}
			config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])})
			layerPath := hex.EncodeToString(sum[:8]) + string(rune('a'+j)) + "/layer.tar"
			add(layerPath, layer)
			entry.Layers = append(entry.Layers, layerPath)
		}
		configBytes, err := json.Marshal(config)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(configBytes)
		id := hex.EncodeToString(sum[:])
		ids = append(ids, id)
		entry.Config = id + ".json"
		add(entry.Config, configBytes)
		manifest = append(manifest, entry)
	}
	manifestBytes, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	add("manifest.json", manifestBytes)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), ids
}

func TestLoadHandWrittenDockerArchive(t *testing.T) {
	store := openTestStore(t)
	layer := makeTar(t, rootfsEntries)
	archive, ids := writeDockerArchive(t, []handImage{{layers: [][]byte{layer}, tags: []string{"hand:1"}}})
	loaded, err := store.Load(context.Background(), bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(loaded) != 1 || loaded[0] != "docker.io/library/hand:1" {
		t.Errorf("Load returned %v", loaded)
	}
	image, err := store.LookupImage("hand:1")
	if err != nil {
		t.Fatal(err)
	}
	if image.ID != ids[0] {
		t.Errorf("ID %s, want %s", image.ID, ids[0])
	}
}

func TestLoadBadDiffIDRollsBack(t *testing.T) {
	store := openTestStore(t)
	good := makeTar(t, rootfsEntries)
	other := makeTar(t, []tarEntry{{name: "x", body: "x"}})
	archive, _ := writeDockerArchive(t, []handImage{
		{layers: [][]byte{good}, tags: []string{"good:1"}},
		{layers: [][]byte{good, other}, tags: []string{"bad:1"}, badDiffs: true},
	})
	_, err := store.Load(context.Background(), bytes.NewReader(archive))
	if !errors.Is(err, ErrCorruptArchive) {
		t.Fatalf("Load error = %v, want ErrCorruptArchive", err)
	}
	assertStoreEmpty(t, store)

	// A truncated archive fails the same way.
	valid, _ := writeDockerArchive(t, []handImage{{layers: [][]byte{good}, tags: []string{"good:1"}}})
	_, err = store.Load(context.Background(), bytes.NewReader(valid[:len(valid)/2]))
	if !errors.Is(err, ErrCorruptArchive) {
		t.Fatalf("truncated Load error = %v, want ErrCorruptArchive", err)
	}
	_, err = store.Load(context.Background(), strings.NewReader("definitely not an archive"))
	if !errors.Is(err, ErrCorruptArchive) {
		t.Fatalf("garbage Load error = %v, want ErrCorruptArchive", err)
	}
	assertStoreEmpty(t, store)
	entries, err := os.ReadDir(store.tmpDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func assertStoreEmpty(t *testing.T, store *Store) {
	t.Helper()
	layers, err := store.store.Layers()
	if err != nil {
		t.Fatal(err)
	}
	images, err := store.store.Images()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 0 || len(images) != 0 {
		t.Errorf("store not empty: %d layers, %d images", len(layers), len(images))
	}
}

func TestLoadOCIArchive(t *testing.T) {
	store := openTestStore(t)

	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, rootfsEntries))
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Cmd: []string{"/bin/hello"}})
	if err != nil {
		t.Fatal(err)
	}
	untagged, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}

	layoutDir := filepath.Join(t.TempDir(), "layout")
	layoutPath, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := layoutPath.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "example.com/oci:1",
	})); err != nil {
		t.Fatal(err)
	}
	if err := layoutPath.AppendImage(untagged); err != nil {
		t.Fatal(err)
	}
	archive := tarDirectory(t, layoutDir)

	loaded, err := store.Load(context.Background(), bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []string{"example.com/oci:1", "sha256:" + configID(t, untagged)}
	if strings.Join(loaded, " ") != strings.Join(want, " ") {
		t.Errorf("Load returned %v, want %v", loaded, want)
	}
	found, err := store.LookupImage("example.com/oci:1")
	if err != nil {
		t.Fatal(err)
	}
	if found.ID != configID(t, img) {
		t.Errorf("ID %s, want config digest %s", found.ID, configID(t, img))
	}
	manifestDigest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Digests) != 1 || found.Digests[0] != manifestDigest.String() {
		t.Errorf("Digests = %v, want [%s]", found.Digests, manifestDigest)
	}
	if byDigest, err := store.LookupImage("example.com/oci@" + manifestDigest.String()); err != nil || byDigest.ID != found.ID {
		t.Errorf("lookup by digest: %v, %v", byDigest, err)
	}
	if _, err := store.LookupImage("example.com/other@" + manifestDigest.String()); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("lookup by digest in another repository: %v", err)
	}
	if strings.Join(found.Config.Config.Cmd, " ") != "/bin/hello" {
		t.Errorf("Cmd = %v", found.Config.Config.Cmd)
	}
}

// tarDirectory archives the contents of dir.
func tarDirectory(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := entry.Info()
		if err != nil {
			return err
		}
		header, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		header.Name = filepath.ToSlash(rel)
		if entry.IsDir() {
			header.Name += "/"
		}
		if err := tw.WriteHeader(header); err != nil {
			return err
		}
		if entry.Type().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCleanArchivePath(t *testing.T) {
	for input, want := range map[string]string{
		"manifest.json":       "manifest.json",
		"./blobs/sha256/ab":   "blobs/sha256/ab",
		"a/../b":              "b",
		"/etc/passwd":         "",
		"../escape":           "",
		"blobs/../../escape":  "",
		"blobs/sha256/../x/y": "blobs/x/y",
	} {
		got, ok := cleanArchivePath(input)
		if want == "" && ok {
			t.Errorf("cleanArchivePath(%q) accepted as %q", input, got)
		}
		if want != "" && got != want {
			t.Errorf("cleanArchivePath(%q) = %q, want %q", input, got, want)
		}
	}
}

func TestLookupAmbiguousPrefix(t *testing.T) {
	store := openTestStore(t)
	layer := makeTar(t, rootfsEntries)
	// Vary the config until two image IDs share a 3-digit prefix.
	seen := map[string][]byte{}
	var archives [][]byte
	var prefix string
	for i := 0; archives == nil; i++ {
		if i > 100000 {
			t.Fatal("no prefix collision found")
		}
		archive, ids := writeDockerArchive(t, []handImage{{layers: [][]byte{layer}, env: fmt.Sprint("N=", i)}})
		if other, ok := seen[ids[0][:3]]; ok {
			archives, prefix = [][]byte{other, archive}, ids[0][:3]
		}
		seen[ids[0][:3]] = archive
	}
	for _, archive := range archives {
		if _, err := store.Load(context.Background(), bytes.NewReader(archive)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := store.LookupImage(prefix)
	if err == nil || errors.Is(err, ErrImageNotFound) || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("LookupImage(%q) error = %v, want an ambiguity error", prefix, err)
	}
}
