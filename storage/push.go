package storage

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	cstorage "go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
)

// blobCacheKey is the image big-data item remembering, per diff ID, the
// compressed blobs berth pushed or pulled, so that a later push can reuse
// them without compressing again.
const blobCacheKey = "berth-blobs"

// PushOptions controls Push.
type PushOptions struct {
	Registry RegistryOptions
	Progress ProgressFunc
}

// PushResult tells what Push did.
type PushResult struct {
	Ref      string // full destination reference
	Tag      string
	Digest   string // manifest digest
	Size     int64  // manifest size
	Uploaded int    // blobs uploaded (layers and config)
	Reused   int    // layers that were already there (or mounted)
}

// pushConcurrency is how many layers upload at once (docker's default 5).
const pushConcurrency = 5

// Push uploads the image src to dest ("" is src itself). Only blobs the
// registry does not have are uploaded; layers pulled from (or pushed to)
// the same registry are mounted from their repository when possible.
func (s *Store) Push(ctx context.Context, src, dest string, o PushOptions) (*PushResult, error) {
	image, err := s.lookupStorageImage(src)
	if err != nil {
		return nil, err
	}
	if dest == "" {
		dest = src
		full, err := NormalizeName(src)
		if err != nil || !containsString(image.Names, full) {
			return nil, fmt.Errorf("%w: an image does not exist locally with the tag: %s", ErrImageNotFound, src)
		}
	}
	destName, err := NormalizeName(dest)
	if err != nil {
		return nil, err
	}
	if strings.Contains(destName, "@") {
		return nil, fmt.Errorf("cannot push to a digest reference: %s", dest)
	}
	ref, err := o.Registry.parseReference(destName)
	if err != nil {
		return nil, err
	}
	tag := ref.(name.Tag)
	repo := ref.Context()

	configBytes, err := s.store.ImageBigData(image.ID, configKey)
	if err != nil {
		return nil, fmt.Errorf("reading config of image %s: %w", image.ID, err)
	}
	configFile, err := v1.ParseConfigFile(bytes.NewReader(configBytes))
	if err != nil {
		return nil, fmt.Errorf("parsing config of image %s: %w", image.ID, err)
	}
	layers, err := s.imageLayers(image.TopLayer)
	if err != nil {
		return nil, err
	}
	diffIDs := configFile.RootFS.DiffIDs
	if len(layers) != len(diffIDs) {
		return nil, fmt.Errorf("image %s has %d layers but its config lists %d", image.ID, len(layers), len(diffIDs))
	}
	known, storedManifests := s.knownBlobs(image, diffIDs, layers)

	// Repositories of the same registry the image came from: candidates
	// for cross-repository mounts.
	var mountFrom []string
	for _, n := range image.Names {
		if registryOf(n) == registryOf(destName) {
			if r, err := o.Registry.parseReference(n); err == nil && r.Context().RepositoryStr() != repo.RepositoryStr() {
				mountFrom = appendUnique(mountFrom, r.Context().RepositoryStr())
			}
		}
	}
	scopes := []string{repo.Scope(transport.PushScope)}
	for _, from := range mountFrom {
		scopes = append(scopes, repo.Registry.Repo(from).Scope(transport.PullScope))
	}
	rt, err := o.Registry.authTransport(ctx, repo.Registry, scopes)
	if err != nil {
		return nil, pushError(repo, err)
	}
	client := &http.Client{Transport: rt}
	remoteOpts := append(o.Registry.remoteOptions(ctx), remote.WithTransport(rt))

	o.Progress.send("", "The push refers to repository ["+repo.Name()+"]", 0, 0)
	if err := os.MkdirAll(s.tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating temporary directory: %w", err)
	}

	result := &PushResult{Ref: destName, Tag: tag.TagStr()}
	descriptors := make([]v1.Descriptor, len(layers))
	errs := make([]error, len(layers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, pushConcurrency)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			d, uploaded, err := s.pushLayer(ctx, client, repo, layers[i], diffIDs[i], known[diffIDs[i]], mountFrom, remoteOpts, o.Progress)
			if err != nil {
				errs[i] = err
				cancel()
				return
			}
			descriptors[i] = d
			mu.Lock()
			if uploaded {
				result.Uploaded++
			} else {
				result.Reused++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, pushError(repo, err)
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, pushError(repo, err)
		}
	}

	// The config blob.
	configDigest := v1.Hash{Algorithm: "sha256", Hex: image.ID}
	configMediaType := types.DockerConfigJSON
	manifestBytes, manifestMediaType := reuseManifest(storedManifests, descriptors)
	if manifestBytes != nil {
		m, _ := v1.ParseManifest(bytes.NewReader(manifestBytes))
		configMediaType = m.Config.MediaType
	}
	exists, err := blobExists(ctx, client, repo, configDigest)
	if err != nil {
		return nil, pushError(repo, err)
	}
	if !exists {
		if err := remote.WriteLayer(repo, static.NewLayer(configBytes, configMediaType), remoteOpts...); err != nil {
			return nil, pushError(repo, err)
		}
		result.Uploaded++
	}

	if manifestBytes == nil {
		manifest := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.DockerManifestSchema2,
			Config:        v1.Descriptor{MediaType: configMediaType, Size: int64(len(configBytes)), Digest: configDigest},
			Layers:        descriptors,
		}
		if manifestBytes, err = json.Marshal(manifest); err != nil {
			return nil, err
		}
		manifestMediaType = types.DockerManifestSchema2
	}
	if err := remote.Put(tag, pushManifest{data: manifestBytes, mediaType: manifestMediaType}, remoteOpts...); err != nil {
		return nil, pushError(repo, err)
	}
	manifestDigest := digest.FromBytes(manifestBytes)
	result.Digest = manifestDigest.String()
	result.Size = int64(len(manifestBytes))

	// Remember the manifest (docker shows the pushed repository's digest
	// in RepoDigests) and the blobs, for the next push.
	if err := s.addManifest(image.ID, manifestBytes); err != nil {
		return nil, err
	}
	s.rememberBlobs(image.ID, diffIDs, descriptors)
	return result, nil
}

