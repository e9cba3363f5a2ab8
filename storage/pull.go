package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	cstorage "go.podman.io/storage"
)

// ProgressEvent is one step of a pull or push, as docker reports them:
// ID is a short layer digest (12 hex digits) or a tag, Status what happens
// ("Pulling fs layer", "Downloading", "Pull complete", "Already exists",
// "Pushing", "Pushed", "Layer already exists", …). Current and Total count
// bytes while data moves.
type ProgressEvent struct {
	ID             string
	Status         string
	Current, Total int64
}

// ProgressFunc receives progress events, possibly from several goroutines
// at once.
type ProgressFunc func(ProgressEvent)

func (f ProgressFunc) send(id, status string, current, total int64) {
	if f != nil {
		f(ProgressEvent{ID: id, Status: status, Current: current, Total: total})
	}
}

// PullOptions controls Pull.
type PullOptions struct {
	Registry RegistryOptions
	// Platform is "os/arch[/variant]"; "" is this machine's.
	Platform string
	Progress ProgressFunc
}

// PullResult tells what Pull did.
type PullResult struct {
	Ref      string // full reference pulled
	Digest   string // manifest (or index) digest, "sha256:…"
	UpToDate bool   // the name already referred to this image
	Image    *Image
}

// pullConcurrency is how many layers download at once (docker's default).
const pullConcurrency = 3

