package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/berth-dev/berth/storage"
)

// RegistryOptions are the flags every registry command shares.
type RegistryOptions struct {
	TLSVerify *bool  // nil: default (see storage.RegistryOptions)
	AuthFile  string // --authfile
}

// PullOptions is `pull`.
type PullOptions struct {
	RegistryOptions
	Platform string
	Progress storage.ProgressFunc
}

// PushOptions is `push`.
type PushOptions struct {
	RegistryOptions
	Progress storage.ProgressFunc
}

// LoginOptions is `login`.
type LoginOptions struct {
	RegistryOptions
	Server, Username, Password string
}

// SearchOptions is `search`.
type SearchOptions struct {
	RegistryOptions
	Limit int
}

// RegistriesConfigPaths lists where registries.conf is looked for, first
// found wins: $BERTH_REGISTRIES_CONF, ROOT/registries.conf, the file next
// to ROOT, /etc/berth/registries.conf.
func (e *Engine) RegistriesConfigPaths() []string {
	return []string{
		os.Getenv("BERTH_REGISTRIES_CONF"),
		filepath.Join(e.cfg.Root, "registries.conf"),
		filepath.Join(filepath.Dir(e.cfg.Root), "registries.conf"),
		"/etc/berth/registries.conf",
	}
}

func (e *Engine) registryOptions(o RegistryOptions) (storage.RegistryOptions, error) {
	config, err := storage.LoadRegistriesConfig(e.RegistriesConfigPaths()...)
	if err != nil {
		return storage.RegistryOptions{}, err
	}
	return storage.RegistryOptions{TLSVerify: o.TLSVerify, AuthFile: o.AuthFile, Config: config, UserAgent: "berth/" + Version}, nil
}

// Version is the berth version sent as the registry user agent; the CLI
// sets it.
var Version = "dev"

// Pull fetches ref from its registry.
func (e *Engine) Pull(ctx context.Context, ref string, o PullOptions) (*storage.PullResult, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	ro, err := e.registryOptions(o.RegistryOptions)
	if err != nil {
		return nil, err
	}
	return images.Pull(ctx, ref, storage.PullOptions{Registry: ro, Platform: o.Platform, Progress: o.Progress})
}

// ListTags lists the tags of the repository of ref (pull --all-tags).
func (e *Engine) ListTags(ctx context.Context, ref string, o RegistryOptions) ([]string, error) {
	ro, err := e.registryOptions(o)
	if err != nil {
		return nil, err
	}
	return storage.ListTags(ctx, ref, ro)
}

// Push uploads the image src to dest ("" is src).
func (e *Engine) Push(ctx context.Context, src, dest string, o PushOptions) (*storage.PushResult, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	ro, err := e.registryOptions(o.RegistryOptions)
	if err != nil {
		return nil, err
	}
	return images.Push(ctx, src, dest, storage.PushOptions{Registry: ro, Progress: o.Progress})
}

// Login checks and stores credentials; it returns the registry's name.
func (e *Engine) Login(ctx context.Context, o LoginOptions) (string, error) {
	ro, err := e.registryOptions(o.RegistryOptions)
	if err != nil {
		return "", err
	}
	return storage.Login(ctx, storage.LoginOptions{Registry: ro, Server: o.Server, Username: o.Username, Password: o.Password})
}

// Logout removes stored credentials; removed is false when there were
// none.
func (e *Engine) Logout(server string, o RegistryOptions) (registry string, removed bool, err error) {
	ro, err := e.registryOptions(o)
	if err != nil {
		return "", false, err
	}
	return storage.Logout(ro, server)
}

// Search finds repositories in a registry.
func (e *Engine) Search(ctx context.Context, term string, o SearchOptions) ([]storage.SearchResult, error) {
	ro, err := e.registryOptions(o.RegistryOptions)
	if err != nil {
		return nil, err
	}
	return storage.Search(ctx, term, storage.SearchOptions{Registry: ro, Limit: o.Limit})
}

// pullProgressKey carries the progress receiver of pulls made by Create.
type pullProgressKey struct{}

// WithPullProgress makes Create (run, create) report an implicit pull to
// f; without it, plain lines go to os.Stderr, as docker run prints them.
func WithPullProgress(ctx context.Context, f storage.ProgressFunc) context.Context {
	return context.WithValue(ctx, pullProgressKey{}, f)
}

// imageForCreate resolves the image of a new container, pulling it as
// the --pull policy says: "always" pulls first, "missing" only when no
// local image matches (a local short name never reaches the network),
// "never" (and "") only looks locally.
func (e *Engine) imageForCreate(ctx context.Context, images *storage.Store, ref, policy, platform string) (*storage.Image, error) {
	progress, _ := ctx.Value(pullProgressKey{}).(storage.ProgressFunc)
	out := io.Writer(os.Stderr)
	if progress == nil {
		progress = LineProgress(out)
	}
	pull := func() error {
		res, err := e.Pull(ctx, ref, PullOptions{Progress: progress, Platform: platform})
		if err != nil {
			return err
		}
		progress(storage.ProgressEvent{Status: "Digest: " + res.Digest})
		progress(storage.ProgressEvent{Status: PullStatus(res)})
		return nil
	}
	if policy == "always" {
		if err := pull(); err != nil {
			return nil, err
		}
		return images.LookupImage(ref)
	}
	img, err := images.LookupImage(ref)
	if err == nil || policy != "missing" || !errors.Is(err, storage.ErrImageNotFound) {
		return img, err
	}
	if isImageIDLike(ref) {
		return nil, err
	}
	progress(storage.ProgressEvent{Status: fmt.Sprintf("Unable to find image '%s' locally", ref)})
	if err := pull(); err != nil {
		return nil, err
	}
	return images.LookupImage(ref)
}

// isImageIDLike tells whether ref is an image ID ("sha256:…" or 64 hex
// digits), which is never pulled.
func isImageIDLike(ref string) bool {
	rest, hasPrefix := strings.CutPrefix(ref, "sha256:")
	if hasPrefix {
		return true
	}
	if len(rest) != 64 {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// PullStatus is docker's "Status:" line after a pull.
func PullStatus(res *storage.PullResult) string {
	if res.UpToDate {
		return "Status: Image is up to date for " + storage.FamiliarName(res.Ref)
	}
	return "Status: Downloaded newer image for " + storage.FamiliarName(res.Ref)
}

// LineProgress prints progress the way docker does without a terminal:
// one line per change of a layer's status ("abc123: Pull complete"),
// nothing for byte counts.
func LineProgress(w io.Writer) storage.ProgressFunc {
	var mu sync.Mutex
	return func(ev storage.ProgressEvent) {
		switch ev.Status {
		case "Downloading", "Pushing", "Extracting", "Preparing", "Waiting":
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if ev.ID == "" {
			fmt.Fprintln(w, ev.Status)
		} else {
			fmt.Fprintf(w, "%s: %s\n", ev.ID, ev.Status)
		}
	}
}
