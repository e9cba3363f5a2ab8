package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/state"
)

// ErrNoSuchVolume is returned for an unknown volume name.
var ErrNoSuchVolume = state.ErrNoSuchVolume

// ErrVolumeInUse is returned when a volume that a container uses is to be
// removed.
var ErrVolumeInUse = errors.New("volume is in use")

// VolumeCreateOptions is `volume create`.
type VolumeCreateOptions struct {
	Name    string // empty: an anonymous volume with a generated name
	Driver  string // "" or "local"
	Labels  map[string]string
	Options map[string]string
}

// VolumeCreate makes a volume; an existing one of that name is returned
// unchanged (docker does the same).
func (e *Engine) VolumeCreate(ctx context.Context, o VolumeCreateOptions) (*volume.Volume, error) {
	if o.Driver != "" && o.Driver != "local" {
		return nil, invalidf("volume driver %q is not supported (only local)", o.Driver)
	}
	if err := checkVolumeOptions(o.Options); err != nil {
		return nil, invalidf("%v", err)
	}
	name := o.Name
	labels := o.Labels
	if name == "" {
		var err error
		if name, err = newVolumeName(); err != nil {
			return nil, err
		}
		// docker marks only volumes made for containers as anonymous:
		// a nameless `volume create` is kept by a plain prune.
	} else if !state.ValidVolumeName(name) {
		return nil, invalidf("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed", name)
	}
	lock, err := e.volumes.Lock()
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	v, err := e.volumes.Get(name)
	if err == nil {
		return e.volumeAPI(v), nil
	}
	v = &state.Volume{Name: name, Driver: "local", Labels: labels, Options: o.Options}
	if err := e.volumes.Create(v); err != nil {
		return nil, err
	}
	return e.volumeAPI(v), nil
}

func (e *Engine) volumeAPI(v *state.Volume) *volume.Volume {
	return &volume.Volume{
		Name:       v.Name,
		Driver:     v.Driver,
		Mountpoint: e.volumes.DataDir(v.Name),
		CreatedAt:  v.CreatedAt.Format(time.RFC3339),
		Labels:     v.Labels,
		Options:    v.Options,
		Scope:      "local",
	}
}

// VolumeInspect returns a volume as docker's API shows it.
func (e *Engine) VolumeInspect(ctx context.Context, name string) (*volume.Volume, error) {
	v, err := e.volumes.Get(name)
	if err != nil {
		return nil, err
	}
	return e.volumeAPI(v), nil
}

// VolumeListOptions is `volume ls`: filters name= (substring), label=KEY
// or KEY=VALUE, dangling=true|false, driver=.
type VolumeListOptions struct {
	Filters map[string][]string
}

