package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"go.podman.io/storage/pkg/archive"
)

// Annotations naming an image in an OCI archive.
const (
	ociRefNameAnnotation        = "org.opencontainers.image.ref.name"
	containerdImageNameAnnotion = "io.containerd.image.name"
)

// maxMetadataSize bounds manifests, indexes and configs read into memory.
const maxMetadataSize = 32 << 20

// Load reads an image archive, as written by `docker save` or `podman save`
// (docker-archive, possibly with several images), or an OCI image layout
// archive (oci-layout, index.json, blobs/), possibly compressed. It returns
// the names of the loaded images, or "sha256:ID" for untagged ones. If any
// layer does not match its digest, nothing is loaded and the error wraps
// ErrCorruptArchive.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]string, error) {
	archiveFile, err := s.spool(ctx, r)
	if err != nil {
		return nil, err
	}
	defer func() {
		archiveFile.Close()
		os.Remove(archiveFile.Name())
	}()

	files, err := indexTar(archiveFile)
	if err != nil {
		return nil, err
	}
	var images []loadedImage
	switch {
	case files.has("manifest.json"):
		images, err = readDockerArchive(files)
	case files.has("index.json"):
		images, err = readOCIArchive(files)
	default:
		err = fmt.Errorf("%w: neither manifest.json nor index.json found, this is not an image archive", ErrCorruptArchive)
	}
	if err != nil {
		return nil, err
	}
	return s.storeLoadedImages(ctx, images)
}

// loadedImage is an image found in an archive, not stored yet.
type loadedImage struct {
	config   []byte
	manifest []byte // nil for docker-archive
	layers   []func() (io.Reader, error)
	names    []string // full references
}

// storeLoadedImages stores images found in an archive: all of them or,
// on error, none.
func (s *Store) storeLoadedImages(ctx context.Context, images []loadedImage) ([]string, error) {
	var rollback rollback
	defer rollback.run(s)

	imageIDs := make([]string, len(images))
	for i, image := range images {
		configFile, err := v1.ParseConfigFile(bytes.NewReader(image.config))
		if err != nil {
			return nil, fmt.Errorf("%w: parsing image config: %w", ErrCorruptArchive, err)
		}
		diffIDs := configFile.RootFS.DiffIDs
		if len(diffIDs) != len(image.layers) {
			return nil, fmt.Errorf("%w: image has %d layers but its config lists %d", ErrCorruptArchive, len(image.layers), len(diffIDs))
		}
		parent := ""
		for j, openLayer := range image.layers {
			diffID, err := digest.Parse(diffIDs[j].String())
			if err != nil {
				return nil, fmt.Errorf("%w: layer %d: %w", ErrCorruptArchive, j, err)
			}
			layerID, err := s.findLayer(parent, diffID)
			if err != nil {
				return nil, err
			}
			if layerID == "" {
				content, err := openLayer()
				if err != nil {
					return nil, err
				}
				layer, err := s.putLayer(ctx, parent, content, diffID)
				if err != nil {
					return nil, fmt.Errorf("loading layer %s: %w", diffID, err)
				}
				layerID = layer.ID
				rollback.layers = append(rollback.layers, layerID)
			}
			parent = layerID
		}
		id, created, err := s.createImage(newImage{
			config:   image.config,
			topLayer: parent,
			created:  configFile.Created.Time,
			manifest: image.manifest,
		})
		if err != nil {
			return nil, err
		}
		if created {
			rollback.images = append(rollback.images, id)
		}
		imageIDs[i] = id
	}

	var loaded []string
	for i, image := range images {
		if len(image.names) == 0 {
			loaded = appendUnique(loaded, "sha256:"+imageIDs[i])
			continue
		}
		if err := s.store.AddNames(imageIDs[i], image.names); err != nil {
			return nil, fmt.Errorf("naming image %s: %w", imageIDs[i], err)
		}
		for _, name := range image.names {
			loaded = appendUnique(loaded, name)
		}
	}
	rollback.cancel()
	return loaded, nil
}

// readDockerArchive lists the images of a docker-archive.
func readDockerArchive(files *tarFiles) ([]loadedImage, error) {
	manifestBytes, err := files.readSmall("manifest.json")
	if err != nil {
		return nil, err
	}
	var manifest tarball.Manifest
	if err := json.Unmarshal(manifestBytes, &manifest); err != nil {
		return nil, fmt.Errorf("%w: parsing manifest.json: %w", ErrCorruptArchive, err)
	}
	if len(manifest) == 0 {
		return nil, fmt.Errorf("%w: manifest.json lists no images", ErrCorruptArchive)
	}
	images := make([]loadedImage, 0, len(manifest))
	for _, entry := range manifest {
		config, err := files.readSmall(entry.Config)
		if err != nil {
			return nil, err
		}
		image := loadedImage{config: config}
		for _, layerPath := range entry.Layers {
			if !files.has(layerPath) {
				return nil, fmt.Errorf("%w: layer %s is missing from the archive", ErrCorruptArchive, layerPath)
			}
			image.layers = append(image.layers, func() (io.Reader, error) { return files.open(layerPath) })
		}
		for _, tag := range entry.RepoTags {
			fullName, err := NormalizeName(tag)
			if err != nil {
				return nil, fmt.Errorf("%w: image name: %w", ErrCorruptArchive, err)
			}
			image.names = appendUnique(image.names, fullName)
		}
		images = append(images, image)
	}
	return images, nil
}

