package engine

// Layers of containers and images: diff, commit, history.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/storage"
)

// ContainerDiff lists what a container (running or not) added, changed
// and deleted in its root filesystem relative to its image, by path.
// c/storage reads the layer's own directory: nothing is mounted.
func (e *Engine) ContainerDiff(ctx context.Context, ref string) ([]storage.Change, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return nil, err
	}
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return images.ContainerChanges(id)
}

// CommitOptions is `commit`.
type CommitOptions struct {
	Ref     string
	Author  string
	Message string
	Changes []string
	// Pause freezes a running container while its layer is read.
	Pause bool
}

// Commit makes an image of a container's root filesystem and config (see
// storage.Store.Commit).
func (e *Engine) Commit(ctx context.Context, ref string, o CommitOptions) (*storage.Image, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return nil, err
	}
	if o.Ref != "" {
		fullName, err := storage.NormalizeName(o.Ref)
		if err != nil {
			return nil, invalidf("%v", err)
		}
		if strings.Contains(fullName, "@") {
			return nil, invalidf("refusing to create a tag with a digest reference")
		}
	}
	var probe v1.Config
	if err := storage.ApplyChanges(&probe, o.Changes); err != nil {
		return nil, invalidf("%v", err)
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return nil, err
	}
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	st, err := e.State(id)
	if err != nil {
		return nil, err
	}
	// Rootless, there is no freezer: commit unpaused, as podman does.
	if o.Pause && st.Status == state.StatusRunning && !oci.CgroupsDisabled() {
		if err := e.Pause(ctx, id); err != nil && !errors.Is(err, ErrNotRunning) {
			return nil, fmt.Errorf("pausing container %s for commit: %w", ref, err)
		} else if err == nil {
			defer e.Unpause(context.WithoutCancel(ctx), id)
		}
	}
	cfg := containerImageConfig(rec, images)
	return images.Commit(ctx, id, storage.CommitOptions{
		Ref:             o.Ref,
		Author:          o.Author,
		Message:         o.Message,
		Changes:         o.Changes,
		ContainerConfig: cfg,
		CreatedBy:       strings.Join(rec.Config.Cmd, " "),
	})
}

// containerImageConfig is the container's config in image config form:
// what a committed image inherits. Ports and volumes the container's
// image declared are kept, as docker's container config has them.
func containerImageConfig(rec *state.Record, images *storage.Store) v1.Config {
	c := rec.Config
	cfg := v1.Config{
		User:       c.User,
		Env:        append([]string(nil), c.Env...),
		Entrypoint: append([]string(nil), c.Entrypoint...),
		Cmd:        append([]string(nil), c.Cmd...),
		WorkingDir: c.WorkingDir,
		Labels:     maps.Clone(c.Labels),
		StopSignal: c.StopSignal,
		OnBuild:    append([]string(nil), c.OnBuild...),
		Shell:      append([]string(nil), c.Shell...),
	}
	if h := c.Healthcheck; h != nil { // merged with the image's at create
		cfg.Healthcheck = &v1.HealthConfig{Test: append([]string(nil), h.Test...), Interval: h.Interval,
			Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	if img, err := images.LookupImage(rec.ImageID); err == nil {
		ic := img.Config.Config
		cfg.ExposedPorts = maps.Clone(ic.ExposedPorts)
		cfg.Volumes = maps.Clone(ic.Volumes)
		if cfg.Healthcheck == nil {
			cfg.Healthcheck = ic.Healthcheck
		}
	}
	for port := range c.ExposedPorts {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		cfg.ExposedPorts[port.String()] = struct{}{}
	}
	for v := range c.Volumes {
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		cfg.Volumes[v] = struct{}{}
	}
	if len(cfg.Labels) == 0 {
		cfg.Labels = nil
	}
	return cfg
}

// ImageHistory lists an image's history entries, newest first.
func (e *Engine) ImageHistory(ctx context.Context, ref string) ([]storage.HistoryEntry, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return images.History(ref)
}
