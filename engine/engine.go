// Package engine is berth's one API: the CLI's commands and (later) the
// REST service call it with typed options and get typed results back. It
// never imports the CLI library.
package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/berth-dev/berth/oci"
	"github.com/berth-dev/berth/rootless"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/storage"
)

// Config says where berth keeps its data.
type Config struct {
	Root    string // persistent: images, containers
	RunRoot string // runtime: locks, sockets; cleared by a reboot
	// StorageDriver forces a storage driver ("overlay", "vfs"); empty
	// picks overlay and falls back to vfs.
	StorageDriver string
	// Rootless: an ordinary user's berth, inside the user's namespace:
	// no cgroups, no bridge networks (docs/compat.md, Rootless).
	Rootless bool
}

// DefaultConfig is the one place where berth's paths are chosen: flags and
// BERTH_ROOT / BERTH_RUNROOT override it. A rootless berth (package
// rootless) uses the user's ${XDG_DATA_HOME:-~/.local/share}/berth and
// ${XDG_RUNTIME_DIR}/berth (or /tmp/berth-run-UID).
func DefaultConfig() Config {
	c := Config{Root: "/var/lib/berth", RunRoot: "/run/berth"}
	if rootless.Enabled() {
		c = Config{Root: rootless.DataDir(), RunRoot: rootless.RunDir(), Rootless: true}
	}
	if v := os.Getenv("BERTH_ROOT"); v != "" {
		c.Root = v
	}
	if v := os.Getenv("BERTH_RUNROOT"); v != "" {
		c.RunRoot = v
	}
	c.StorageDriver = os.Getenv("BERTH_STORAGE_DRIVER")
	return c
}

// Engine is an open berth store. It is cheap to make: the image store is
// opened only by the calls that need it.
type Engine struct {
	cfg        Config
	containers *state.Store
	volumes    *state.VolumeStore

	imagesOnce sync.Once
	images     *storage.Store
	imagesErr  error

	// supervising is set in a detached monitor, the only process that
	// restarts a container (restart policies: engine/restart.go).
	supervising bool
}

// New opens berth's store at the configured paths.
func New(cfg Config) (*Engine, error) {
	var err error
	if cfg.Root, err = filepath.Abs(cfg.Root); err != nil {
		return nil, err
	}
	if cfg.RunRoot, err = filepath.Abs(cfg.RunRoot); err != nil {
		return nil, err
	}
	if cfg.Rootless {
		// Nothing of the host's cgroup tree is delegated to the user.
		oci.DisableCgroups()
	}
	cs, err := state.Open(cfg.Root, cfg.RunRoot)
	if err != nil {
		return nil, err
	}
	vs, err := state.OpenVolumes(cfg.Root, cfg.RunRoot)
	if err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg, containers: cs, volumes: vs}, nil
}

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.cfg }

// Images opens the image store on first use.
func (e *Engine) Images() (*storage.Store, error) {
	e.imagesOnce.Do(func() {
		e.images, e.imagesErr = storage.Open(storage.Options{Root: e.cfg.Root, RunRoot: e.cfg.RunRoot, Driver: e.cfg.StorageDriver,
			IgnoreChownErrors: e.cfg.Rootless && rootless.SingleMapping()})
		if e.imagesErr != nil {
			e.imagesErr = fmt.Errorf("opening image store: %w", e.imagesErr)
		}
	})
	return e.images, e.imagesErr
}

// Close releases the image store if it was opened.
func (e *Engine) Close() error {
	if e.images != nil {
		return e.images.Close()
	}
	return nil
}