// imageLayers lists an image's layers from the bottom up.
func (s *Store) imageLayers(top string) ([]*cstorage.Layer, error) {
	var layers []*cstorage.Layer
	for id := top; id != ""; {
		layer, err := s.store.Layer(id)
		if err != nil {
			return nil, fmt.Errorf("reading layer %s: %w", id, err)
		}
		layers = append([]*cstorage.Layer{layer}, layers...)
		id = layer.Parent
	}
	return layers, nil
}

// knownBlobs gathers, per diff ID, the compressed blobs this image's
// layers are known to have been (stored manifests, c/storage's record of
// the pulled blob, berth's own cache). It also returns the stored
// manifests that describe this image.
func (s *Store) knownBlobs(image *cstorage.Image, diffIDs []v1.Hash, layers []*cstorage.Layer) (map[v1.Hash][]v1.Descriptor, [][]byte) {
	known := map[v1.Hash][]v1.Descriptor{}
	add := func(diffID v1.Hash, d v1.Descriptor) {
		for _, k := range known[diffID] {
			if k.Digest == d.Digest {
				return
			}
		}
		known[diffID] = append(known[diffID], d)
	}
	var manifests [][]byte
	for _, key := range image.BigDataNames {
		if !strings.HasPrefix(key, manifestKey) {
			continue
		}
		data, err := s.store.ImageBigData(image.ID, key)
		if err != nil {
			continue
		}
		m, err := v1.ParseManifest(bytes.NewReader(data))
		if err != nil || m.Config.Digest.Hex != image.ID || len(m.Layers) != len(diffIDs) {
			continue
		}
		manifests = append(manifests, data)
		for i, l := range m.Layers {
			add(diffIDs[i], l)
		}
	}
	if data, err := s.store.ImageBigData(image.ID, blobCacheKey); err == nil {
		var cache map[string][]v1.Descriptor
		if json.Unmarshal(data, &cache) == nil {
			for i, diffID := range diffIDs {
				for _, d := range cache[diffID.String()] {
					add(diffIDs[i], d)
				}
			}
		}
	}
	for i, layer := range layers {
		if layer.CompressedDigest == "" || layer.CompressedSize <= 0 || layer.CompressedDigest == layer.UncompressedDigest {
			continue
		}
		h, err := v1.NewHash(layer.CompressedDigest.String())
		if err != nil {
			continue
		}
		mediaType := types.DockerLayer
		if layer.CompressionType == archive.Zstd {
			mediaType = types.OCILayerZStd
		}
		add(diffIDs[i], v1.Descriptor{MediaType: mediaType, Size: layer.CompressedSize, Digest: h})
	}
	return known, manifests
}

