// Package engine is berth's one API: the CLI's commands and (later) the
// REST service call it with typed options and get typed results back. It
// never imports the CLI library.
package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	// picks overlay (natively, else through fuse-overlayfs), else vfs.
	StorageDriver string
	// StorageOpts are c/storage driver options, DRIVER.KEY=VALUE
	// (--storage-opt, BERTH_STORAGE_OPTS), e.g.
	// overlay.mount_program=/usr/bin/fuse-overlayfs.
	StorageOpts []string
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
	c.StorageOpts = SplitStorageOpts(os.Getenv(storageOptsEnv))
	return c
}

// storageOptsEnv holds the storage options as a comma-separated list
// (like c/storage's STORAGE_OPTS); a comma inside a value
// (overlay.mountopt=nodev,metacopy=on) is kept: a new option starts only
// at a piece that begins with DRIVER.KEY=.
const storageOptsEnv = "BERTH_STORAGE_OPTS"

// SplitStorageOpts splits a BERTH_STORAGE_OPTS value into options.
func SplitStorageOpts(v string) []string {
	var opts []string
	for _, piece := range strings.Split(v, ",") {
		key, _, hasValue := strings.Cut(piece, "=")
		if len(opts) > 0 && (!hasValue || !strings.Contains(key, ".")) {
			opts[len(opts)-1] += "," + piece
			continue
		}
		if strings.TrimSpace(piece) != "" {
			opts = append(opts, strings.TrimSpace(piece))
		}
	}
	return opts
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
	if err := storage.CheckDriver(cfg.StorageDriver, cfg.StorageOpts); err != nil {
		return nil, err
	}
	// The processes berth starts (a detached monitor mounts the rootfs)
	// must open the store as this one does: they inherit the environment.
	if v := strings.Join(cfg.StorageOpts, ","); v != os.Getenv(storageOptsEnv) {
		if v == "" {
			os.Unsetenv(storageOptsEnv)
		} else {
			os.Setenv(storageOptsEnv, v)
		}
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
			DriverOptions:     e.cfg.StorageOpts,
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
