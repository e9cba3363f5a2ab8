package storage

// Container changes (`diff`) and images made from a container's writable
// layer (`commit`).

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	cstorage "go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
)

// Change is one entry of `diff`: Kind is "A" (added), "C" (changed) or
// "D" (deleted); Path is absolute.
type Change struct {
	Kind string
	Path string
}

func (c Change) String() string { return c.Kind + " " + c.Path }

// mountStubs are the files the engine creates as mount points in a
// container's root filesystem when the image lacks them. docker keeps
// them in a separate "init" layer, so neither `diff` nor `commit` sees
// them; berth filters them out.
var mountStubs = map[string]bool{
	"/etc/hosts":       true,
	"/etc/hostname":    true,
	"/etc/resolv.conf": true,
	"/.dockerenv":      true,
}

// ContainerChanges lists what the container's own layer added, changed
// and deleted relative to its image, sorted by path as docker does. Mount
// point stubs the engine created are left out (see mountStubs), and so is
// a directory whose only change was to receive one.
func (s *Store) ContainerChanges(containerID string) ([]Change, error) {
	ctr, err := s.store.Container(containerID)
	if err != nil {
		return nil, fmt.Errorf("reading changes of container %s: %w", containerID, err)
	}
	changes, _, err := s.layerChanges(ctr.LayerID)
	if err != nil {
		return nil, fmt.Errorf("reading changes of container %s: %w", containerID, err)
	}
	return changes, nil
}

// layerChanges returns the filtered changes of a container layer and the
// paths filterChanges left out.
func (s *Store) layerChanges(layerID string) ([]Change, map[string]bool, error) {
	raw, err := s.store.Changes("", layerID)
	if err != nil {
		return nil, nil, err
	}
	changes, skipped := filterChanges(raw)
	return changes, skipped, nil
}

