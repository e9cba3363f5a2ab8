package storage

import (
	"errors"
	"fmt"
	"strings"

	cstorage "go.podman.io/storage"
	"go.podman.io/storage/pkg/idtools"
)

// RootfsOptions tune a container's root filesystem.
type RootfsOptions struct {
	// Volatile skips every fsync for this container's layer and its
	// records (overlay's "volatile" mount option, c/storage's volatile
	// layer file): right for `--rm` containers, which no crash or reboot
	// should bring back anyway.
	Volatile bool
	// UIDMap and GIDMap: the container has a user namespace of its own
	// (rootless --userns=keep-id); its layers are seen through these maps.
	UIDMap, GIDMap []idtools.IDMap
}

// CreateRootfs creates the root filesystem of container containerID: a new
// writable layer on top of the image imageID (a full image ID, or anything
// LookupImage accepts).
func (s *Store) CreateRootfs(containerID, imageID string, o RootfsOptions) error {
	image, err := s.lookupStorageImage(imageID)
	if err != nil {
		return fmt.Errorf("creating rootfs for container %s: %w", containerID, err)
	}
	opts := &cstorage.ContainerOptions{Volatile: o.Volatile}
	opts.UIDMap, opts.GIDMap = o.UIDMap, o.GIDMap
	if _, err := s.store.CreateContainer(containerID, nil, image.ID, "", "", opts); err != nil {
		return fmt.Errorf("creating rootfs for container %s: %w", containerID, err)
	}
	return nil
}

// MountRootfs mounts the root filesystem of a container and returns the
// directory where it is mounted. Mounting an already mounted rootfs
// returns the same directory.
func (s *Store) MountRootfs(containerID string) (string, error) {
	dir, err := s.store.Mount(containerID, "")
	if err != nil {
		if mp, _ := s.MountProgram(); mp != "" && strings.Contains(err.Error(), "open /dev/fuse: Permission denied") {
			// fuse-overlayfs opens /dev/fuse as the user: udev's mode is
			// 0666, a machine without udev may have 0600.
			return "", fmt.Errorf("mounting rootfs of container %s with %s: /dev/fuse cannot be opened by this user (its standard mode is 0666: chmod 0666 /dev/fuse as root): %w", containerID, mp, err)
		}
		return "", fmt.Errorf("mounting rootfs of container %s: %w", containerID, err)
	}
	return dir, nil
}

// UnmountRootfs unmounts the root filesystem of a container, however many
// times it was mounted. An unmounted or unknown rootfs is not an error.
func (s *Store) UnmountRootfs(containerID string) error {
	_, err := s.store.Unmount(containerID, true)
	if err != nil && !isMissingOrUnmounted(err) {
		return fmt.Errorf("unmounting rootfs of container %s: %w", containerID, err)
	}
	return nil
}

// RemoveRootfs unmounts and deletes the root filesystem of a container.
// A missing rootfs is not an error.
func (s *Store) RemoveRootfs(containerID string) error {
	if err := s.UnmountRootfs(containerID); err != nil {
		return err
	}
	err := s.store.DeleteContainer(containerID)
	if err != nil && !errors.Is(err, cstorage.ErrContainerUnknown) && !errors.Is(err, cstorage.ErrNotAContainer) {
		return fmt.Errorf("removing rootfs of container %s: %w", containerID, err)
	}
	return nil
}

// RootfsSize returns the size of the files the container itself wrote:
// the size of its writable layer, as `ps -s` shows it.
func (s *Store) RootfsSize(containerID string) (int64, error) {
	container, err := s.store.Container(containerID)
	if err != nil {
		return 0, fmt.Errorf("sizing rootfs of container %s: %w", containerID, err)
	}
	layer, err := s.store.Layer(container.LayerID)
	if err != nil {
		return 0, fmt.Errorf("sizing rootfs of container %s: %w", containerID, err)
	}
	size, err := s.store.DiffSize(layer.Parent, layer.ID)
	if err != nil {
		return 0, fmt.Errorf("sizing rootfs of container %s: %w", containerID, err)
	}
	return size, nil
}

func isMissingOrUnmounted(err error) bool {
	return errors.Is(err, cstorage.ErrLayerNotMounted) ||
		errors.Is(err, cstorage.ErrLayerUnknown) ||
		errors.Is(err, cstorage.ErrContainerUnknown)
}
