package storage

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testRegistry is go-containerregistry's in-memory registry on 127.0.0.1
// behind a handler that counts requests and can misbehave.
type testRegistry struct {
	server *httptest.Server
	host   string // 127.0.0.1:PORT

	mu        sync.Mutex
	blobGets  int
	blobPuts  int // finished uploads (PUT …/blobs/uploads/…)
	corrupt   string
	basicAuth string // "user:pass" required when set
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		auth, corrupt := r.basicAuth, r.corrupt
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			r.blobGets++
		}
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") {
			r.blobPuts++
		}
		r.mu.Unlock()
		if auth != "" && req.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(auth)) {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if corrupt != "" && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/blobs/"+corrupt) {
			// Serve the right length with the wrong content.
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			for i := range body {
				body[i] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(r.server.Close)
	r.host = strings.TrimPrefix(r.server.URL, "http://")
	return r
}

func (r *testRegistry) counts() (gets, puts int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGets, r.blobPuts
}

func (r *testRegistry) reset() {
	r.mu.Lock()
	r.blobGets, r.blobPuts = 0, 0
	r.mu.Unlock()
}

func testRegistryOptions(t *testing.T) RegistryOptions {
	t.Setenv(LoopbackOnlyEnv, "1")
	return RegistryOptions{AuthFile: filepath.Join(t.TempDir(), "auth.json")}
}

// randomImage is a three-layer image with this machine's platform.
func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func writeRemote(t *testing.T, ref string, img v1.Image) v1.Hash {
	t.Helper()
	if err := remote.Write(mustParseRef(t, ref), img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPullPushRoundTrip(t *testing.T) {
	reg := newTestRegistry(t)
	ro := testRegistryOptions(t)
	img := randomImage(t)
	ref := reg.host + "/test/img:1"
	manifestDigest := writeRemote(t, ref, img)
	ctx := context.Background()

	store := openTestStore(t)
	var mu sync.Mutex
	statuses := map[string]int{}
	progress := func(ev ProgressEvent) {
		mu.Lock()
		statuses[ev.Status]++
		mu.Unlock()
	}
	reg.reset()
	res, err := store.Pull(ctx, ref, PullOptions{Registry: ro, Progress: progress})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if res.Digest != manifestDigest.String() || res.UpToDate {
		t.Errorf("Pull result %+v, want digest %s, not up to date", res, manifestDigest)
	}
	if want := configID(t, img); res.Image.ID != want {
		t.Errorf("image ID %s, want config digest %s", res.Image.ID, want)
	}
	if len(res.Image.Digests) == 0 || res.Image.Digests[0] != manifestDigest.String() {
		t.Errorf("image digests %v, want %s", res.Image.Digests, manifestDigest)
	}
	if statuses["Pull complete"] != 3 {
		t.Errorf("statuses %v: want 3 Pull complete", statuses)
	}
	if gets, _ := reg.counts(); gets != 4 { // config + 3 layers
		t.Errorf("%d blob downloads, want 4", gets)
	}

	// Again: nothing is downloaded but the config.
	reg.reset()
	res, err = store.Pull(ctx, ref, PullOptions{Registry: ro})
	if err != nil {
		t.Fatalf("second Pull: %v", err)
	}
	if !res.UpToDate {
		t.Errorf("second pull not up to date")
	}
	if gets, _ := reg.counts(); gets != 1 {
		t.Errorf("second pull: %d blob downloads, want 1 (the config)", gets)
	}

	// Push to another repository: the pulled blobs are reused (mounted or
	// found), the manifest is the same bytes, so the digest is the same.
	reg.reset()
	pushed, err := store.Push(ctx, ref, reg.host+"/other/img:2", PushOptions{Registry: ro})
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if pushed.Digest != manifestDigest.String() {
		t.Errorf("pushed digest %s, want %s", pushed.Digest, manifestDigest)
	}
	if pushed.Uploaded != 0 || pushed.Reused != 3 {
		t.Errorf("push uploaded %d, reused %d; want 0 and 3", pushed.Uploaded, pushed.Reused)
	}

	// Push an imported image: its layer is compressed and uploaded once;
	// the second push uploads nothing and yields the same digest.
	imported := importTestImage(t, store, "imported:1")
	reg.reset()
	first, err := store.Push(ctx, "imported:1", reg.host+"/test/imported:1", PushOptions{Registry: ro})
	if err != nil {
		t.Fatalf("Push imported: %v", err)
	}
	if _, puts := reg.counts(); puts != 2 || first.Uploaded != 2 { // layer + config
		t.Errorf("first push: %d uploads (%d reported), want 2", puts, first.Uploaded)
	}
	reg.reset()
	second, err := store.Push(ctx, "imported:1", reg.host+"/test/imported:1", PushOptions{Registry: ro})
	if err != nil {
		t.Fatalf("second Push: %v", err)
	}
	if _, puts := reg.counts(); puts != 0 || second.Uploaded != 0 {
		t.Errorf("second push: %d uploads, want 0", puts)
	}
	if first.Digest != second.Digest {
		t.Errorf("digests differ: %s, %s", first.Digest, second.Digest)
	}

	// Pull it into an empty store: same image ID.
	other := openTestStore(t)
	back, err := other.Pull(ctx, reg.host+"/test/imported:1", PullOptions{Registry: ro})
	if err != nil {
		t.Fatalf("Pull back: %v", err)
	}
	if back.Image.ID != imported.ID || back.Digest != first.Digest {
		t.Errorf("pulled back %s (%s), want %s (%s)", back.Image.ID, back.Digest, imported.ID, first.Digest)
	}
}

func TestPullCorruptBlobLeavesNothing(t *testing.T) {
	reg := newTestRegistry(t)
	ro := testRegistryOptions(t)
	img := randomImage(t)
	ref := reg.host + "/test/corrupt:1"
	writeRemote(t, ref, img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[2].Digest()
	if err != nil {
		t.Fatal(err)
	}
	reg.corrupt = d.String()

	store := openTestStore(t)
	_, err = store.Pull(context.Background(), ref, PullOptions{Registry: ro})
	if err == nil {
		t.Fatal("Pull of a corrupt blob succeeded")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines: %q", err)
	}
	assertStoreEmpty(t, store)
	entries, _ := os.ReadDir(store.tmpDir)
	if len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestPullErrors(t *testing.T) {
	reg := newTestRegistry(t)
	ro := testRegistryOptions(t)
	store := openTestStore(t)
	ctx := context.Background()
	writeRemote(t, reg.host+"/test/x:1", randomImage(t))
	for _, ref := range []string{
		reg.host + "/test/x:nope",
		reg.host + "/test/nothere:1",
		"127.0.0.1:1/test/down:1",
		"bad::ref",
		"example.com/remote/image:1", // refused by the loopback guard
	} {
		_, err := store.Pull(ctx, ref, PullOptions{Registry: ro})
		if err == nil {
			t.Errorf("Pull %s succeeded", ref)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Pull %s: error spans lines: %q", ref, err)
		}
	}
	assertStoreEmpty(t, store)
}

func TestPullPlatformFromIndex(t *testing.T) {
	reg := newTestRegistry(t)
	ro := testRegistryOptions(t)
	amd, arm := randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	ref := mustParseRef(t, reg.host+"/test/multi:1")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	store := openTestStore(t)
	res, err := store.Pull(context.Background(), ref.String(), PullOptions{Registry: ro, Platform: "linux/arm64"})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if res.Image.ID != configID(t, arm) {
		t.Errorf("pulled %s, want the arm64 image %s", res.Image.ID, configID(t, arm))
	}
	if res.Digest != idxDigest.String() {
		t.Errorf("digest %s, want the index digest %s", res.Digest, idxDigest)
	}
	if _, err := store.Pull(context.Background(), ref.String(), PullOptions{Registry: ro, Platform: "linux/s390x"}); err == nil {
		t.Error("pull of a missing platform succeeded")
	}
}

func TestLoginLogoutAndAuthPush(t *testing.T) {
	reg := newTestRegistry(t)
	reg.basicAuth = "user:pass"
	ro := testRegistryOptions(t)
	ctx := context.Background()
	store := openTestStore(t)
	importTestImage(t, store, "local:1")
	dest := reg.host + "/test/auth:1"

	if _, err := store.Push(ctx, "local:1", dest, PushOptions{Registry: ro}); err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("push without login: %v, want an unauthorized error", err)
	}
	if _, err := Login(ctx, LoginOptions{Registry: ro, Server: reg.host, Username: "user", Password: "wrong"}); err == nil {
		t.Error("login with a wrong password succeeded")
	}
	if _, err := os.Stat(ro.AuthFile); err == nil {
		t.Error("a failed login wrote the auth file")
	}
	if _, err := Login(ctx, LoginOptions{Registry: ro, Server: reg.host, Username: "user", Password: "pass"}); err != nil {
		t.Fatalf("Login: %v", err)
	}
	data, err := os.ReadFile(ro.AuthFile)
	if err != nil || !bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString([]byte("user:pass")))) {
		t.Fatalf("auth file: %s, %v", data, err)
	}
	// Stored credentials are reused by login without -u/-p and by push.
	if _, err := Login(ctx, LoginOptions{Registry: ro, Server: reg.host}); err != nil {
		t.Errorf("Login with stored credentials: %v", err)
	}
	if _, err := store.Push(ctx, "local:1", dest, PushOptions{Registry: ro}); err != nil {
		t.Fatalf("Push after login: %v", err)
	}
	if _, removed, err := Logout(ro, reg.host); err != nil || !removed {
		t.Fatalf("Logout: %v, removed %v", err, removed)
	}
	if _, removed, _ := Logout(ro, reg.host); removed {
		t.Error("second logout removed something")
	}
	if _, err := store.Pull(ctx, dest, PullOptions{Registry: ro}); err == nil {
		t.Error("pull after logout succeeded")
	}
}

func TestAuthFileLookup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	content := `{"auths":{"https://index.docker.io/v1/":{"auth":"` + enc("hub:secret") + `"},` +
		`"http://reg.example:5000":{"auth":"` + enc("a:b") + `"},` +
		`"reg.example:5000/team/app":{"auth":"` + enc("team:tok") + `"}},"detachKeys":"ctrl-x"}`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := RegistryOptions{AuthFile: path}.keychain()
	check := func(resource string, want string) {
		t.Helper()
		var res interface {
			String() string
			RegistryStr() string
		}
		if strings.Contains(resource, "/") {
			res, _ = name.NewRepository(resource)
		} else {
			res, _ = name.NewRegistry(resource)
		}
		auth, err := kc.Resolve(res)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := auth.Authorization()
		if got := c.Username + ":" + c.Password; got != want {
			t.Errorf("%s: got %q, want %q", resource, got, want)
		}
	}
	check("index.docker.io", "hub:secret")
	check("reg.example:5000", "a:b")
	check("reg.example:5000/team/app", "team:tok")
	check("reg.example:5000/other/app", "a:b")
	check("unknown.example", ":")

	// Logout keeps other settings of the file.
	if _, removed, err := Logout(RegistryOptions{AuthFile: path}, "reg.example:5000"); err != nil || !removed {
		t.Fatalf("Logout: %v %v", removed, err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "detachKeys") || strings.Contains(string(data), "reg.example") {
		t.Errorf("after logout: %s", data)
	}
}

func TestRegistriesConfig(t *testing.T) {
	dir := t.TempDir()
	toml := filepath.Join(dir, "registries.conf")
	os.WriteFile(toml, []byte("insecure = [\"myreg:5000\"]\nsearch = [\"quay.io\"]\n[mirrors]\n\"docker.io\" = [\"127.0.0.1:5000\"]\n"), 0o644)
	c, err := LoadRegistriesConfig(filepath.Join(dir, "missing.conf"), toml)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Insecure) != 1 || c.Search[0] != "quay.io" || c.Mirrors["docker.io"][0] != "127.0.0.1:5000" {
		t.Errorf("parsed %+v", c)
	}
	if !(RegistryOptions{Config: c}).insecure("myreg:5000") || (RegistryOptions{Config: c}).insecure("other:5000") {
		t.Error("insecure registries misread")
	}
	json := filepath.Join(dir, "registries.json")
	os.WriteFile(json, []byte(`{"insecure":["a:1"]}`), 0o644)
	if c, err := LoadRegistriesConfig(json); err != nil || c.Insecure[0] != "a:1" {
		t.Errorf("JSON config: %+v %v", c, err)
	}
}

func TestSearchCatalog(t *testing.T) {
	reg := newTestRegistry(t)
	ro := testRegistryOptions(t)
	writeRemote(t, reg.host+"/library/busybox:1", randomImage(t))
	writeRemote(t, reg.host+"/team/alpine:1", randomImage(t))
	results, err := Search(context.Background(), reg.host+"/busy", SearchOptions{Registry: ro})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Name != reg.host+"/library/busybox" {
		t.Errorf("results %+v", results)
	}
}
