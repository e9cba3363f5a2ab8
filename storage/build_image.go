package storage

// Images made by `build`: a parent image (or none, for scratch) plus a
// config and one history entry, with or without a new layer.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BuildImageOptions describes one build step's image.
type BuildImageOptions struct {
	// Parent is the image the step starts from; "" is scratch.
	Parent string
	// Config replaces the parent's config entirely.
	Config v1.Config
	// History is appended to the parent's history; EmptyLayer is set by
	// the store from whether a layer was added.
	History v1.History
	// Created is the image's creation time (zero: now).
	Created time.Time
	// Author replaces the parent's author when set (MAINTAINER).
	Author string
	// Times dates the entries of the committed layer (see LayerTimes), so
	// that the same step gives the same layer digest.
	Times LayerTimes
}

// CreateBuildImage stores an image made of the parent's layers and a new
// config: a metadata-only build step (history entry with empty_layer).
// Equal inputs give the same image ID.
func (s *Store) CreateBuildImage(o BuildImageOptions) (*Image, error) {
	return s.buildImage(context.Background(), o, "")
}

// CommitBuildContainer stores the changes of a build container's layer as
// a new layer on top of o.Parent (which must be the container's image),
// with o.Config. Unlike Commit it records no container ID, so equal
// layers and configs give equal image IDs. A container that changed
// nothing gives an empty_layer entry.
func (s *Store) CommitBuildContainer(ctx context.Context, containerID string, o BuildImageOptions) (*Image, error) {
	if containerID == "" {
		return nil, fmt.Errorf("no build container")
	}
	return s.buildImage(ctx, o, containerID)
}

func (s *Store) buildImage(ctx context.Context, o BuildImageOptions, containerID string) (*Image, error) {
	var configFile v1.ConfigFile
	topLayer := ""
	if o.Parent != "" {
		parent, err := s.store.Image(o.Parent)
		if err != nil {
			return nil, fmt.Errorf("build: parent image %s: %w", o.Parent, err)
		}
		data, err := s.store.ImageBigData(parent.ID, configKey)
		if err != nil {
			return nil, fmt.Errorf("reading config of image %s: %w", parent.ID, err)
		}
		if err := json.Unmarshal(data, &configFile); err != nil {
			return nil, fmt.Errorf("parsing config of image %s: %w", parent.ID, err)
		}
		topLayer = parent.TopLayer
	}
	var rollback rollback
	defer rollback.run(s)
	emptyLayer := true
	if containerID != "" {
		ctr, err := s.store.Container(containerID)
		if err != nil {
			return nil, fmt.Errorf("committing build container %s: %w", containerID, err)
		}
		_, skip, err := s.layerChanges(ctr.LayerID)
		if err != nil {
			return nil, fmt.Errorf("committing build container %s: %w", containerID, err)
		}
		spool, entries, err := s.spoolContainerDiff(ctx, ctr.LayerID, skip, o.Times)
		if err != nil {
			return nil, fmt.Errorf("committing build container %s: %w", containerID, err)
		}
		defer func() {
			spool.Close()
			os.Remove(spool.Name())
		}()
		if entries > 0 {
			layer, err := s.putLayer(ctx, topLayer, spool, "")
			if err != nil {
				return nil, fmt.Errorf("committing build container %s: %w", containerID, err)
			}
			rollback.layers = append(rollback.layers, layer.ID)
			layerID, err := s.reuseEqualLayer(layer)
			if err != nil {
				return nil, err
			}
			if layerID != layer.ID {
				rollback.layers = nil
				if err := s.deleteLayer(layer.ID); err != nil {
					return nil, err
				}
			}
			diffID, err := v1.NewHash(layer.UncompressedDigest.String())
			if err != nil {
				return nil, err
			}
			configFile.RootFS.DiffIDs = append(configFile.RootFS.DiffIDs, diffID)
			topLayer = layerID
			emptyLayer = false
		}
	}
	configFile.RootFS.Type = "layers"
	if configFile.RootFS.DiffIDs == nil {
		configFile.RootFS.DiffIDs = []v1.Hash{}
	}
	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC()
	configFile.Created = v1.Time{Time: created}
	configFile.Config = o.Config
	configFile.Container = ""
	if o.Author != "" {
		configFile.Author = o.Author
	}
	if configFile.OS == "" {
		configFile.OS = "linux"
	}
	if configFile.Architecture == "" {
		configFile.Architecture = runtime.GOARCH
	}
	h := o.History
	h.Created = v1.Time{Time: created}
	h.EmptyLayer = emptyLayer
	configFile.History = append(configFile.History, h)
	image, err := s.storeImage(&rollback, &configFile, topLayer, created, "")
	if err != nil {
		return nil, err
	}
	rollback.cancel()
	return image, nil
}

// EmptyImage stores (or finds) the image `FROM scratch` starts from for
// platform: no layers, no history, a fixed creation time, so its ID is
// stable.
func (s *Store) EmptyImage(platform v1.Platform) (*Image, error) {
	configFile := v1.ConfigFile{
		OS:           platform.OS,
		Architecture: platform.Architecture,
		Variant:      platform.Variant,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}},
		Created:      v1.Time{Time: time.Unix(0, 0).UTC()},
	}
	configBytes, err := json.Marshal(configFile)
	if err != nil {
		return nil, err
	}
	id, _, err := s.createImage(newImage{config: configBytes, created: time.Unix(0, 0).UTC()})
	if err != nil {
		return nil, err
	}
	return s.LookupImage(id)
}
