package storage

// Image management primitives for rmi, tag and prune: the engine decides
// (it knows the containers), the store carries out.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	cstorage "go.podman.io/storage"
)

// ErrImageInUse is returned (wrapped) when an image cannot be deleted
// because a container's root filesystem is built on it.
var ErrImageInUse = errors.New("image is in use by a container")

// DeletedImage says what DeleteImage removed.
type DeletedImage struct {
	// IDs are "sha256:"+image ID, then the chain IDs of the layers that
	// went with it (top first), as docker reports them.
	IDs []string
	// Reclaimed is the uncompressed size of the removed layers.
	Reclaimed int64
}

// DeleteImage deletes the image with the full ID id, whatever its names,
// and the layers no other image uses. A container built on the image
// makes it fail with ErrImageInUse, and nothing is changed.
func (s *Store) DeleteImage(id string) (*DeletedImage, error) {
	image, err := s.store.Image(id)
	if err != nil || image.ID != id {
		return nil, fmt.Errorf("%w: %s", ErrImageNotFound, id)
	}
	chain, err := s.layerChain(image)
	if err != nil {
		return nil, err
	}
	removed, err := s.store.DeleteImage(id, true)
	if err != nil {
		if errors.Is(err, cstorage.ErrImageUsedByContainer) {
			return nil, fmt.Errorf("%w: %s", ErrImageInUse, id)
		}
		if errors.Is(err, cstorage.ErrImageUnknown) {
			return nil, fmt.Errorf("%w: %s", ErrImageNotFound, id)
		}
		return nil, fmt.Errorf("removing image %s: %w", id, err)
	}
	result := &DeletedImage{IDs: []string{"sha256:" + id}}
	gone := map[string]bool{}
	for _, layerID := range removed {
		gone[layerID] = true
	}
	for _, layer := range chain { // top first
		if gone[layer.id] {
			if layer.chainID != "" {
				result.IDs = append(result.IDs, layer.chainID)
			}
			result.Reclaimed += layer.size
		}
	}
	return result, nil
}

// chainLayer is one layer of an image, with its docker chain ID.
type chainLayer struct {
	id      string // c/storage layer ID
	chainID string // "sha256:…", "" if unknown
	size    int64
}

// layerChain lists the layers of an image from the top down.
func (s *Store) layerChain(image *cstorage.Image) ([]chainLayer, error) {
	var chain []chainLayer
	for id := image.TopLayer; id != ""; {
		layer, err := s.store.Layer(id)
		if err != nil {
			return nil, fmt.Errorf("reading layer %s of image %s: %w", id, image.ID, err)
		}
		chain = append(chain, chainLayer{id: layer.ID, size: layer.UncompressedSize})
		id = layer.Parent
		if len(chain) > 1000 {
			return nil, fmt.Errorf("image %s: layer chain too long", image.ID)
		}
	}
	// The bottom layer is the first diff ID; chain IDs build upwards.
	diffIDs := s.diffIDs(image.ID)
	if len(diffIDs) == len(chain) {
		chainIDs := ChainIDs(diffIDs)
		for i := range chain {
			chain[i].chainID = chainIDs[len(chain)-1-i]
		}
	}
	return chain, nil
}

// diffIDs returns the diff IDs of an image's config, or nil.
func (s *Store) diffIDs(id string) []string {
	configBytes, err := s.store.ImageBigData(id, configKey)
	if err != nil {
		return nil
	}
	config, err := v1.ParseConfigFile(bytes.NewReader(configBytes))
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range config.RootFS.DiffIDs {
		out = append(out, d.String())
	}
	return out
}

// ChainIDs computes the chain IDs of a stack of layers from their diff
// IDs (bottom first): the first is its diff ID, each next one is the
// sha256 of "parent-chain-ID diff-ID".
func ChainIDs(diffIDs []string) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		sum := sha256.Sum256([]byte(out[i-1] + " " + d))
		out[i] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out
}

// RemoveNames takes names (full references) away from the image id.
func (s *Store) RemoveNames(id string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if err := s.store.RemoveNames(id, names); err != nil {
		return fmt.Errorf("untagging image %s: %w", id, err)
	}
	return nil
}

// ImageNames returns the current names of the image id, sorted.
func (s *Store) ImageNames(id string) ([]string, error) {
	image, err := s.store.Image(id)
	if err != nil || image.ID != id {
		return nil, fmt.Errorf("%w: %s", ErrImageNotFound, id)
	}
	names := append([]string(nil), image.Names...)
	sort.Strings(names)
	return names, nil
}