// rememberBlobs records the pushed layer blobs on the image.
func (s *Store) rememberBlobs(id string, diffIDs []v1.Hash, descriptors []v1.Descriptor) {
	cache := map[string][]v1.Descriptor{}
	if data, err := s.store.ImageBigData(id, blobCacheKey); err == nil {
		_ = json.Unmarshal(data, &cache)
	}
	for i, diffID := range diffIDs {
		key := diffID.String()
		seen := false
		for _, d := range cache[key] {
			seen = seen || d.Digest == descriptors[i].Digest
		}
		if !seen {
			cache[key] = append(cache[key], descriptors[i])
		}
	}
	if data, err := json.Marshal(cache); err == nil {
		_ = s.store.SetImageBigData(id, blobCacheKey, data, nil)
	}
}

// reuseManifest returns a stored manifest whose layers are exactly the
// pushed ones, so that a pushed image keeps the digest it was pulled with.
func reuseManifest(stored [][]byte, layers []v1.Descriptor) ([]byte, types.MediaType) {
	for _, data := range stored {
		m, err := v1.ParseManifest(bytes.NewReader(data))
		if err != nil || len(m.Layers) != len(layers) {
			continue
		}
		same := true
		for i := range layers {
			same = same && m.Layers[i].Digest == layers[i].Digest
		}
		if same {
			mediaType := m.MediaType
			if mediaType == "" {
				mediaType = types.OCIManifestSchema1
			}
			return data, mediaType
		}
	}
	return nil, ""
}

// pushLayer makes sure the registry has a blob for one layer: a known
// blob already there, one mounted from another repository, or a freshly
// compressed upload. It reports whether it uploaded.
func (s *Store) pushLayer(ctx context.Context, client *http.Client, repo name.Repository, layer *cstorage.Layer, diffID v1.Hash, known []v1.Descriptor, mountFrom []string, opts []remote.Option, progress ProgressFunc) (v1.Descriptor, bool, error) {
	id := shortDigest(diffID.Hex)
	for _, d := range known {
		exists, err := blobExists(ctx, client, repo, d.Digest)
		if err != nil {
			return v1.Descriptor{}, false, err
		}
		if exists {
			progress.send(id, "Layer already exists", 0, 0)
			return d, false, nil
		}
	}
	for _, d := range known {
		for _, from := range mountFrom {
			if mountBlob(ctx, client, repo, d.Digest, from) {
				progress.send(id, "Mounted from "+from, 0, 0)
				return d, false, nil
			}
		}
	}

	progress.send(id, "Preparing", 0, 0)
	blob, err := s.compressLayer(ctx, layer, diffID)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	defer os.Remove(blob.path)
	d := v1.Descriptor{MediaType: types.DockerLayer, Size: blob.size, Digest: blob.digest}
	exists, err := blobExists(ctx, client, repo, d.Digest)
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	if exists {
		progress.send(id, "Layer already exists", 0, 0)
		return d, false, nil
	}
	l := &pushBlobLayer{blob: blob, id: id, progress: progress}
	if err := remote.WriteLayer(repo, l, opts...); err != nil {
		return v1.Descriptor{}, false, err
	}
	progress.send(id, "Pushed", blob.size, blob.size)
	return d, true, nil
}

// compressedBlob is a gzip-compressed layer in a temporary file.
type compressedBlob struct {
	path   string
	size   int64
	digest v1.Hash
	diffID v1.Hash
}

