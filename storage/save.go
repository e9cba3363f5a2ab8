package storage

// `save`: images out of the store into an archive, the reverse of Load.
//
// Every format is an OCI image layout with uncompressed layers, so a
// layer's blob digest is its diff ID and nothing is compressed:
//
//   - docker-archive is what docker 25 and later write: the OCI layout
//     (oci-layout, index.json, blobs/sha256/…) plus manifest.json, which
//     lists each image's config and layer blobs and its RepoTags, so that
//     older docker, podman and berth's own Load read it as a docker archive;
//   - oci-archive is the OCI layout alone, in a tar;
//   - oci-dir is the OCI layout written to a directory.

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
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	cstorage "go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
)

// Save formats.
const (
	FormatDockerArchive = "docker-archive"
	FormatOCIArchive    = "oci-archive"
	FormatOCIDir        = "oci-dir"
)

// SaveFormats lists the formats Save and SaveDir accept.
var SaveFormats = []string{FormatDockerArchive, FormatOCIArchive, FormatOCIDir}

// ErrInvalidFormat is returned (wrapped) for an unknown save format.
var ErrInvalidFormat = errors.New("invalid format")

// Save writes the images named by refs to w as a tar archive in format
// (FormatDockerArchive or FormatOCIArchive). Refs are resolved as docker
// save does: "name:tag" saves that tag, a bare repository name saves every
// tag of that repository, an ID saves the image without names. Several
// refs of one image give one image with all their names.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string, format string) error {
	if format == "" {
		format = FormatDockerArchive
	}
	if format != FormatDockerArchive && format != FormatOCIArchive {
		return fmt.Errorf("%w %q for an archive: want %s or %s", ErrInvalidFormat, format, FormatDockerArchive, FormatOCIArchive)
	}
	images, err := s.resolveSaveRefs(refs)
	if err != nil {
		return err
	}
	sink := &tarSink{tw: tar.NewWriter(w), written: map[string]bool{}, mtime: time.Unix(0, 0)}
	if err := s.writeLayout(ctx, sink, images, format); err != nil {
		return err
	}
	return sink.tw.Close()
}

// SaveDir writes the images named by refs (see Save) as an OCI image
// layout into the directory dir, which must not exist or be empty.
func (s *Store) SaveDir(ctx context.Context, dir string, refs []string) error {
	images, err := s.resolveSaveRefs(refs)
	if err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	return s.writeLayout(ctx, &dirSink{dir: dir}, images, FormatOCIDir)
}

// saveImage is one image to save and the names it is saved with.
type saveImage struct {
	id    string
	names []string // full references
}

// resolveSaveRefs finds the images refs name, in the order first named.
func (s *Store) resolveSaveRefs(refs []string) ([]*saveImage, error) {
	if len(refs) == 0 {
		return nil, errors.New("no image to save")
	}
	var images []*saveImage
	byID := map[string]*saveImage{}
	add := func(id, fullName string) {
		image := byID[id]
		if image == nil {
			image = &saveImage{id: id}
			byID[id] = image
			images = append(images, image)
		}
		if fullName != "" {
			image.names = appendUnique(image.names, fullName)
		}
	}
	all, err := s.store.Images()
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	for _, ref := range refs {
		if repository, ok := repositoryOnly(ref); ok {
			found := false
			for _, image := range all {
				for _, imageName := range image.Names {
					if repo, _, isTag := splitFullName(imageName); isTag && repo == repository {
						add(image.ID, imageName)
						found = true
					}
				}
			}
			if found {
				continue
			}
		}
		image, err := s.lookupStorageImage(ref)
		if err != nil {
			return nil, err
		}
		fullName := ""
		if !strings.HasPrefix(ref, "sha256:") {
			if n, err := NormalizeName(ref); err == nil && !strings.Contains(n, "@") && containsString(image.Names, n) {
				fullName = n
			}
		}
		add(image.ID, fullName)
	}
	return images, nil
}

// repositoryOnly tells whether ref is a repository name without tag or
// digest, and returns its full repository ("docker.io/library/busybox").
func repositoryOnly(ref string) (string, bool) {
	if strings.Contains(ref, "@") || strings.HasPrefix(ref, "sha256:") {
		return "", false
	}
	if strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
		return "", false
	}
	fullName, err := NormalizeName(ref)
	if err != nil {
		return "", false
	}
	repository, _, _ := splitFullName(fullName)
	return repository, true
}