// readOCIArchive lists the images of an OCI image layout archive. An
// index entry that is itself an index (a multi-platform image) contributes
// the image for this machine's platform.
func readOCIArchive(files *tarFiles) ([]loadedImage, error) {
	indexBytes, err := files.readSmall("index.json")
	if err != nil {
		return nil, err
	}
	index, err := v1.ParseIndexManifest(bytes.NewReader(indexBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: parsing index.json: %w", ErrCorruptArchive, err)
	}
	var images []loadedImage
	for _, descriptor := range index.Manifests {
		var names []string
		if name := imageNameFromAnnotations(descriptor.Annotations); name != "" {
			fullName, err := NormalizeName(name)
			if err != nil {
				return nil, fmt.Errorf("%w: image name: %w", ErrCorruptArchive, err)
			}
			names = []string{fullName}
		}
		manifestDescriptor, err := platformManifest(files, descriptor)
		if err != nil {
			return nil, err
		}
		manifestBytes, err := files.readBlob(manifestDescriptor.Digest)
		if err != nil {
			return nil, err
		}
		manifest, err := v1.ParseManifest(bytes.NewReader(manifestBytes))
		if err != nil {
			return nil, fmt.Errorf("%w: parsing manifest %s: %w", ErrCorruptArchive, manifestDescriptor.Digest, err)
		}
		config, err := files.readBlob(manifest.Config.Digest)
		if err != nil {
			return nil, err
		}
		image := loadedImage{config: config, manifest: manifestBytes, names: names}
		for _, layer := range manifest.Layers {
			blobPath := blobPath(layer.Digest)
			if !files.has(blobPath) {
				return nil, fmt.Errorf("%w: layer %s is missing from the archive", ErrCorruptArchive, layer.Digest)
			}
			image.layers = append(image.layers, func() (io.Reader, error) { return files.open(blobPath) })
		}
		images = append(images, image)
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("%w: index.json lists no images", ErrCorruptArchive)
	}
	return images, nil
}

// imageNameFromAnnotations returns the image reference recorded in an OCI
// index entry, or "".
func imageNameFromAnnotations(annotations map[string]string) string {
	if name := annotations[containerdImageNameAnnotion]; name != "" {
		return name // docker save: full name here, only the tag in ref.name
	}
	return annotations[ociRefNameAnnotation]
}

// platformManifest resolves an index entry to an image manifest entry,
// choosing this machine's platform in nested indexes.
func platformManifest(files *tarFiles, descriptor v1.Descriptor) (v1.Descriptor, error) {
	for depth := 0; descriptor.MediaType.IsIndex(); depth++ {
		if depth > 4 {
			return v1.Descriptor{}, fmt.Errorf("%w: image indexes nested too deeply", ErrCorruptArchive)
		}
		indexBytes, err := files.readBlob(descriptor.Digest)
		if err != nil {
			return v1.Descriptor{}, err
		}
		index, err := v1.ParseIndexManifest(bytes.NewReader(indexBytes))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("%w: parsing index %s: %w", ErrCorruptArchive, descriptor.Digest, err)
		}
		found := false
		for _, child := range index.Manifests {
			if child.Platform == nil || (child.Platform.OS == "linux" && child.Platform.Architecture == runtime.GOARCH) {
				descriptor, found = child, true
				break
			}
		}
		if !found {
			return v1.Descriptor{}, fmt.Errorf("image %s has no variant for linux/%s", descriptor.Digest, runtime.GOARCH)
		}
	}
	switch descriptor.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2, "":
		return descriptor, nil
	default:
		return v1.Descriptor{}, fmt.Errorf("%w: unsupported manifest type %s", ErrCorruptArchive, descriptor.MediaType)
	}
}

func blobPath(d v1.Hash) string {
	return path.Join("blobs", d.Algorithm, d.Hex)
}

