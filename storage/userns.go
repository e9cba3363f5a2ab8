package storage

import (
	"fmt"

	cstorage "go.podman.io/storage"
	"go.podman.io/storage/pkg/idtools"
)

// CreateRootfsAuto is CreateRootfs for a container with --userns=auto:
// c/storage chooses, under its userns lock (graphroot/userns.lock), a
// range of size ids (0: the image's highest id + 1, at least 1024) that
// no other container's maps overlap, from the user's subordinate ids
// (rootless: $USER's) or root's user "containers", and shifts the layers
// for it. It returns the chosen maps.
func (s *Store) CreateRootfsAuto(containerID, imageID string, o RootfsOptions, size uint32) (uidMap, gidMap []idtools.IDMap, err error) {
	image, err := s.lookupStorageImage(imageID)
	if err != nil {
		return nil, nil, fmt.Errorf("creating rootfs for container %s: %w", containerID, err)
	}
	opts := &cstorage.ContainerOptions{Volatile: o.Volatile}
	opts.AutoUserNs = true
	opts.AutoUserNsOpts.Size = size
	c, err := s.store.CreateContainer(containerID, nil, image.ID, "", "", opts)
	if err != nil {
		return nil, nil, fmt.Errorf("creating rootfs for container %s: --userns=auto: %w", containerID, err)
	}
	return c.UIDMap, c.GIDMap, nil
}