// filterChanges converts, filters and sorts c/storage's changes; it also
// returns the paths it left out.
func filterChanges(raw []archive.Change) ([]Change, map[string]bool) {
	skipped := map[string]bool{}
	var kept []Change
	stubDirs := map[string]bool{}
	for _, c := range raw {
		p := path.Clean("/" + c.Path)
		if c.Kind == archive.ChangeAdd && mountStubs[p] {
			stubDirs[path.Dir(p)] = true
			skipped[p] = true
			continue
		}
		kept = append(kept, Change{Kind: c.Kind.String(), Path: p})
	}
	// A directory that changed only because a stub was created in it.
	var out []Change
	for _, c := range kept {
		if c.Kind == "C" && stubDirs[c.Path] && !hasDescendant(kept, c.Path) {
			skipped[c.Path] = true
			continue
		}
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, skipped
}

func hasDescendant(changes []Change, dir string) bool {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for _, c := range changes {
		if strings.HasPrefix(c.Path, prefix) {
			return true
		}
	}
	return false
}

// CommitOptions controls Commit.
type CommitOptions struct {
	// Ref names the new image; "" leaves it untagged.
	Ref string
	// Author and Message (the history comment) of the new image.
	Author  string
	Message string
	// Changes are Dockerfile instructions (see ApplyChanges); they take
	// precedence over ContainerConfig.
	Changes []string
	// ContainerConfig is the container's own configuration (the image's
	// merged with the run flags): it fills in whatever Changes leave
	// unset, by docker's rules.
	ContainerConfig v1.Config
	// CreatedBy is the history entry's created_by: docker records the
	// container's command joined with spaces.
	CreatedBy string
	// Created is the image's creation time (default: now).
	Created time.Time
}

// emptyTarDiffID is the digest of an empty tar stream (two zero blocks):
// docker's "empty layer".
const emptyTarDiffID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

// Commit makes an image of a container: the image the container was
// created from, plus the container's writable layer as one more layer
// (an OCI layer: whiteouts are .wh.NAME files, opaque directories
// .wh..wh..opq), with the config built from o. A container that changed
// nothing adds an empty history entry and no layer, as docker does. A
// failed call leaves no layer or image behind.
func (s *Store) Commit(ctx context.Context, containerID string, o CommitOptions) (*Image, error) {
	var fullName string
	if o.Ref != "" {
		var err error
		if fullName, err = NormalizeName(o.Ref); err != nil {
			return nil, err
		}
	}
	var userConfig v1.Config
	if err := ApplyChanges(&userConfig, o.Changes); err != nil {
		return nil, err
	}
	mergeCommitConfig(&userConfig, &o.ContainerConfig)

	ctr, err := s.store.Container(containerID)
	if err != nil {
		return nil, fmt.Errorf("committing container %s: %w", containerID, err)
	}
	parent, err := s.store.Image(ctr.ImageID)
	if err != nil {
		return nil, fmt.Errorf("committing container %s: its image %s: %w", containerID, ctr.ImageID, err)
	}
	parentConfigBytes, err := s.store.ImageBigData(parent.ID, configKey)
	if err != nil {
		return nil, fmt.Errorf("reading config of image %s: %w", parent.ID, err)
	}
	var configFile v1.ConfigFile
	if err := json.Unmarshal(parentConfigBytes, &configFile); err != nil {
		return nil, fmt.Errorf("parsing config of image %s: %w", parent.ID, err)
	}

	// The diff is spooled to a file: c/storage holds the layer store's
	// lock while the diff stream is open, and PutLayer needs it too.
	_, skip, err := s.layerChanges(ctr.LayerID)
	if err != nil {
		return nil, fmt.Errorf("committing container %s: %w", containerID, err)
	}
	spool, entries, err := s.spoolContainerDiff(ctx, ctr.LayerID, skip, LayerTimes{})
	if err != nil {
		return nil, fmt.Errorf("committing container %s: %w", containerID, err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()

	var rollback rollback
	defer rollback.run(s)

	topLayer := parent.TopLayer
	emptyLayer := entries == 0
	if !emptyLayer {
		layer, err := s.putLayer(ctx, parent.TopLayer, spool, "")
		if err != nil {
			return nil, fmt.Errorf("committing container %s: %w", containerID, err)
		}
		rollback.layers = append(rollback.layers, layer.ID)
		layerID, err := s.reuseEqualLayer(layer)
		if err != nil {
			return nil, fmt.Errorf("committing container %s: %w", containerID, err)
		}
		if layerID != layer.ID {
			rollback.layers = nil
			if err := s.deleteLayer(layer.ID); err != nil {
				return nil, err
			}
		}
		if layer.UncompressedDigest.String() == emptyTarDiffID {
			emptyLayer = true // not expected with entries > 0; kept for safety
		}
		diffID, err := v1.NewHash(layer.UncompressedDigest.String())
		if err != nil {
			return nil, fmt.Errorf("committing container %s: %w", containerID, err)
		}
		configFile.RootFS.Type = "layers"
		configFile.RootFS.DiffIDs = append(configFile.RootFS.DiffIDs, diffID)
		topLayer = layerID
	}

	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC()
	configFile.Created = v1.Time{Time: created}
	configFile.Author = o.Author
	configFile.Config = userConfig
	if configFile.OS == "" {
		configFile.OS = "linux"
	}
	if configFile.Architecture == "" {
		configFile.Architecture = runtime.GOARCH
	}
	configFile.Container = containerID
	configFile.History = append(configFile.History, v1.History{
		Created:    v1.Time{Time: created},
		CreatedBy:  o.CreatedBy,
		Author:     o.Author,
		Comment:    o.Message,
		EmptyLayer: emptyLayer,
	})
	image, err := s.storeImage(&rollback, &configFile, topLayer, created, fullName)
	if err != nil {
		return nil, err
	}
	rollback.cancel()
	return image, nil
}

// spoolContainerDiff writes the uncompressed diff of a container's layer
// against its parent to a temporary file, without the engine's mount
// point stubs and the paths in skip, and returns the file (at offset 0)
// and how many entries it holds.
func (s *Store) spoolContainerDiff(ctx context.Context, layerID string, skip map[string]bool, times LayerTimes) (*os.File, int, error) {
	if err := os.MkdirAll(s.tmpDir, 0o700); err != nil {
		return nil, 0, err
	}
	f, err := os.CreateTemp(s.tmpDir, "commit-*.tar")
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*os.File, int, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, err
	}
	uncompressed := archive.Uncompressed
	rc, err := s.store.Diff("", layerID, &cstorage.DiffOptions{Compression: &uncompressed})
	if err != nil {
		return fail(fmt.Errorf("reading the container's changes: %w", err))
	}
	entries, copyErr := copyLayerTar(ctx, f, rc, skip, times)
	closeErr := rc.Close()
	if copyErr != nil {
		return fail(fmt.Errorf("reading the container's changes: %w", copyErr))
	}
	if closeErr != nil {
		return fail(fmt.Errorf("reading the container's changes: %w", closeErr))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	return f, entries, nil
}

// LayerTimes says how the entries of a committed layer are dated. The
// zero value keeps every time as it is on disk.
type LayerTimes struct {
	// Clamp, when set (SOURCE_DATE_EPOCH), caps every entry's
	// modification time.
	Clamp time.Time
	// MadeSince, when set (the start of a build without a clamp), moves
	// every entry modified since then (to the second, as tar stores
	// times), that is made by the build itself, to DefaultLayerTime; older
	// times (a download's Last-Modified, `touch -d`) are kept.
	MadeSince time.Time
	// Keep names entries (absolute paths) whose times MadeSince leaves
	// alone: what a COPY wrote with its source's times.
	Keep map[string]bool
}

// DefaultLayerTime is the modification time of what a build makes when no
// SOURCE_DATE_EPOCH is given: the Unix epoch, as ko and kaniko use.
var DefaultLayerTime = time.Unix(0, 0).UTC()

// apply dates hdr; with either policy set, access and change times are
// dropped, so that the same content always gives the same tar.
func (t LayerTimes) apply(hdr *tar.Header) {
	switch {
	case !t.Clamp.IsZero():
		if hdr.ModTime.After(t.Clamp) {
			hdr.ModTime = t.Clamp
		}
	case !t.MadeSince.IsZero():
		if !hdr.ModTime.Before(t.MadeSince.Truncate(time.Second)) && !t.Keep[path.Clean("/"+hdr.Name)] {
			hdr.ModTime = DefaultLayerTime
		}
	default:
		return
	}
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
}

// copyLayerTar copies the tar stream r to w, leaving out empty mount point
// stubs (mountStubs) and the entries named in skip (absolute paths), and
// returns the number of entries written, with their times set as times
// says.
func copyLayerTar(ctx context.Context, w io.Writer, r io.Reader, skip map[string]bool, times LayerTimes) (int, error) {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	entries := 0
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		name := path.Clean("/" + hdr.Name)
		if mountStubs[name] && hdr.Typeflag == tar.TypeReg && hdr.Size == 0 {
			continue
		}
		if skip[name] && hdr.Typeflag == tar.TypeDir {
			continue
		}
		times.apply(hdr)
		if err := tw.WriteHeader(hdr); err != nil {
			return 0, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return 0, err
		}
		entries++
	}
	return entries, tw.Close()
}

// mergeCommitConfig fills what the user's --change instructions left
// unset from the container's config: docker's daemon/commit.go merge.
func mergeCommitConfig(user, ctr *v1.Config) {
	if user.User == "" {
		user.User = ctr.User
	}
	if len(user.ExposedPorts) == 0 {
		user.ExposedPorts = maps.Clone(ctr.ExposedPorts)
	} else {
		for port := range ctr.ExposedPorts {
			user.ExposedPorts[port] = struct{}{}
		}
	}
	if len(user.Env) == 0 {
		user.Env = slices.Clone(ctr.Env)
	} else {
		for _, kv := range ctr.Env {
			key, _, _ := strings.Cut(kv, "=")
			found := false
			for _, ukv := range user.Env {
				if ukey, _, _ := strings.Cut(ukv, "="); ukey == key {
					found = true
					break
				}
			}
			if !found {
				user.Env = append(user.Env, kv)
			}
		}
	}
	if user.Labels == nil {
		user.Labels = map[string]string{}
	}
	for k, v := range ctr.Labels {
		if _, ok := user.Labels[k]; !ok {
			user.Labels[k] = v
		}
	}
	if len(user.Labels) == 0 {
		user.Labels = nil
	}
	if len(user.Entrypoint) == 0 {
		if len(user.Cmd) == 0 {
			user.Cmd = slices.Clone(ctr.Cmd)
		}
		if user.Entrypoint == nil {
			user.Entrypoint = slices.Clone(ctr.Entrypoint)
		}
	}
	if user.Healthcheck == nil {
		user.Healthcheck = ctr.Healthcheck
	}
	if user.WorkingDir == "" {
		user.WorkingDir = ctr.WorkingDir
	}
	if len(user.Volumes) == 0 {
		user.Volumes = maps.Clone(ctr.Volumes)
	} else {
		for v := range ctr.Volumes {
			user.Volumes[v] = struct{}{}
		}
	}
	if user.StopSignal == "" {
		user.StopSignal = ctr.StopSignal
	}
	if len(user.OnBuild) == 0 {
		user.OnBuild = slices.Clone(ctr.OnBuild)
	}
	if len(user.Shell) == 0 {
		user.Shell = slices.Clone(ctr.Shell)
	}
}