// splitFullName splits "registry/repo:tag" into repository and tag;
// isTag is false for a digest reference.
func splitFullName(fullName string) (repository, tag string, isTag bool) {
	if repo, _, ok := strings.Cut(fullName, "@"); ok {
		return repo, "", false
	}
	i := strings.LastIndex(fullName, ":")
	if i < 0 || strings.Contains(fullName[i:], "/") {
		return fullName, "", false
	}
	return fullName[:i], fullName[i+1:], true
}

// blobSink receives the files of an OCI layout.
type blobSink interface {
	// putFile writes a small file (index.json, a config, …).
	putFile(name string, data []byte) error
	// putBlob writes blobs/sha256/HEX from r, which has size bytes and
	// must hash to hex; a blob already written is skipped (r unread).
	putBlob(hex string, size int64, open func() (io.ReadCloser, error)) error
}

// writeLayout writes the blobs, index.json, oci-layout and, for a docker
// archive, manifest.json.
func (s *Store) writeLayout(ctx context.Context, sink blobSink, images []*saveImage, format string) error {
	var index v1.IndexManifest
	index.SchemaVersion = 2
	index.MediaType = types.OCIImageIndex
	type dockerEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var dockerManifest []dockerEntry
	for _, image := range images {
		if err := ctx.Err(); err != nil {
			return err
		}
		configBytes, err := s.store.ImageBigData(image.id, configKey)
		if err != nil {
			return fmt.Errorf("reading config of image %s: %w", image.id, err)
		}
		config, err := v1.ParseConfigFile(bytes.NewReader(configBytes))
		if err != nil {
			return fmt.Errorf("parsing config of image %s: %w", image.id, err)
		}
		storageImage, err := s.store.Image(image.id)
		if err != nil {
			return fmt.Errorf("reading image %s: %w", image.id, err)
		}
		chain, err := s.layerChain(storageImage)
		if err != nil {
			return err
		}
		diffIDs := config.RootFS.DiffIDs
		if len(chain) != len(diffIDs) {
			return fmt.Errorf("image %s has %d layers but its config lists %d", image.id, len(chain), len(diffIDs))
		}
		manifest := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(configBytes)), Digest: v1.Hash{Algorithm: "sha256", Hex: image.id}},
		}
		entry := dockerEntry{Config: "blobs/sha256/" + image.id, RepoTags: []string{}}
		for i, diffID := range diffIDs {
			layer, err := s.store.Layer(chain[len(chain)-1-i].id)
			if err != nil {
				return fmt.Errorf("reading layer %s: %w", diffID, err)
			}
			size, err := s.writeLayerBlob(ctx, sink, layer, diffID)
			if err != nil {
				return err
			}
			manifest.Layers = append(manifest.Layers, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: size, Digest: diffID})
			entry.Layers = append(entry.Layers, "blobs/sha256/"+diffID.Hex)
		}
		if err := putSmallBlob(sink, configBytes); err != nil {
			return err
		}
		manifestBytes, err := json.Marshal(manifest)
		if err != nil {
			return err
		}
		if err := putSmallBlob(sink, manifestBytes); err != nil {
			return err
		}
		descriptor := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(manifestBytes)), Digest: hashOf(manifestBytes)}
		tagged := false
		for _, fullName := range image.names {
			_, tag, isTag := splitFullName(fullName)
			if !isTag {
				continue
			}
			tagged = true
			d := descriptor
			d.Annotations = map[string]string{containerdImageNameAnnotion: fullName, ociRefNameAnnotation: fullName}
			if format == FormatDockerArchive {
				d.Annotations[ociRefNameAnnotation] = tag // as docker writes it
			}
			index.Manifests = append(index.Manifests, d)
			entry.RepoTags = append(entry.RepoTags, FamiliarName(fullName))
		}
		if !tagged {
			index.Manifests = append(index.Manifests, descriptor)
		}
		dockerManifest = append(dockerManifest, entry)
	}
	indexBytes, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := sink.putFile("index.json", indexBytes); err != nil {
		return err
	}
	if err := sink.putFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if format == FormatDockerArchive {
		manifestBytes, err := json.Marshal(dockerManifest)
		if err != nil {
			return err
		}
		if err := sink.putFile("manifest.json", manifestBytes); err != nil {
			return err
		}
	}
	return nil
}