// Pull fetches an image from its registry into the store, and names it
// ref. Layers download in parallel and are unpacked in order while the
// later ones still download; layers already present are skipped. On any
// error nothing that the pull created is left behind.
func (s *Store) Pull(ctx context.Context, ref string, o PullOptions) (*PullResult, error) {
	fullName, err := NormalizeName(ref)
	if err != nil {
		return nil, err
	}
	platform, err := parsePlatform(o.Platform)
	if err != nil {
		return nil, err
	}
	remoteRef, err := o.Registry.parseReference(fullName)
	if err != nil {
		return nil, err
	}
	o.Progress.send(refTagOrDigest(remoteRef), "Pulling from "+remoteRef.Context().RepositoryStr(), 0, 0)

	desc, err := s.getManifest(ctx, remoteRef, o.Registry)
	if err != nil {
		return nil, pullError(remoteRef, err)
	}
	topDigest := desc.Digest.String()
	var indexBytes []byte
	var img v1.Image
	switch {
	case desc.MediaType.IsIndex():
		indexBytes = desc.Manifest
		img, err = platformImage(desc, platform)
	case desc.MediaType.IsImage():
		img, err = desc.Image()
	case desc.MediaType == types.DockerManifestSchema1 || desc.MediaType == types.DockerManifestSchema1Signed:
		err = registryErrorf("%s uses the deprecated image format schema 1, which berth does not support", ref)
	default:
		err = registryErrorf("%s: unsupported manifest type %s", ref, desc.MediaType)
	}
	if err != nil {
		return nil, pullError(remoteRef, err)
	}
	manifestBytes, err := img.RawManifest()
	if err != nil {
		return nil, pullError(remoteRef, err)
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(manifestBytes))
	if err != nil {
		return nil, registryErrorf("parsing manifest of %s: %w", ref, err)
	}
	configBytes, err := img.RawConfigFile()
	if err != nil {
		return nil, pullError(remoteRef, err)
	}
	if got := digest.FromBytes(configBytes).String(); got != manifest.Config.Digest.String() {
		return nil, fmt.Errorf("%w: image config has digest %s, the manifest says %s", ErrCorruptArchive, got, manifest.Config.Digest)
	}
	configFile, err := v1.ParseConfigFile(bytes.NewReader(configBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: parsing image config: %w", ErrCorruptArchive, err)
	}
	if len(configFile.RootFS.DiffIDs) != len(manifest.Layers) {
		return nil, fmt.Errorf("%w: manifest lists %d layers but the config %d", ErrCorruptArchive, len(manifest.Layers), len(configFile.RootFS.DiffIDs))
	}
	imageID := imageIDOf(configBytes)
	var upToDate bool
	if existing, err := s.store.Image(fullName); err == nil && existing.ID == imageID && containsString(existing.Names, fullName) {
		upToDate = true
	}

	var rollback rollback
	defer rollback.run(s)
	topLayer, err := s.pullLayers(ctx, img, manifest, configFile.RootFS.DiffIDs, o.Progress, &rollback)
	if err != nil {
		return nil, err
	}

	id, created, err := s.createImage(newImage{config: configBytes, topLayer: topLayer, created: configFile.Created.Time, manifest: manifestBytes})
	if err != nil {
		return nil, err
	}
	if created {
		rollback.images = append(rollback.images, id)
	} else if err := s.addManifest(id, manifestBytes); err != nil {
		return nil, err
	}
	if indexBytes != nil {
		if err := s.addManifest(id, indexBytes); err != nil {
			return nil, err
		}
	}
	if err := s.store.AddNames(id, []string{fullName}); err != nil {
		return nil, fmt.Errorf("naming image %s: %w", fullName, err)
	}
	image, err := s.LookupImage(id)
	if err != nil {
		return nil, err
	}
	rollback.cancel()
	return &PullResult{Ref: fullName, Digest: topDigest, UpToDate: upToDate, Image: image}, nil
}

// getManifest fetches the manifest of ref, trying the configured mirrors
// of its registry first.
func (s *Store) getManifest(ctx context.Context, ref name.Reference, o RegistryOptions) (*remote.Descriptor, error) {
	registry := canonicalRegistry(ref.Context().RegistryStr())
	for _, mirror := range o.config().Mirrors[registry] {
		mirrored, err := name.ParseReference(strings.Replace(ref.Name(), ref.Context().RegistryStr(), mirror, 1), o.nameOptions(mirror)...)
		if err != nil {
			continue
		}
		if desc, err := remote.Get(mirrored, o.remoteOptions(ctx)...); err == nil {
			return desc, nil
		}
	}
	return remote.Get(ref, o.remoteOptions(ctx)...)
}

// addManifest records one more manifest (and so its digest) on an image.
func (s *Store) addManifest(id string, manifest []byte) error {
	key := manifestKey + "-" + digest.FromBytes(manifest).String()
	if err := s.store.SetImageBigData(id, key, manifest, func(b []byte) (digest.Digest, error) { return digest.FromBytes(b), nil }); err != nil {
		return fmt.Errorf("recording manifest of image %s: %w", id, err)
	}
	return nil
}

// pullLayers makes sure every layer of the image is in the store and
// returns the top one. Layers it creates are added to rb.
func (s *Store) pullLayers(ctx context.Context, img v1.Image, manifest *v1.Manifest, diffIDs []v1.Hash, progress ProgressFunc, rb *rollback) (string, error) {
	parent := ""
	first := 0
	for ; first < len(diffIDs); first++ {
		id, err := s.findLayer(parent, digest.Digest(diffIDs[first].String()))
		if err != nil {
			return "", err
		}
		if id == "" {
			break
		}
		progress.send(shortDigest(manifest.Layers[first].Digest.Hex), "Already exists", 0, 0)
		parent = id
	}
	if first == len(diffIDs) {
		return parent, nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	missing := manifest.Layers[first:]
	spools := make([]*pullSpool, len(missing))
	for i, layer := range missing {
		if !layer.MediaType.IsDistributable() && layer.MediaType != "" {
			return "", registryErrorf("layer %s is a foreign (non-distributable) layer, which berth cannot pull", layer.Digest)
		}
		progress.send(shortDigest(layer.Digest.Hex), "Pulling fs layer", 0, 0)
		spools[i] = newPullSpool()
	}
	if err := os.MkdirAll(s.tmpDir, 0o700); err != nil {
		return "", fmt.Errorf("creating temporary directory: %w", err)
	}
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		for _, sp := range spools {
			sp.remove()
		}
	}()
	sem := make(chan struct{}, pullConcurrency)
	for i, layer := range missing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				spools[i].finish(ctx.Err())
				return
			}
			defer func() { <-sem }()
			spools[i].finish(s.download(ctx, img, layer, spools[i], progress))
		}()
	}

	for i, layer := range missing {
		id := shortDigest(layer.Digest.Hex)
		diffID := digest.Digest(diffIDs[first+i].String())
		reader := spools[i].reader()
		size := layer.Size
		created, _, err := s.store.PutLayer("", parent, nil, "", false, &cstorage.LayerOptions{OriginalDigest: digest.Digest(layer.Digest.String()), OriginalSize: &size}, reader)
		if err != nil {
			cancel() // stop the downloads; the download's own error explains more
		}
		if downloadErr := spools[i].wait(); downloadErr != nil && (err == nil || !errors.Is(downloadErr, context.Canceled)) {
			if err == nil {
				_ = s.deleteLayer(created.ID)
			}
			return "", downloadErr
		}
		if err != nil {
			if isArchiveFormatError(err) {
				return "", fmt.Errorf("%w: layer %s: %w", ErrCorruptArchive, layer.Digest, err)
			}
			return "", fmt.Errorf("storing layer %s: %w", layer.Digest, err)
		}
		rb.layers = append(rb.layers, created.ID)
		if created.UncompressedDigest != diffID {
			return "", fmt.Errorf("%w: layer %s has content digest %s, the image config says %s", ErrCorruptArchive, layer.Digest, created.UncompressedDigest, diffID)
		}
		progress.send(id, "Pull complete", 0, 0)
		spools[i].remove()
		parent = created.ID
	}
	return parent, nil
}

