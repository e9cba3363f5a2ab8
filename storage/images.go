package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	cstorage "go.podman.io/storage"
)

// configKey is the c/storage big-data key holding an image's config JSON.
const configKey = "config"

// manifestKey is the c/storage big-data key holding an image's manifest,
// when one is known. c/storage records its digest in Image.Digests.
const manifestKey = "manifest"

// minIDPrefix is the shortest ID prefix LookupImage accepts.
const minIDPrefix = 3

// Image describes a stored image.
type Image struct {
	ID       string   // hex sha256 of the config JSON (docker image ID, no "sha256:")
	Names    []string // full refs: "docker.io/library/busybox:latest"
	Digests  []string // manifest digests "sha256:…" when known
	Created  time.Time
	Size     int64          // sum of uncompressed layer sizes
	Config   *v1.ConfigFile // parsed config
	TopLayer string         // c/storage layer id
}

// LookupImage finds an image by name ("busybox", "busybox:1",
// "docker.io/library/busybox:latest"), full ID, "sha256:"+ID, or a unique
// ID prefix of at least 3 hex digits (optionally after "sha256:").
func (s *Store) LookupImage(nameOrID string) (*Image, error) {
	image, err := s.lookupStorageImage(nameOrID)
	if err != nil {
		return nil, err
	}
	layerSizes, err := s.layerSizes()
	if err != nil {
		return nil, err
	}
	return s.describeImage(image, layerSizes)
}

// lookupStorageImage resolves nameOrID to a c/storage image record.
func (s *Store) lookupStorageImage(nameOrID string) (*cstorage.Image, error) {
	notFound := fmt.Errorf("%w: %s", ErrImageNotFound, nameOrID)
	if nameOrID == "" {
		return nil, notFound
	}
	idPart, hasIDPrefix := strings.CutPrefix(nameOrID, "sha256:")
	if isHex(idPart) && len(idPart) == 64 {
		image, err := s.store.Image(idPart)
		if err == nil && image.ID == idPart {
			return image, nil
		}
		if err != nil && !errors.Is(err, cstorage.ErrImageUnknown) {
			return nil, fmt.Errorf("looking up image %s: %w", nameOrID, err)
		}
	}
	if !hasIDPrefix {
		if fullName, err := NormalizeName(nameOrID); err == nil {
			if repository, manifestDigest, isDigest := strings.Cut(fullName, "@"); isDigest {
				return s.lookupByDigest(nameOrID, repository, manifestDigest)
			}
			image, err := s.store.Image(fullName)
			if err == nil && containsString(image.Names, fullName) {
				return image, nil
			}
			if err != nil && !errors.Is(err, cstorage.ErrImageUnknown) {
				return nil, fmt.Errorf("looking up image %s: %w", nameOrID, err)
			}
		}
	}
	if !isHex(idPart) || len(idPart) < minIDPrefix {
		return nil, notFound
	}
	images, err := s.store.Images()
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	var match *cstorage.Image
	for i := range images {
		if !strings.HasPrefix(images[i].ID, idPart) {
			continue
		}
		if match != nil {
			return nil, fmt.Errorf("image ID prefix %s is ambiguous: it matches %s and %s", idPart, match.ID, images[i].ID)
		}
		match = &images[i]
	}
	if match == nil {
		return nil, notFound
	}
	return match, nil
}

