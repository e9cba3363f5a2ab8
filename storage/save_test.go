package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// loadTwoImages loads example.com/app:1 (two layers), app:2 (the same
// image) and base (its first layer) into store.
func loadTwoImages(t *testing.T, store *Store) (app, base v1.Image) {
	t.Helper()
	baseLayer := tarLayer(t, rootfsEntries)
	appLayer := tarLayer(t, []tarEntry{{name: "app/", typeflag: tar.TypeDir}, {name: "app/run", body: "app\n"}})
	app, err := mutate.AppendLayers(empty.Image, baseLayer, appLayer)
	if err != nil {
		t.Fatal(err)
	}
	base, err = mutate.AppendLayers(empty.Image, baseLayer)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	err = tarball.MultiRefWrite(map[name.Reference]v1.Image{
		mustParseRef(t, "example.com/app:1"): app,
		mustParseRef(t, "app:2"):             app,
		mustParseRef(t, "base"):              base,
	}, &archive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(context.Background(), &archive); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return app, base
}

// tarContents reads a tar into a map of file name to content.
func tarContents(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		header, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if header.Typeflag == tar.TypeReg {
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[header.Name] = body
		}
	}
}

func TestSaveDockerArchiveRoundTrip(t *testing.T) {
	store := openTestStore(t)
	app, base := loadTwoImages(t, store)

	var out bytes.Buffer
	if err := store.Save(context.Background(), &out, []string{"example.com/app:1", "base", "app:2"}, FormatDockerArchive); err != nil {
		t.Fatalf("Save: %v", err)
	}
	files := tarContents(t, out.Bytes())
	for _, want := range []string{"manifest.json", "index.json", "oci-layout"} {
		if files[want] == nil {
			t.Errorf("archive lacks %s", want)
		}
	}
	// Every blob hashes to its name: layers are uncompressed, so their
	// digests are the diff IDs.
	for fileName, body := range files {
		if hexDigest, ok := strings.CutPrefix(fileName, "blobs/sha256/"); ok && hashOf(body).Hex != hexDigest {
			t.Errorf("blob %s has digest %s", fileName, hashOf(body).Hex)
		}
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 2 {
		t.Fatalf("manifest.json lists %d images, want 2: %s", len(manifest), files["manifest.json"])
	}
	if got := strings.Join(manifest[0].RepoTags, " "); got != "example.com/app:1 app:2" {
		t.Errorf("app RepoTags %q", got)
	}
	if got := strings.Join(manifest[1].RepoTags, " "); got != "base:latest" {
		t.Errorf("base RepoTags %q", got)
	}
	if len(manifest[0].Layers) != 2 || manifest[0].Layers[0] != manifest[1].Layers[0] {
		t.Errorf("layers %v and %v: want 2, the first shared", manifest[0].Layers, manifest[1].Layers)
	}

	// go-containerregistry reads it as a docker archive, with the same
	// image digests.
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(out.Bytes())), nil }
	tag, _ := name.NewTag("example.com/app:1")
	read, err := tarball.Image(opener, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if configID(t, read) != configID(t, app) {
		t.Errorf("read back config %s, want %s", configID(t, read), configID(t, app))
	}

	// Loaded into an empty store: same IDs and names.
	other := openTestStore(t)
	loaded, err := other.Load(context.Background(), bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatalf("Load of saved archive: %v", err)
	}
	sort.Strings(loaded)
	if got := strings.Join(loaded, " "); got != "docker.io/library/app:2 docker.io/library/base:latest example.com/app:1" {
		t.Errorf("loaded %s", got)
	}
	for ref, img := range map[string]v1.Image{"example.com/app:1": app, "base": base} {
		found, err := other.LookupImage(ref)
		if err != nil {
			t.Fatal(err)
		}
		if found.ID != configID(t, img) {
			t.Errorf("%s: ID %s after the round trip, want %s", ref, found.ID, configID(t, img))
		}
	}
}

func TestSaveOCIArchiveAndDir(t *testing.T) {
	store := openTestStore(t)
	app, _ := loadTwoImages(t, store)

	var out bytes.Buffer
	if err := store.Save(context.Background(), &out, []string{"example.com/app:1"}, FormatOCIArchive); err != nil {
		t.Fatalf("Save: %v", err)
	}
	files := tarContents(t, out.Bytes())
	if files["manifest.json"] != nil {
		t.Error("an oci-archive has no manifest.json")
	}
	other := openTestStore(t)
	loaded, err := other.Load(context.Background(), bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if strings.Join(loaded, " ") != "example.com/app:1" {
		t.Errorf("loaded %v", loaded)
	}

	dir := filepath.Join(t.TempDir(), "layout")
	if err := store.SaveDir(context.Background(), dir, []string{"example.com/app:1"}); err != nil {
		t.Fatalf("SaveDir: %v", err)
	}
	// go-containerregistry's layout package reads it back.
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	indexManifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(indexManifest.Manifests) != 1 || indexManifest.Manifests[0].Annotations[ociRefNameAnnotation] != "example.com/app:1" {
		t.Fatalf("index %+v", indexManifest.Manifests)
	}
	img, err := index.Image(indexManifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if configID(t, img) != configID(t, app) {
		t.Errorf("layout image config %s, want %s", configID(t, img), configID(t, app))
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	appLayers, _ := app.Layers()
	for i, layer := range layers {
		got, _ := layer.Digest()
		want, _ := appLayers[i].DiffID()
		if got != want {
			t.Errorf("layer %d digest %s, want diff ID %s", i, got, want)
		}
	}
	// A non-empty directory is refused.
	if err := store.SaveDir(context.Background(), dir, []string{"example.com/app:1"}); err == nil {
		t.Error("SaveDir into a non-empty directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Error(err)
	}
}

func TestSaveResolvesRefsLikeDocker(t *testing.T) {
	store := openTestStore(t)
	app, base := loadTwoImages(t, store)
	saved := func(refs ...string) []*saveImage {
		t.Helper()
		images, err := store.resolveSaveRefs(refs)
		if err != nil {
			t.Fatalf("resolveSaveRefs(%v): %v", refs, err)
		}
		return images
	}
	// A bare repository: every tag of it.
	if images := saved("app"); len(images) != 1 || strings.Join(images[0].names, " ") != "docker.io/library/app:2" {
		t.Errorf("app: %+v", images[0])
	}
	// An ID: no names.
	if images := saved(configID(t, base)[:12]); len(images) != 1 || images[0].id != configID(t, base) || len(images[0].names) != 0 {
		t.Errorf("by ID: %+v", images[0])
	}
	// Two names of one image: one image with both.
	if images := saved("example.com/app:1", "app:2"); len(images) != 1 || len(images[0].names) != 2 || images[0].id != configID(t, app) {
		t.Errorf("two names: %+v", images)
	}
	if _, err := store.resolveSaveRefs([]string{"nothere:1"}); err == nil {
		t.Error("saving a missing image succeeded")
	}
	if err := store.Save(context.Background(), io.Discard, []string{"base"}, "tarball"); err == nil {
		t.Error("unknown format accepted")
	}
}