// download copies a layer blob into its spool file. go-containerregistry
// checks the blob's size and digest as it reads; a mismatch is an error at
// the end of the stream, before the spool is marked complete.
func (s *Store) download(ctx context.Context, img v1.Image, layer v1.Descriptor, sp *pullSpool, progress ProgressFunc) error {
	id := shortDigest(layer.Digest.Hex)
	file, err := os.CreateTemp(s.tmpDir, "pull-*.blob")
	if err != nil {
		return fmt.Errorf("creating temporary file: %w", err)
	}
	sp.setFile(file)
	l, err := img.LayerByDigest(layer.Digest)
	if err != nil {
		return registryErrorf("layer %s: %s", layer.Digest, oneLineError(err))
	}
	rc, err := l.Compressed()
	if err != nil {
		return registryErrorf("downloading layer %s: %s", layer.Digest, oneLineError(err))
	}
	defer rc.Close()
	var done int64
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := rc.Read(buf)
		if n > 0 {
			if werr := sp.write(buf[:n]); werr != nil {
				return werr
			}
			done += int64(n)
			progress.send(id, "Downloading", done, layer.Size)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if strings.Contains(err.Error(), "checksum") || strings.Contains(err.Error(), "size") {
				return fmt.Errorf("%w: layer %s: %s", ErrCorruptArchive, layer.Digest, oneLineError(err))
			}
			return registryErrorf("downloading layer %s: %s", layer.Digest, oneLineError(err))
		}
	}
	progress.send(id, "Download complete", layer.Size, layer.Size)
	return nil
}

// spool is a layer blob being downloaded to a temporary file, readable
// while it grows: a reader waits at the end of the data written so far
// until more arrives, the download fails, or it completes.
type pullSpool struct {
	mu      sync.Mutex
	cond    *sync.Cond
	file    *os.File
	written int64
	done    bool
	err     error
}

func newPullSpool() *pullSpool {
	s := &pullSpool{}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *pullSpool) setFile(f *os.File) {
	s.mu.Lock()
	s.file = f
	s.mu.Unlock()
}