// lookupByDigest finds the image of repository whose manifest has the
// given digest ("busybox@sha256:…").
func (s *Store) lookupByDigest(nameOrID, repository, manifestDigest string) (*cstorage.Image, error) {
	d, err := digest.Parse(manifestDigest)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrImageNotFound, nameOrID)
	}
	images, err := s.store.ImagesByDigest(d)
	if err != nil && !errors.Is(err, cstorage.ErrImageUnknown) {
		return nil, fmt.Errorf("looking up image %s: %w", nameOrID, err)
	}
	for _, image := range images {
		for _, imageName := range image.Names {
			if strings.HasPrefix(imageName, repository+":") || strings.HasPrefix(imageName, repository+"@") {
				return image, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrImageNotFound, nameOrID)
}

// Images lists all images, newest first.
func (s *Store) Images() ([]*Image, error) {
	images, err := s.store.Images()
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	layerSizes, err := s.layerSizes()
	if err != nil {
		return nil, err
	}
	result := make([]*Image, 0, len(images))
	for i := range images {
		image, err := s.describeImage(&images[i], layerSizes)
		if err != nil {
			if errors.Is(err, cstorage.ErrImageUnknown) {
				continue // removed while we were listing
			}
			return nil, err
		}
		result = append(result, image)
	}
	sort.SliceStable(result, func(i, j int) bool { return result[i].Created.After(result[j].Created) })
	return result, nil
}

// layerInfo is what image listing needs to know about a layer.
type layerInfo struct {
	parent string
	size   int64
}

// layerSizes maps every layer ID to its parent and uncompressed size.
func (s *Store) layerSizes() (map[string]layerInfo, error) {
	layers, err := s.store.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	sizes := make(map[string]layerInfo, len(layers))
	for _, layer := range layers {
		sizes[layer.ID] = layerInfo{parent: layer.Parent, size: layer.UncompressedSize}
	}
	return sizes, nil
}

// describeImage builds an Image from a c/storage image record.
func (s *Store) describeImage(image *cstorage.Image, layers map[string]layerInfo) (*Image, error) {
	configBytes, err := s.store.ImageBigData(image.ID, configKey)
	if err != nil {
		return nil, fmt.Errorf("reading config of image %s: %w", image.ID, err)
	}
	config, err := v1.ParseConfigFile(bytes.NewReader(configBytes))
	if err != nil {
		return nil, fmt.Errorf("parsing config of image %s: %w", image.ID, err)
	}
	var size int64
	for id := image.TopLayer; id != ""; id = layers[id].parent {
		size += layers[id].size
	}
	created := config.Created.Time
	if created.IsZero() {
		created = image.Created
	}
	var digests []string
	for _, d := range image.Digests {
		digests = append(digests, d.String())
	}
	return &Image{
		ID:       image.ID,
		Names:    append([]string(nil), image.Names...),
		Digests:  digests,
		Created:  created,
		Size:     size,
		Config:   config,
		TopLayer: image.TopLayer,
	}, nil
}

// RemoveImage deletes an image (found like LookupImage does) and the
// layers only it used. It fails if a container still uses the image.
func (s *Store) RemoveImage(nameOrID string) error {
	image, err := s.lookupStorageImage(nameOrID)
	if err != nil {
		return err
	}
	if _, err := s.store.DeleteImage(image.ID, true); err != nil {
		return fmt.Errorf("removing image %s: %w", image.ID, err)
	}
	return nil
}

// Tag adds the name ref to an image, taking it away from any other image
// that had it.
func (s *Store) Tag(nameOrID, ref string) error {
	fullName, err := NormalizeName(ref)
	if err != nil {
		return err
	}
	image, err := s.lookupStorageImage(nameOrID)
	if err != nil {
		return err
	}
	if err := s.store.AddNames(image.ID, []string{fullName}); err != nil {
		return fmt.Errorf("tagging image %s as %s: %w", image.ID, fullName, err)
	}
	return nil
}

// Untag removes the name ref from whichever image has it.
func (s *Store) Untag(ref string) error {
	fullName, err := NormalizeName(ref)
	if err != nil {
		return err
	}
	image, err := s.store.Image(fullName)
	if err != nil || !containsString(image.Names, fullName) {
		return fmt.Errorf("%w: %s", ErrImageNotFound, ref)
	}
	if err := s.store.RemoveNames(image.ID, []string{fullName}); err != nil {
		return fmt.Errorf("untagging %s: %w", fullName, err)
	}
	return nil
}

// newImage describes an image about to be stored.
type newImage struct {
	config   []byte // exact config JSON; the image ID is its sha256
	topLayer string
	created  time.Time
	manifest []byte // optional
}

// createImage stores an image record without names. It returns the image
// ID and whether the record is new (false: an identical image existed).
func (s *Store) createImage(n newImage) (id string, created bool, err error) {
	id = imageIDOf(n.config)
	if existing, err := s.store.Image(id); err == nil && existing.ID == id {
		return id, false, nil
	}
	options := &cstorage.ImageOptions{
		CreationDate: n.created,
		BigData: []cstorage.ImageBigDataOption{
			{Key: configKey, Data: n.config, Digest: digest.FromBytes(n.config)},
		},
	}
	if len(n.manifest) > 0 {
		manifestDigest := digest.FromBytes(n.manifest)
		options.BigData = append(options.BigData, cstorage.ImageBigDataOption{Key: manifestKey, Data: n.manifest, Digest: manifestDigest})
		options.Digests = []digest.Digest{manifestDigest}
	}
	if _, err := s.store.CreateImage(id, nil, n.topLayer, "", options); err != nil {
		if errors.Is(err, cstorage.ErrDuplicateID) {
			return id, false, nil
		}
		return "", false, fmt.Errorf("creating image %s: %w", id, err)
	}
	return id, true, nil
}

// imageIDOf returns the image ID for config JSON bytes.
// storeImage writes an image made of configFile over topLayer, names it
// fullName if given, and returns it. What it creates is added to rb, which
// the caller cancels once all went well.
func (s *Store) storeImage(rb *rollback, configFile *v1.ConfigFile, topLayer string, created time.Time, fullName string) (*Image, error) {
	configBytes, err := json.Marshal(configFile)
	if err != nil {
		return nil, fmt.Errorf("encoding image config: %w", err)
	}
	imageID, isNew, err := s.createImage(newImage{config: configBytes, topLayer: topLayer, created: created})
	if err != nil {
		return nil, err
	}
	if isNew {
		rb.images = append(rb.images, imageID)
	}
	if fullName != "" {
		if err := s.store.AddNames(imageID, []string{fullName}); err != nil {
			return nil, fmt.Errorf("naming image %s: %w", fullName, err)
		}
	}
	return s.LookupImage(imageID)
}

func imageIDOf(config []byte) string {
	sum := sha256.Sum256(config)
	return hex.EncodeToString(sum[:])
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}