// writeLayerBlob writes the uncompressed diff of layer as the blob
// diffID. c/storage rebuilds the diff from its tar-split record, byte for
// byte the stream the layer was made from; the digest is checked.
func (s *Store) writeLayerBlob(ctx context.Context, sink blobSink, layer *cstorage.Layer, diffID v1.Hash) (int64, error) {
	size := layer.UncompressedSize
	if layer.UncompressedDigest.String() != diffID.String() || size < 0 {
		return 0, fmt.Errorf("layer %s: its recorded digest %s does not match the image's diff ID %s", layer.ID, layer.UncompressedDigest, diffID)
	}
	uncompressed := archive.Uncompressed
	open := func() (io.ReadCloser, error) {
		rc, err := s.store.Diff("", layer.ID, &cstorage.DiffOptions{Compression: &uncompressed})
		if err != nil {
			return nil, fmt.Errorf("reading layer %s: %w", diffID, err)
		}
		return &ctxReadCloser{ctx: ctx, ReadCloser: rc}, nil
	}
	if err := sink.putBlob(diffID.Hex, size, open); err != nil {
		return 0, fmt.Errorf("writing layer %s: %w", diffID, err)
	}
	return size, nil
}

func putSmallBlob(sink blobSink, data []byte) error {
	h := hashOf(data)
	return sink.putBlob(h.Hex, int64(len(data)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

func hashOf(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// copyVerified copies exactly size bytes of r to w and checks that r ends
// there and that they hash to wantHex.
func copyVerified(w io.Writer, r io.Reader, size int64, wantHex string) error {
	digester := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, digester), io.LimitReader(r, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("content is %d bytes, %d expected", n, size)
	}
	if extra, _ := r.Read(make([]byte, 1)); extra > 0 {
		return fmt.Errorf("content is longer than the %d bytes expected", size)
	}
	if got := hex.EncodeToString(digester.Sum(nil)); got != wantHex {
		return fmt.Errorf("content has digest sha256:%s, sha256:%s expected", got, wantHex)
	}
	return nil
}

// tarSink writes the layout into a tar stream.
type tarSink struct {
	tw      *tar.Writer
	written map[string]bool
	dirs    bool
	mtime   time.Time
}

func (t *tarSink) header(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Size: size, Mode: 0o644, Typeflag: tar.TypeReg, ModTime: t.mtime, Format: tar.FormatPAX}
}

func (t *tarSink) mkdirs() error {
	if t.dirs {
		return nil
	}
	t.dirs = true
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := t.tw.WriteHeader(&tar.Header{Name: dir, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: t.mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	return nil
}

func (t *tarSink) putFile(name string, data []byte) error {
	if err := t.tw.WriteHeader(t.header(name, int64(len(data)))); err != nil {
		return err
	}
	_, err := t.tw.Write(data)
	return err
}

func (t *tarSink) putBlob(hex string, size int64, open func() (io.ReadCloser, error)) error {
	name := "blobs/sha256/" + hex
	if t.written[name] {
		return nil
	}
	if err := t.mkdirs(); err != nil {
		return err
	}
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	if err := t.tw.WriteHeader(t.header(name, size)); err != nil {
		return err
	}
	if err := copyVerified(t.tw, r, size, hex); err != nil {
		return err
	}
	t.written[name] = true
	return nil
}

// dirSink writes the layout into a directory.
type dirSink struct{ dir string }

func (d *dirSink) putFile(name string, data []byte) error {
	return os.WriteFile(filepath.Join(d.dir, name), data, 0o644)
}

func (d *dirSink) putBlob(hex string, size int64, open func() (io.ReadCloser, error)) error {
	target := filepath.Join(d.dir, "blobs", "sha256", hex)
	if _, err := os.Stat(target); err == nil {
		return nil
	}
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.CreateTemp(filepath.Dir(target), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := copyVerified(f, r, size, hex); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), target)
}

// ctxReadCloser stops reading when ctx is cancelled.
type ctxReadCloser struct {
	ctx context.Context
	io.ReadCloser
}

func (c *ctxReadCloser) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.ReadCloser.Read(p)
}
