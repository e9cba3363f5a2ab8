package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Volume layout:
//
//	ROOT/volumes/NAME/_data         the volume's content (where a tmpfs or bind volume is mounted)
//	ROOT/volumes/NAME/volume.json   driver, labels, options, creation time
//	ROOT/volumes/.lock              held while volumes are created, removed or checked for use
//	RUNROOT/volumes/NAME.lock       held while a volume is mounted, seeded or released
//	RUNROOT/volumes/NAME.users/ID   one file per running container whose start mounted it
//
// volume.json is written last (temp file, fsync, rename): a directory
// without it is a volume whose creation was cut short, and it is not listed.

// ErrNoSuchVolume is returned for a volume name that is not in the store.
var ErrNoSuchVolume = errors.New("no such volume")

// AnonymousLabel marks a volume berth made without a name (docker 23+
// uses the same label; `volume prune` without -a removes only these).
const AnonymousLabel = "com.docker.volume.anonymous"

// Volume is a volume's metadata.
type Volume struct {
	Name      string            `json:"name"`
	Driver    string            `json:"driver"`
	Labels    map[string]string `json:"labels,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
}

// Anonymous tells whether berth named the volume itself.
func (v *Volume) Anonymous() bool {
	_, ok := v.Labels[AnonymousLabel]
	return ok
}

// VolumeStore is the on-disk volume store.
type VolumeStore struct {
	dir    string // ROOT/volumes
	rundir string // RUNROOT/volumes
}

// OpenVolumes prepares the volume directories under root and runroot.
func OpenVolumes(root, runroot string) (*VolumeStore, error) {
	s := &VolumeStore{dir: filepath.Join(root, "volumes"), rundir: filepath.Join(runroot, "volumes")}
	for _, d := range []string{s.dir, s.rundir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating volume directory: %w", err)
		}
	}
	return s, nil
}

var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidVolumeName applies docker's rule for local volume names.
func ValidVolumeName(name string) bool { return volumeNameRE.MatchString(name) }

// DataDir is where a volume's content lives on the host.
func (s *VolumeStore) DataDir(name string) string { return filepath.Join(s.dir, name, "_data") }

// Lock takes the store-wide volume lock.
func (s *VolumeStore) Lock() (*Lock, error) { return LockFile(filepath.Join(s.dir, ".lock")) }

// LockVolume takes the lock of one volume's runtime state (mounting,
// seeding, its users).
func (s *VolumeStore) LockVolume(name string) (*Lock, error) {
	return LockFile(filepath.Join(s.rundir, name+".lock"))
}

// UsersDir holds one file per running container that mounted the volume.
func (s *VolumeStore) UsersDir(name string) string { return filepath.Join(s.rundir, name+".users") }

// Get reads a volume's metadata.
func (s *VolumeStore) Get(name string) (*Volume, error) {
	if !ValidVolumeName(name) {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchVolume, name)
	}
	var v Volume
	if err := readJSON(filepath.Join(s.dir, name, "volume.json"), &v); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchVolume, name)
		}
		return nil, err
	}
	return &v, nil
}

// Create makes a new volume. The caller holds the store lock and has
// checked that the name is free.
func (s *VolumeStore) Create(v *Volume) error {
	if !ValidVolumeName(v.Name) {
		return fmt.Errorf("invalid volume name %q", v.Name)
	}
	if v.CreatedAt.IsZero() {
		v.CreatedAt = time.Now().UTC()
	}
	dir := filepath.Join(s.dir, v.Name)
	if err := os.MkdirAll(filepath.Join(dir, "_data"), 0o755); err != nil {
		return fmt.Errorf("creating volume %s: %w", v.Name, err)
	}
	// MkdirAll is subject to the umask: the data directory is 0755 as docker's.
	os.Chmod(filepath.Join(dir, "_data"), 0o755)
	if err := writeJSON(filepath.Join(dir, "volume.json"), v, true); err != nil {
		os.RemoveAll(dir)
		return err
	}
	return nil
}

// List returns every volume, sorted by name.
func (s *VolumeStore) List() ([]*Volume, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing volumes: %w", err)
	}
	var out []*Volume
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		v, err := s.Get(e.Name())
		if err != nil {
			continue
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a volume and its content. The volume disappears at once
// (its directory is renamed aside before the content is deleted).
func (s *VolumeStore) Remove(name string) error {
	if !ValidVolumeName(name) {
		return fmt.Errorf("%w: %s", ErrNoSuchVolume, name)
	}
	dir := filepath.Join(s.dir, name)
	gone := filepath.Join(s.dir, ".removing-"+name)
	os.RemoveAll(gone)
	if err := os.Rename(dir, gone); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNoSuchVolume, name)
		}
		return fmt.Errorf("removing volume %s: %w", name, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("removing volume %s: %w", name, err)
	}
	os.Remove(filepath.Join(s.rundir, name+".lock"))
	os.RemoveAll(s.UsersDir(name))
	return nil
}

// Size sums the sizes of the regular files in a volume (for prune's
// reclaimed space).
func (s *VolumeStore) Size(name string) int64 {
	var n int64
	filepath.Walk(s.DataDir(name), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