func (s *pullSpool) write(p []byte) error {
	s.mu.Lock()
	f, off := s.file, s.written
	s.mu.Unlock()
	if _, err := f.WriteAt(p, off); err != nil {
		return fmt.Errorf("writing temporary file: %w", err)
	}
	s.mu.Lock()
	s.written += int64(len(p))
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

func (s *pullSpool) finish(err error) {
	s.mu.Lock()
	if !s.done {
		s.done, s.err = true, err
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

// wait blocks until the download ended and returns its error.
func (s *pullSpool) wait() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.done {
		s.cond.Wait()
	}
	return s.err
}

func (s *pullSpool) remove() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
		s.file = nil
	}
}

func (s *pullSpool) reader() io.Reader { return &pullSpoolReader{s: s} }

type pullSpoolReader struct {
	s   *pullSpool
	off int64
}

func (r *pullSpoolReader) Read(p []byte) (int, error) {
	s := r.s
	s.mu.Lock()
	for r.off >= s.written && !s.done {
		s.cond.Wait()
	}
	if r.off >= s.written {
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	f := s.file
	n := s.written - r.off
	s.mu.Unlock()
	if int64(len(p)) > n {
		p = p[:n]
	}
	m, err := f.ReadAt(p, r.off)
	r.off += int64(m)
	if err == io.EOF && m > 0 {
		err = nil
	}
	return m, err
}

// platformImage picks the image for platform from an index.
func platformImage(desc *remote.Descriptor, want v1.Platform) (v1.Image, error) {
	index, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, child := range manifest.Manifests {
		if !child.MediaType.IsImage() || child.Platform == nil {
			continue
		}
		if platformMatches(*child.Platform, want) {
			return index.Image(child.Digest)
		}
	}
	return nil, registryErrorf("no matching manifest for %s in the manifest list entries", want.String())
}

func platformMatches(have, want v1.Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	if want.Variant == "" || have.Variant == want.Variant {
		return true
	}
	return want.Architecture == "arm64" && want.Variant == "v8" && have.Variant == ""
}

// parsePlatform reads "os/arch[/variant]"; "" is this machine.
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		if runtime.GOARCH == "arm" {
			p.Variant = "v7"
		}
		return p, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func refTagOrDigest(ref name.Reference) string {
	if d, ok := ref.(name.Digest); ok {
		return d.DigestStr()
	}
	return ref.Identifier()
}

func shortDigest(hex string) string {
	if len(hex) > 12 {
		return hex[:12]
	}
	return hex
}

// pullError turns a registry error into docker's one-line messages.
func pullError(ref name.Reference, err error) error {
	if errors.Is(err, ErrRegistry) || errors.Is(err, ErrCorruptArchive) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusNotFound || hasCode(te, transport.ManifestUnknownErrorCode):
			if hasCode(te, transport.NameUnknownErrorCode) {
				return registryErrorf("pull access denied for %s, repository does not exist or may require 'berth login'", ref.Context().Name())
			}
			return registryErrorf("manifest for %s not found: manifest unknown", ref.Name())
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return registryErrorf("pull access denied for %s, repository does not exist or may require 'berth login': %s", ref.Context().Name(), oneLineError(err))
		}
	}
	return registryErrorf("pulling %s: %s", ref.Name(), oneLineError(err))
}

func hasCode(te *transport.Error, code transport.ErrorCode) bool {
	for _, d := range te.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// ParsePlatform reads "os/arch[/variant]"; "" is this machine's platform.
func ParsePlatform(s string) (v1.Platform, error) { return parsePlatform(s) }

// PlatformMatches tells whether an image made for have runs as want asks
// (a variant is compared only when both name one).
func PlatformMatches(have, want v1.Platform) bool { return platformMatches(have, want) }

// FormatPlatform writes p as "os/arch[/variant]".
func FormatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