// spool copies r, decompressed, into a temporary file under the store's
// tmp directory. The caller closes and removes the file.
func (s *Store) spool(ctx context.Context, r io.Reader) (*os.File, error) {
	source := &sourceReader{ctx: ctx, r: r}
	decompressed, err := archive.DecompressStream(source)
	if err != nil {
		if source.err != nil {
			return nil, source.err
		}
		return nil, fmt.Errorf("%w: decompressing: %w", ErrCorruptArchive, err)
	}
	defer decompressed.Close()
	if err := os.MkdirAll(s.tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating temporary directory: %w", err)
	}
	file, err := os.CreateTemp(s.tmpDir, "load-*.tar")
	if err != nil {
		return nil, fmt.Errorf("creating temporary file: %w", err)
	}
	if _, err := io.Copy(file, decompressed); err != nil {
		file.Close()
		os.Remove(file.Name())
		if source.err != nil {
			return nil, source.err
		}
		return nil, fmt.Errorf("%w: decompressing: %w", ErrCorruptArchive, err)
	}
	return file, nil
}

// tarFiles gives random access to the files of a tar archive on disk.
type tarFiles struct {
	file    *os.File
	entries map[string]tarFile
}

// tarFile is a regular file, or a link to one, inside the archive.
type tarFile struct {
	offset, size int64
	symlink      string // target relative to the link's directory
	hardlink     string // target relative to the archive root
}

// indexTar records where each file of the archive is, so that files can
// be read in any order without extracting them.
func indexTar(file *os.File) (*tarFiles, error) {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	files := &tarFiles{file: file, entries: map[string]tarFile{}}
	reader := tar.NewReader(file)
	for {
		header, err := reader.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading archive: %w", ErrCorruptArchive, err)
		}
		name, ok := cleanArchivePath(header.Name)
		if !ok {
			return nil, fmt.Errorf("%w: unsafe path %q in archive", ErrCorruptArchive, header.Name)
		}
		switch header.Typeflag {
		case tar.TypeReg:
			// archive/tar reads headers block by block, without
			// read-ahead, so the file position is where the data starts.
			offset, err := file.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			files.entries[name] = tarFile{offset: offset, size: header.Size}
		case tar.TypeSymlink:
			files.entries[name] = tarFile{symlink: header.Linkname}
		case tar.TypeLink:
			files.entries[name] = tarFile{hardlink: header.Linkname}
		}
	}
	return files, nil
}

// cleanArchivePath normalizes a path inside an archive and refuses
// absolute paths and paths leaving the archive.
func cleanArchivePath(name string) (string, bool) {
	if strings.HasPrefix(name, "/") {
		return "", false
	}
	cleaned := path.Clean(name)
	if cleaned == ".." || strings.HasPrefix(cleaned, "../") {
		return "", false
	}
	return cleaned, true
}

// resolve follows links inside the archive to a regular file.
func (f *tarFiles) resolve(name string) (tarFile, error) {
	current, ok := cleanArchivePath(name)
	for hops := 0; ok && hops < 16; hops++ {
		entry, found := f.entries[current]
		if !found {
			return tarFile{}, fmt.Errorf("%w: %s is missing from the archive", ErrCorruptArchive, name)
		}
		switch {
		case entry.symlink != "":
			current, ok = cleanArchivePath(path.Join(path.Dir(current), entry.symlink))
		case entry.hardlink != "":
			current, ok = cleanArchivePath(entry.hardlink)
		default:
			return entry, nil
		}
	}
	return tarFile{}, fmt.Errorf("%w: %s is not a usable file in the archive", ErrCorruptArchive, name)
}

func (f *tarFiles) has(name string) bool {
	_, err := f.resolve(name)
	return err == nil
}

// open returns a reader over the content of a file in the archive.
func (f *tarFiles) open(name string) (io.Reader, error) {
	entry, err := f.resolve(name)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(f.file, entry.offset, entry.size), nil
}

// readSmall reads a metadata file of the archive into memory.
func (f *tarFiles) readSmall(name string) ([]byte, error) {
	entry, err := f.resolve(name)
	if err != nil {
		return nil, err
	}
	if entry.size > maxMetadataSize {
		return nil, fmt.Errorf("%w: %s is too large (%d bytes)", ErrCorruptArchive, name, entry.size)
	}
	data := make([]byte, entry.size)
	if _, err := f.file.ReadAt(data, entry.offset); err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrCorruptArchive, name, err)
	}
	return data, nil
}

// readBlob reads a metadata blob of an OCI layout and checks its digest.
func (f *tarFiles) readBlob(d v1.Hash) ([]byte, error) {
	if d.Algorithm != "sha256" {
		return nil, fmt.Errorf("%w: unsupported digest algorithm %q", ErrCorruptArchive, d.Algorithm)
	}
	data, err := f.readSmall(blobPath(d))
	if err != nil {
		return nil, err
	}
	if got := digest.FromBytes(data).String(); got != d.String() {
		return nil, fmt.Errorf("%w: blob %s has digest %s", ErrCorruptArchive, d, got)
	}
	return data, nil
}

func appendUnique(list []string, item string) []string {
	for _, existing := range list {
		if existing == item {
			return list
		}
	}
	return append(list, item)
}
