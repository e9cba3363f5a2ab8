package engine

// The primitives `build` (package build) runs a Dockerfile with: one
// build container per RUN or COPY step, committed as the next image;
// metadata-only images; the step cache index.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/storage"
)

// BuildStep is one step of a build that makes a new image.
type BuildStep struct {
	// Parent is the image the step starts from (an ID).
	Parent string
	// Config is the new image's config.
	Config v1.Config
	// CreatedBy is the history entry's created_by.
	CreatedBy string
	// Created is the image's creation time (zero: now).
	Created time.Time
	// Author replaces the parent's author when set (MAINTAINER).
	Author string
	// Times dates the entries of the step's layer.
	Times storage.LayerTimes
}

// BuildRunOptions is a RUN step: Argv runs in a container of the parent
// image with Env (the image's env plus build args), User and WorkingDir.
type BuildRunOptions struct {
	Argv       []string
	Env        []string
	User       string
	WorkingDir string
	// Network is "none" (default) or "host".
	Network        string
	Stdout, Stderr io.Writer
}

// BuildStepError is a RUN step whose command failed.
type BuildStepError struct {
	Code int
	Cmd  string
}

func (e *BuildStepError) Error() string {
	return fmt.Sprintf("The command '%s' returned a non-zero code: %d", e.Cmd, e.Code)
}

// BuildImage resolves a build's base image, pulling it when pull is
// "missing" or "always" (see --pull) and it is not local. A pull picks
// platform ("os/arch[/variant]", "" for any) from a multi-platform image.
func (e *Engine) BuildImage(ctx context.Context, ref, pull, platform string) (*storage.Image, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return e.imageForCreate(ctx, images, ref, pull, platform)
}

// BuildScratch returns the empty image `FROM scratch` starts from, made
// for platform.
func (e *Engine) BuildScratch(platform v1.Platform) (*storage.Image, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return images.EmptyImage(platform)
}

// BuildMeta stores a metadata-only step: the parent's layers, a new
// config, and a history entry with empty_layer.
func (e *Engine) BuildMeta(s BuildStep) (*storage.Image, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return images.CreateBuildImage(storage.BuildImageOptions{
		Parent: s.Parent, Config: s.Config, Created: s.Created, Author: s.Author,
		History: v1.History{CreatedBy: s.CreatedBy},
	})
}

// buildContainer creates a build container of s.Parent; the caller
// removes it.
func (e *Engine) buildContainer(ctx context.Context, s BuildStep, o BuildRunOptions) (*state.Record, error) {
	argv := o.Argv
	if len(argv) == 0 {
		argv = []string{"/nonexistent-build-step"} // never started (COPY)
	}
	network := o.Network
	if network == "" {
		network = "none"
	}
	cfg := &container.Config{
		Image:      s.Parent,
		Entrypoint: []string{""},
		Cmd:        argv,
		Env:        o.Env,
		User:       o.User,
		WorkingDir: o.WorkingDir,
		Labels:     map[string]string{"berth.build": "1"},
	}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(network)}
	return e.Create(ctx, CreateOptions{Config: cfg, HostConfig: hc})
}

// BuildRun runs a RUN step and commits the container's changes as the
// next image. The build container is always removed. A command that
// exits non-zero is a *BuildStepError.
func (e *Engine) BuildRun(ctx context.Context, s BuildStep, o BuildRunOptions) (*storage.Image, error) {
	rec, err := e.buildContainer(ctx, s, o)
	if err != nil {
		return nil, err
	}
	defer e.removeBuildContainer(rec.ID)
	streams := &Streams{Stdin: strings.NewReader(""), Stdout: o.Stdout, Stderr: o.Stderr}
	code, err := e.start(rec, false, streams, "", nil)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, &BuildStepError{Code: code, Cmd: strings.Join(o.Argv, " ")}
	}
	return e.commitBuild(ctx, rec.ID, s)
}

// BuildCopy extracts the tar archive content at / of a build container of
// s.Parent (missing parent directories are made 0755 root; symlinks are
// resolved inside the container, as for `cp`) and commits the result.
// With keepOwners the archive's uid/gid are kept, else files belong to
// root.
// content is called with a function that describes a path of the
// container (for COPY's "is the destination a directory" rule).
func (e *Engine) BuildCopy(ctx context.Context, s BuildStep, content func(stat func(string) (PathStat, error)) (io.Reader, error), keepOwners bool) (*storage.Image, error) {
	rec, err := e.buildContainer(ctx, s, BuildRunOptions{})
	if err != nil {
		return nil, err
	}
	defer e.removeBuildContainer(rec.ID)
	r, err := content(func(p string) (PathStat, error) { return e.ContainerStatPath(ctx, rec.ID, p) })
	if err != nil {
		return nil, err
	}
	if err := e.CopyToContainer(ctx, rec.ID, "/", r, CopyOptions{CopyUIDGID: keepOwners}); err != nil {
		return nil, err
	}
	return e.commitBuild(ctx, rec.ID, s)
}

// BuildReadFrom streams srcPath of image imageID as a tar archive (as
// CopyFromContainer does), for COPY --from. The caller closes the stream;
// cleanup then removes the temporary container.
func (e *Engine) BuildReadFrom(ctx context.Context, imageID, srcPath string, follow bool) (io.ReadCloser, PathStat, func(), error) {
	rec, err := e.buildContainer(ctx, BuildStep{Parent: imageID}, BuildRunOptions{})
	if err != nil {
		return nil, PathStat{}, nil, err
	}
	cleanup := func() { e.removeBuildContainer(rec.ID) }
	rc, st, err := e.CopyFromContainer(ctx, rec.ID, srcPath, CopyOptions{FollowLink: follow})
	if err != nil {
		cleanup()
		return nil, PathStat{}, nil, err
	}
	return rc, st, cleanup, nil
}

func (e *Engine) commitBuild(ctx context.Context, id string, s BuildStep) (*storage.Image, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return images.CommitBuildContainer(ctx, id, storage.BuildImageOptions{
		Parent: s.Parent, Config: s.Config, Created: s.Created, Author: s.Author,
		History: v1.History{CreatedBy: s.CreatedBy},
		Times:   s.Times,
	})
}

func (e *Engine) removeBuildContainer(id string) {
	if err := e.Remove(context.Background(), id, RemoveOptions{Force: true, Volumes: true}); err != nil && !errors.Is(err, state.ErrNoSuchContainer) {
		fmt.Fprintf(os.Stderr, "warning: removing build container %s: %v\n", id[:12], err)
	}
}

// TagImage names an image.
func (e *Engine) TagImage(id, ref string) error {
	images, err := e.Images()
	if err != nil {
		return err
	}
	return images.Tag(id, ref)
}

func (e *Engine) buildCachePath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(e.cfg.Root, "build-cache", hex.EncodeToString(sum[:]))
}

// BuildCacheGet returns the image a step with this cache key made
// before, if it still exists.
func (e *Engine) BuildCacheGet(key string) (*storage.Image, bool) {
	data, err := os.ReadFile(e.buildCachePath(key))
	if err != nil {
		return nil, false
	}
	images, err := e.Images()
	if err != nil {
		return nil, false
	}
	img, err := images.LookupImage(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, false
	}
	return img, true
}

// BuildCachePut records the image a step made (atomic write).
func (e *Engine) BuildCachePut(key, imageID string) error {
	p := e.buildCachePath(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return state.WriteFileAtomic(p, []byte(imageID+"\n"), 0o600)
}