// VolumeList lists volumes, sorted by name.
func (e *Engine) VolumeList(ctx context.Context, o VolumeListOptions) ([]*volume.Volume, error) {
	for k, vals := range o.Filters {
		switch k {
		case "name", "label", "label!", "driver":
		case "dangling":
			for _, v := range vals {
				if _, ok := parseBool(v); !ok {
					return nil, invalidf("invalid filter 'dangling=%s'", v)
				}
			}
		default:
			return nil, invalidf("invalid filter '%s'", k)
		}
	}
	vols, err := e.volumes.List()
	if err != nil {
		return nil, err
	}
	var used map[string][]string
	if len(o.Filters["dangling"]) > 0 {
		used = e.volumeUsers()
	}
	var out []*volume.Volume
	for _, v := range vols {
		if !matchVolume(v, o.Filters, used) {
			continue
		}
		out = append(out, e.volumeAPI(v))
	}
	return out, nil
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

func matchVolume(v *state.Volume, f map[string][]string, used map[string][]string) bool {
	if names := f["name"]; len(names) > 0 {
		ok := false
		for _, n := range names {
			ok = ok || strings.Contains(v.Name, n)
		}
		if !ok {
			return false
		}
	}
	if drivers := f["driver"]; len(drivers) > 0 {
		ok := false
		for _, d := range drivers {
			ok = ok || d == v.Driver
		}
		if !ok {
			return false
		}
	}
	for _, l := range f["label"] {
		k, val, hasVal := strings.Cut(l, "=")
		got, ok := v.Labels[k]
		if !ok || (hasVal && got != val) {
			return false
		}
	}
	for _, l := range f["label!"] {
		k, val, hasVal := strings.Cut(l, "=")
		got, ok := v.Labels[k]
		if ok && (!hasVal || got == val) {
			return false
		}
	}
	for _, d := range f["dangling"] {
		want, _ := parseBool(d)
		if dangling := len(used[v.Name]) == 0; dangling != want {
			return false
		}
	}
	return true
}

// volumeUsers maps each volume name to the containers (IDs) whose mounts
// name it, running or not.
func (e *Engine) volumeUsers() map[string][]string {
	out := map[string][]string{}
	ids, _ := e.containers.IDs()
	for _, id := range ids {
		rec, err := e.containers.Record(id)
		if err != nil {
			continue
		}
		seen := map[string]bool{}
		for _, mp := range rec.Mounts {
			if mp.Type == "volume" && !seen[mp.Name] {
				seen[mp.Name] = true
				out[mp.Name] = append(out[mp.Name], id)
			}
		}
	}
	return out
}

// inUseError names the containers that use a volume.
func (e *Engine) inUseError(name string, ids []string) error {
	var who []string
	for _, id := range ids {
		n := id[:12]
		if rec, err := e.containers.Record(id); err == nil {
			n = rec.Name + " (" + id[:12] + ")"
		}
		who = append(who, n)
	}
	return fmt.Errorf("remove %s: %w by container %s", name, ErrVolumeInUse, strings.Join(who, ", "))
}

// VolumeRemove deletes a volume that no container uses. With force an
// unknown volume is not an error; a volume in use is refused all the same
// (as docker does).
func (e *Engine) VolumeRemove(ctx context.Context, name string, force bool) error {
	lock, err := e.volumes.Lock()
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if _, err := e.volumes.Get(name); err != nil {
		if force && errors.Is(err, ErrNoSuchVolume) {
			return nil
		}
		return err
	}
	if ids := e.volumeUsers()[name]; len(ids) > 0 {
		return e.inUseError(name, ids)
	}
	return e.removeVolume(name)
}

// removeVolume deletes a volume no container uses. A mount left on its
// data directory (a crash between mounting and recording the start) is
// undone first: deleting through it would delete a bind volume's device.
func (e *Engine) removeVolume(name string) error {
	data := e.volumes.DataDir(name)
	if mounted, _ := mountinfo.Mounted(data); mounted {
		if err := unix.Unmount(data, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("remove %s: unmounting %s: %w", name, data, err)
		}
	}
	return e.volumes.Remove(name)
}

// VolumePruneOptions is `volume prune`.
type VolumePruneOptions struct {
	All     bool // named volumes too (docker 23+ prunes only anonymous ones by default)
	Filters map[string][]string
}

// VolumePrune removes the volumes no container uses.
func (e *Engine) VolumePrune(ctx context.Context, o VolumePruneOptions) (*volume.PruneReport, error) {
	for k := range o.Filters {
		switch k {
		case "label", "label!", "all":
		default:
			return nil, invalidf("invalid filter '%s'", k)
		}
	}
	all := o.All
	for _, v := range o.Filters["all"] {
		b, ok := parseBool(v)
		if !ok {
			return nil, invalidf("invalid filter 'all=%s'", v)
		}
		all = all || b
	}
	lock, err := e.volumes.Lock()
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	vols, err := e.volumes.List()
	if err != nil {
		return nil, err
	}
	used := e.volumeUsers()
	report := &volume.PruneReport{VolumesDeleted: []string{}}
	for _, v := range vols {
		if len(used[v.Name]) > 0 || (!all && !v.Anonymous()) {
			continue
		}
		if !matchVolume(v, map[string][]string{"label": o.Filters["label"], "label!": o.Filters["label!"]}, nil) {
			continue
		}
		size := e.volumes.Size(v.Name)
		if err := e.removeVolume(v.Name); err != nil {
			return report, err
		}
		report.VolumesDeleted = append(report.VolumesDeleted, v.Name)
		report.SpaceReclaimed += uint64(size)
	}
	return report, nil
}

// ensureVolumes creates the volumes a new container needs that do not
// exist yet, and returns the names it created. The caller holds the
// volume store lock.
func (e *Engine) ensureVolumes(reqs []volumeRequest) ([]string, error) {
	var created []string
	for _, r := range reqs {
		if _, err := e.volumes.Get(r.name); err == nil {
			continue
		} else if !errors.Is(err, ErrNoSuchVolume) {
			return created, err
		}
		if err := e.volumes.Create(&state.Volume{Name: r.name, Driver: "local", Labels: r.labels, Options: r.options}); err != nil {
			return created, err
		}
		created = append(created, r.name)
	}
	return created, nil
}

// removeVolumesQuietly removes volumes a failed create made.
func (e *Engine) removeVolumesQuietly(names []string) {
	for _, n := range names {
		e.removeVolume(n)
	}
}

// removeAnonymousVolumes removes the anonymous volumes of a removed
// container that no other container uses (rm -v, --rm).
func (e *Engine) removeAnonymousVolumes(rec *state.Record) {
	lock, err := e.volumes.Lock()
	if err != nil {
		return
	}
	defer lock.Unlock()
	used := e.volumeUsers()
	for _, mp := range rec.Mounts {
		if mp.Type != "volume" || len(used[mp.Name]) > 0 {
			continue
		}
		if v, err := e.volumes.Get(mp.Name); err == nil && v.Anonymous() {
			e.removeVolume(mp.Name)
		}
	}
}

// volumeSource is the host directory a volume's mount binds: its data
// directory (where a tmpfs or bind volume is mounted while in use).
func (e *Engine) volumeSource(v *state.Volume) string {
	return e.volumes.DataDir(v.Name)
}

// mountVolumeOnHost mounts a volume with driver options on its data
// directory, as docker's local driver does: a tmpfs, or a bind of its
// device. Plain volumes need nothing.
func mountVolumeOnHost(v *state.Volume, data string) error {
	var err error
	switch {
	case v.Options["type"] == "tmpfs":
		err = unix.Mount("tmpfs", data, "tmpfs", 0, v.Options["o"])
	case v.Options["device"] != "":
		flags := uintptr(unix.MS_BIND)
		for _, o := range strings.Split(v.Options["o"], ",") {
			if o == "rbind" {
				flags |= unix.MS_REC
			}
		}
		err = unix.Mount(v.Options["device"], data, "", flags, "")
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("mounting volume %s: %w", v.Name, err)
	}
	return nil
}

// prepareVolumes runs when a container starts, with its rootfs mounted:
// each volume it uses is mounted on its data directory if its options ask
// for a tmpfs or a bind of a directory, the container is recorded as one
// of its users, and an empty volume is seeded with what the image has at
// the mount point. It returns
// the host source of each volume mount, by destination.
func (e *Engine) prepareVolumes(rec *state.Record, rootfs string) (map[string]string, error) {
	sources := map[string]string{}
	for _, mp := range rec.Mounts {
		if mp.Type != "volume" {
			continue
		}
		src, err := e.prepareVolume(rec.ID, mp, rootfs)
		if err != nil {
			return nil, err
		}
		sources[mp.Destination] = src
	}
	return sources, nil
}

func (e *Engine) prepareVolume(id string, mp state.MountPoint, rootfs string) (string, error) {
	lock, err := e.volumes.LockVolume(mp.Name)
	if err != nil {
		return "", err
	}
	defer lock.Unlock()
	v, err := e.volumes.Get(mp.Name)
	if err != nil {
		return "", fmt.Errorf("volume %s of %s: %w", mp.Name, mp.Destination, err)
	}
	users := e.volumes.UsersDir(v.Name)
	if err := os.MkdirAll(users, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(users, id), nil, 0o600); err != nil {
		return "", err
	}
	src := e.volumeSource(v)
	if len(v.Options) > 0 {
		if mounted, _ := mountinfo.Mounted(src); !mounted {
			if err := mountVolumeOnHost(v, src); err != nil {
				return "", err
			}
		}
	}
	if !mp.NoCopy {
		if err := seedVolume(rootfs, mp.Destination, src); err != nil {
			return "", fmt.Errorf("copying image content at %s into volume %s: %w", mp.Destination, v.Name, err)
		}
	}
	return src, nil
}

// releaseVolumes undoes prepareVolumes for a container that stopped (or
// whose start failed, or whose monitor died): a tmpfs volume that no
// other running container uses is unmounted. It is safe to repeat.
func (e *Engine) releaseVolumes(rec *state.Record) {
	seen := map[string]bool{}
	for _, mp := range rec.Mounts {
		if mp.Type != "volume" || seen[mp.Name] {
			continue
		}
		seen[mp.Name] = true
		e.releaseVolume(rec.ID, mp.Name)
	}
}

func (e *Engine) releaseVolume(id, name string) {
	users := e.volumes.UsersDir(name)
	if _, err := os.Stat(filepath.Join(users, id)); err != nil {
		return // never prepared, or released already
	}
	lock, err := e.volumes.LockVolume(name)
	if err != nil {
		return
	}
	defer lock.Unlock()
	os.Remove(filepath.Join(users, id))
	left, _ := os.ReadDir(users)
	if len(left) > 0 {
		return
	}
	data := e.volumes.DataDir(name)
	if mounted, _ := mountinfo.Mounted(data); mounted {
		if err := unix.Unmount(data, 0); err != nil {
			unix.Unmount(data, unix.MNT_DETACH)
		}
	}
}

// volumeMountPoints gives a container's mounts as docker's inspect shows
// them.
func (e *Engine) volumeMountPoints(rec *state.Record) []container.MountPoint {
	out := make([]container.MountPoint, 0, len(rec.Mounts))
	for _, mp := range rec.Mounts {
		cm := container.MountPoint{
			Type: mount.Type(mp.Type), Name: mp.Name, Source: mp.Source, Destination: mp.Destination,
			Mode: mp.Mode, RW: mp.RW, Propagation: mount.Propagation(mp.Propagation),
		}
		if mp.Type == "volume" {
			cm.Driver = "local"
			cm.Source = e.volumes.DataDir(mp.Name)
			if v, err := e.volumes.Get(mp.Name); err == nil {
				cm.Source = e.volumeSource(v)
			}
		}
		out = append(out, cm)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}
