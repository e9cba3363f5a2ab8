// Package storage keeps images, layers and container root filesystems.
// It wraps go.podman.io/storage (containers/storage) for layers and
// mounts, and go-containerregistry for image configs and archives.
//
// Everything lives under two directories: Root+"/storage" holds layers,
// image records and container records (it survives reboots), and
// RunRoot+"/storage" holds mount bookkeeping that may be lost on reboot.
//
// An image is identified like docker does it: its ID is the hex sha256 of
// the exact config JSON bytes, which are stored with the image as the
// "config" big-data item. Image names are full references such as
// "docker.io/library/busybox:latest"; see NormalizeName and FamiliarName.
//
// A container's root filesystem is a c/storage container: a writable layer
// on top of the image's top layer, created by CreateRootfs, mounted by
// MountRootfs and deleted by RemoveRootfs.
//
// The layer code re-executes the current binary for some operations
// (unpacking layers inside a chroot, long overlay mount options), so main
// must start with:
//
//	if storage.ReexecInit() {
//		return
//	}
package storage

import (
	"errors"
	"fmt"
	"path/filepath"

	cstorage "go.podman.io/storage"
	graphdriver "go.podman.io/storage/drivers"
	"go.podman.io/storage/pkg/reexec"
	"go.podman.io/storage/types"
)

// Options says where a Store keeps its data.
type Options struct {
	// Root is the berth root; persistent storage lives in Root+"/storage".
	Root string
	// RunRoot is the berth run root; volatile storage state lives in
	// RunRoot+"/storage".
	RunRoot string
	// Driver is the graph driver: "overlay", "vfs", or "" for overlay
	// (natively, else through fuse-overlayfs), falling back to vfs.
	Driver string
	// DriverOptions are c/storage driver options, DRIVER.KEY=VALUE
	// (--storage-opt), checked by CheckDriver.
	DriverOptions []string
	// IgnoreChownErrors: a user namespace with a single uid cannot own
	// files of other ids; layers are unpacked with them given to root.
	IgnoreChownErrors bool
}

var (
	// ErrImageNotFound is returned (wrapped) when no image matches a name or ID.
	ErrImageNotFound = errors.New("no such image")
	// ErrCorruptArchive is returned (wrapped) when an imported or loaded
	// archive cannot be read or its content does not match its digests.
	ErrCorruptArchive = errors.New("corrupt archive")
)

// Store is an open image and container-rootfs store.
type Store struct {
	store  cstorage.Store
	tmpDir string
	// mountProgram runs overlay mounts (fuse-overlayfs), and why
	// (MountProgram*); noOverlay says why vfs was chosen.
	mountProgram, mountProgramWhy string
	noOverlay                     string
}

// ReexecInit runs a c/storage helper if the current process was started as
// one, and then returns true: the caller must exit right away. It must be
// the first thing main does.
func ReexecInit() bool {
	return reexec.Init()
}

// Open opens (creating if needed) the store below o.Root and o.RunRoot.
// It is cheap enough to call once per command.
func Open(o Options) (*Store, error) {
	if o.Root == "" || o.RunRoot == "" {
		return nil, errors.New("opening storage: root and run root must be set")
	}
	if err := CheckDriver(o.Driver, o.DriverOptions); err != nil {
		return nil, err
	}
	storeOptions := types.StoreOptions{
		GraphRoot:       filepath.Join(o.Root, "storage"),
		RunRoot:         filepath.Join(o.RunRoot, "storage"),
		GraphDriverName: o.Driver,
	}
	s := &Store{tmpDir: filepath.Join(o.Root, "tmp")}
	var driverOptions []string
	if o.IgnoreChownErrors {
		driverOptions = []string{"overlay.ignore_chown_errors=true", "vfs.ignore_chown_errors=true"}
	}
	driverOptions = append(driverOptions, o.DriverOptions...)
	if o.Driver == "" || o.Driver == "overlay" {
		storeOptions.GraphDriverName = "overlay"
		if mp := driverOption(o.DriverOptions, "overlay", "mount_program"); mp != "" {
			s.mountProgram, s.mountProgramWhy = mp, MountProgramAsked
		} else {
			plan, err := planOverlay(storeOptions.GraphRoot, storeOptions.RunRoot)
			if err != nil {
				return nil, fmt.Errorf("opening storage: %w", err)
			}
			switch {
			case plan.mountProgram != "":
				s.mountProgram, s.mountProgramWhy = plan.mountProgram, plan.why
				driverOptions = append(driverOptions, "overlay.mount_program="+plan.mountProgram)
			case !plan.native && o.Driver == "":
				storeOptions.GraphDriverName = "vfs"
				s.noOverlay = plan.problem
			}
		}
	}
	storeOptions.GraphDriverOptions = driverOptions
	store, err := cstorage.GetStore(storeOptions)
	if err != nil && o.Driver == "" && storeOptions.GraphDriverName == "overlay" && s.mountProgram == "" && errors.Is(err, graphdriver.ErrNotSupported) {
		storeOptions.GraphDriverName = "vfs"
		s.noOverlay = err.Error()
		store, err = cstorage.GetStore(storeOptions)
	}
	if err != nil {
		return nil, fmt.Errorf("opening storage with driver %s: %w", storeOptions.GraphDriverName, err)
	}
	s.store = store
	return s, nil
}

// Close releases the store. Mounted container root filesystems stay
// mounted.
func (s *Store) Close() error {
	_, err := s.store.Shutdown(false)
	if err != nil && !errors.Is(err, cstorage.ErrLayerUsedByContainer) {
		return fmt.Errorf("closing storage: %w", err)
	}
	return nil
}

// Shutdown releases the store; with force it also unmounts every mounted
// layer. Tests and `berth system reset` use it.
func (s *Store) Shutdown(force bool) error {
	_, err := s.store.Shutdown(force)
	if force && errors.Is(err, cstorage.ErrLayerUsedByContainer) {
		// The layers were unmounted, but c/storage reports them and skips
		// the driver cleanup; a second pass finds nothing mounted.
		_, err = s.store.Shutdown(false)
	}
	if err != nil && !errors.Is(err, cstorage.ErrLayerUsedByContainer) {
		return fmt.Errorf("shutting down storage: %w", err)
	}
	return nil
}

// Driver returns the graph driver in use: "overlay" or "vfs".
func (s *Store) Driver() string {
	return s.store.GraphDriverName()
}

// DriverStatus returns driver details as key/value pairs for `berth info`:
// c/storage's, and the mount program if overlay uses one.
func (s *Store) DriverStatus() [][2]string {
	status, err := s.store.Status()
	if err != nil {
		status = [][2]string{{"Error", err.Error()}}
	}
	if s.mountProgram != "" && s.Driver() == "overlay" {
		status = append(status, [2]string{"Mount Program", s.mountProgram})
	}
	return status
}

// MountProgram returns the program that mounts overlay layers
// (fuse-overlayfs) and why it is used (MountProgramAsked, …Store,
// …Kernel), or "" when the kernel mounts them or the driver is vfs.
func (s *Store) MountProgram() (path, why string) {
	if s.Driver() != "overlay" {
		return "", ""
	}
	return s.mountProgram, s.mountProgramWhy
}

// NoOverlay says why overlay was not used when the driver was chosen
// automatically and is vfs ("" otherwise).
func (s *Store) NoOverlay() string { return s.noOverlay }

// GraphRoot returns the directory holding persistent storage data.
func (s *Store) GraphRoot() string {
	return s.store.GraphRoot()
}
