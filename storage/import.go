package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	cstorage "go.podman.io/storage"
)

// ImportOptions controls Import.
type ImportOptions struct {
	// Ref names the new image; "" leaves it untagged.
	Ref string
	// Changes are Dockerfile instructions applied to the image config
	// (see ApplyChanges).
	Changes []string
	// Message is recorded as the history comment.
	Message string
}

// Import creates a single-layer image from a root filesystem tar stream,
// which may be compressed (gzip, bzip2, xz, zstd). A stream that is not a
// valid tar fails with ErrCorruptArchive and leaves nothing behind.
func (s *Store) Import(ctx context.Context, r io.Reader, o ImportOptions) (*Image, error) {
	var fullName string
	if o.Ref != "" {
		var err error
		if fullName, err = NormalizeName(o.Ref); err != nil {
			return nil, err
		}
	}
	var config v1.Config
	if err := ApplyChanges(&config, o.Changes); err != nil {
		return nil, err
	}

	var rollback rollback
	defer rollback.run(s)

	layer, err := s.putLayer(ctx, "", r, "")
	if err != nil {
		return nil, fmt.Errorf("importing layer: %w", err)
	}
	rollback.layers = append(rollback.layers, layer.ID)
	layerID, err := s.reuseEqualLayer(layer)
	if err != nil {
		return nil, fmt.Errorf("importing layer: %w", err)
	}
	if layerID != layer.ID {
		rollback.layers = nil
		if err := s.deleteLayer(layer.ID); err != nil {
			return nil, fmt.Errorf("importing layer: %w", err)
		}
	}
	diffID, err := v1.NewHash(layer.UncompressedDigest.String())
	if err != nil {
		return nil, fmt.Errorf("importing layer: %w", err)
	}

	now := time.Now().UTC()
	configFile := v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: now},
		Config:       config,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		History: []v1.History{{
			Created:   v1.Time{Time: now},
			CreatedBy: "berth import",
			Comment:   o.Message,
		}},
	}
	image, err := s.storeImage(&rollback, &configFile, layerID, now, fullName)
	if err != nil {
		return nil, err
	}
	rollback.cancel()
	return image, nil
}

// putLayer unpacks the (possibly compressed) diff stream r into a new
// layer on top of parent. If wantDiffID is set, the uncompressed content
// must have that digest. A stream that cannot be read as a tar, or has the
// wrong digest, fails with ErrCorruptArchive; a failed call leaves no layer.
func (s *Store) putLayer(ctx context.Context, parent string, r io.Reader, wantDiffID digest.Digest) (*cstorage.Layer, error) {
	source := &sourceReader{ctx: ctx, r: r}
	layer, _, err := s.store.PutLayer("", parent, nil, "", false, nil, source)
	if err != nil {
		switch {
		case source.err != nil:
			return nil, source.err
		case isArchiveFormatError(err):
			return nil, fmt.Errorf("%w: %w", ErrCorruptArchive, err)
		default:
			return nil, err
		}
	}
	if wantDiffID != "" && layer.UncompressedDigest != wantDiffID {
		got := layer.UncompressedDigest
		if err := s.deleteLayer(layer.ID); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: layer content has digest %s, the image config says %s", ErrCorruptArchive, got, wantDiffID)
	}
	return layer, nil
}

// reuseEqualLayer returns the ID of an older layer with the same parent
// and the same content as layer, or layer.ID if there is none.
func (s *Store) reuseEqualLayer(layer *cstorage.Layer) (string, error) {
	candidates, err := s.store.LayersByUncompressedDigest(layer.UncompressedDigest)
	if err != nil && !errors.Is(err, cstorage.ErrLayerUnknown) {
		return "", err
	}
	for _, candidate := range candidates {
		if candidate.ID != layer.ID && candidate.Parent == layer.Parent {
			return candidate.ID, nil
		}
	}
	return layer.ID, nil
}

// findLayer returns an existing layer with the given parent and
// uncompressed digest, or "".
func (s *Store) findLayer(parent string, diffID digest.Digest) (string, error) {
	candidates, err := s.store.LayersByUncompressedDigest(diffID)
	if err != nil && !errors.Is(err, cstorage.ErrLayerUnknown) {
		return "", fmt.Errorf("looking up layer %s: %w", diffID, err)
	}
	for _, candidate := range candidates {
		if candidate.Parent == parent {
			return candidate.ID, nil
		}
	}
	return "", nil
}

func (s *Store) deleteLayer(id string) error {
	if err := s.store.DeleteLayer(id); err != nil && !errors.Is(err, cstorage.ErrLayerUnknown) {
		return fmt.Errorf("deleting layer %s: %w", id, err)
	}
	return nil
}

// rollback deletes what a failed Import or Load created.
type rollback struct {
	images []string
	layers []string // in creation order
}

func (r *rollback) cancel() {
	r.images = nil
	r.layers = nil
}

func (r *rollback) run(s *Store) {
	for _, id := range r.images {
		_, _ = s.store.DeleteImage(id, true)
	}
	for i := len(r.layers) - 1; i >= 0; i-- {
		_ = s.deleteLayer(r.layers[i])
	}
}

// sourceReader remembers read errors of the input stream (as opposed to
// errors in its content) and stops reading when ctx is cancelled.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = fmt.Errorf("reading input: %w", err)
	}
	return n, err
}

// isArchiveFormatError tells whether err from unpacking a layer means the
// stream itself is broken (truncated, not a tar, bad compression).
func isArchiveFormatError(err error) bool {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	message := err.Error()
	for _, symptom := range []string{
		"unexpected EOF",
		"invalid tar header",
		"archive/tar",
		"gzip: invalid",
		"flate: corrupt",
		"zstd",
		"xz:",
		"bzip2 data invalid",
		"checksum error",
	} {
		if strings.Contains(message, symptom) {
			return true
		}
	}
	return false
}