// compressLayer writes the layer's diff, gzip-compressed, to a temporary
// file, and checks that its uncompressed digest is the config's diff ID.
func (s *Store) compressLayer(ctx context.Context, layer *cstorage.Layer, diffID v1.Hash) (*compressedBlob, error) {
	uncompressed := archive.Uncompressed
	rc, err := s.store.Diff("", layer.ID, &cstorage.DiffOptions{Compression: &uncompressed})
	if err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", layer.ID, err)
	}
	defer rc.Close()
	file, err := os.CreateTemp(s.tmpDir, "push-*.tar.gz")
	if err != nil {
		return nil, fmt.Errorf("creating temporary file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			file.Close()
			os.Remove(file.Name())
		}
	}()
	compressedHash := sha256.New()
	counter := &pushCounter{w: io.MultiWriter(file, compressedHash)}
	gz, err := pgzip.NewWriterLevel(counter, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	uncompressedHash := sha256.New()
	if _, err := io.Copy(io.MultiWriter(gz, uncompressedHash), &sourceReader{ctx: ctx, r: rc}); err != nil {
		return nil, fmt.Errorf("compressing layer %s: %w", layer.ID, err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("compressing layer %s: %w", layer.ID, err)
	}
	if err := file.Close(); err != nil {
		return nil, err
	}
	if got := pushHashSum(uncompressedHash); got != diffID {
		return nil, fmt.Errorf("%w: layer %s has content digest %s, the image config says %s", ErrCorruptArchive, layer.ID, got, diffID)
	}
	ok = true
	return &compressedBlob{path: file.Name(), size: counter.n, digest: pushHashSum(compressedHash), diffID: diffID}, nil
}

func pushHashSum(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

type pushCounter struct {
	w io.Writer
	n int64
}

func (c *pushCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pushBlobLayer is a compressed layer blob on disk, as a v1.Layer for
// remote.WriteLayer; reading it reports upload progress.
type pushBlobLayer struct {
	blob     *compressedBlob
	id       string
	progress ProgressFunc
}

func (l *pushBlobLayer) Digest() (v1.Hash, error)            { return l.blob.digest, nil }
func (l *pushBlobLayer) DiffID() (v1.Hash, error)            { return l.blob.diffID, nil }
func (l *pushBlobLayer) Size() (int64, error)                { return l.blob.size, nil }
func (l *pushBlobLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }
func (l *pushBlobLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("not available")
}
func (l *pushBlobLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.blob.path)
	if err != nil {
		return nil, err
	}
	return &pushProgressReader{f: f, id: l.id, total: l.blob.size, progress: l.progress}, nil
}

type pushProgressReader struct {
	f        *os.File
	id       string
	done     int64
	total    int64
	progress ProgressFunc
}

func (r *pushProgressReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.done += int64(n)
	if n > 0 {
		r.progress.send(r.id, "Pushing", r.done, r.total)
	}
	return n, err
}

func (r *pushProgressReader) Close() error { return r.f.Close() }

// pushManifest is a manifest pushed as the exact bytes.
type pushManifest struct {
	data      []byte
	mediaType types.MediaType
}

func (m pushManifest) RawManifest() ([]byte, error)        { return m.data, nil }
func (m pushManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }

// blobExists asks the registry (HEAD) whether repo has the blob.
func blobExists(ctx context.Context, client *http.Client, repo name.Repository, d v1.Hash) (bool, error) {
	u := repo.Registry.Scheme() + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr() + "/blobs/" + d.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	default:
		return false, transport.CheckError(resp, http.StatusOK, http.StatusNotFound)
	}
}

// mountBlob asks the registry to mount a blob of repository from into
// repo; true when it did (201).
func mountBlob(ctx context.Context, client *http.Client, repo name.Repository, d v1.Hash, from string) bool {
	u := repo.Registry.Scheme() + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr() + "/blobs/uploads/?mount=" + d.String() + "&from=" + from
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		// An upload was started instead: cancel it.
		if loc := resp.Header.Get("Location"); loc != "" {
			if u, err := req.URL.Parse(loc); err == nil {
				if del, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.String(), nil); err == nil {
					if r, err := client.Do(del); err == nil {
						r.Body.Close()
					}
				}
			}
		}
	}
	return resp.StatusCode == http.StatusCreated
}

// pushError turns a registry error into one line, docker's way.
func pushError(repo name.Repository, err error) error {
	if errors.Is(err, ErrRegistry) || errors.Is(err, ErrCorruptArchive) || errors.Is(err, context.Canceled) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return registryErrorf("push access denied for %s: unauthorized: authentication required (berth login %s)", repo.Name(), repo.RegistryStr())
	}
	return registryErrorf("pushing to %s: %s", repo.Name(), oneLineError(err))
}
