package engine

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/state"
)

// volumeRequest is a volume a new container needs: created unless it
// exists (named), or always (anonymous).
type volumeRequest struct {
	name    string
	driver  string
	labels  map[string]string
	options map[string]string
}

// mountPlan is what a container's -v, --mount, --volumes-from and image
// VOLUME entries resolve to, before anything is made.
type mountPlan struct {
	mounts   []state.MountPoint
	volumes  []volumeRequest // volumes to create if missing, in order
	hostDirs []string        // missing -v bind sources to create (docker does)
}

// classifyMode tells the -v modes apart: access, SELinux label, propagation,
// copy, and docker's ignored consistency values.
func classifyMode(m string) string {
	switch m {
	case "ro", "rw":
		return "access"
	case "z", "Z":
		return "label"
	case "private", "rprivate", "shared", "rshared", "slave", "rslave":
		return "propagation"
	case "nocopy":
		return "copy"
	case "consistent", "cached", "delegated":
		return "consistency"
	}
	return ""
}

// ParseBind reads one -v value (docker's Linux syntax):
//
//	/ctr/path                   anonymous volume
//	NAME:/ctr/path[:MODES]      named volume
//	/host/path:/ctr/path[:MODES] bind mount
//
// MODES is a comma-separated list of ro|rw, z|Z, a propagation
// (binds only) and nocopy (volumes only).
func ParseBind(spec string) (state.MountPoint, error) {
	bad := func(format string, args ...any) error {
		return invalidf("invalid volume specification: '%s': %s", spec, fmt.Sprintf(format, args...))
	}
	parts := strings.Split(spec, ":")
	var src, dst, mode string
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		if classifyMode(parts[1]) != "" {
			return state.MountPoint{}, bad("a volume without a source takes no mode")
		}
		src, dst = parts[0], parts[1]
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	default:
		return state.MountPoint{}, bad("too many colons")
	}
	for _, p := range parts {
		if p == "" {
			return state.MountPoint{}, bad("empty section")
		}
	}
	if err := checkDestination(dst); err != nil {
		return state.MountPoint{}, bad("%v", err)
	}
	mp := state.MountPoint{Destination: path.Clean(dst), Mode: mode, RW: true}
	switch {
	case src == "":
		mp.Type = "volume"
	case strings.HasPrefix(src, "/"):
		mp.Type, mp.Source = "bind", path.Clean(src)
		mp.Propagation = string(mount.PropagationRPrivate)
	default:
		if !state.ValidVolumeName(src) {
			return state.MountPoint{}, bad("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed; for a host directory give an absolute path", src)
		}
		mp.Type, mp.Name = "volume", src
	}
	seen := map[string]bool{}
	if mode != "" {
		for _, m := range strings.Split(mode, ",") {
			kind := classifyMode(m)
			if kind == "" {
				return state.MountPoint{}, bad("invalid mode: %s", m)
			}
			if seen[kind] && kind != "consistency" {
				return state.MountPoint{}, bad("invalid mode: %s (more than one %s mode)", mode, kind)
			}
			seen[kind] = true
			switch kind {
			case "access":
				mp.RW = m == "rw"
			case "propagation":
				if mp.Type != "bind" {
					return state.MountPoint{}, bad("invalid mode: %s (propagation applies to bind mounts only)", m)
				}
				mp.Propagation = m
			case "copy":
				if mp.Type != "volume" {
					return state.MountPoint{}, bad("invalid mode: %s (nocopy applies to volumes only)", m)
				}
				mp.NoCopy = true
			}
		}
	}
	if mp.Name != "" && mp.Mode == "" {
		mp.Mode = "z" // what docker reports for a named -v volume
	}
	return mp, nil
}

func checkDestination(dst string) error {
	if !strings.HasPrefix(dst, "/") {
		return fmt.Errorf("invalid mount path: '%s' mount path must be absolute", dst)
	}
	if path.Clean(dst) == "/" {
		return fmt.Errorf("invalid mount path: '/': the destination can't be '/'")
	}
	return nil
}

// mountFromAPI checks one --mount (docker's API form) and resolves it.
func mountFromAPI(m mount.Mount) (state.MountPoint, *volumeRequest, error) {
	bad := func(format string, args ...any) error {
		return invalidf("invalid mount config for type %q: %s", m.Type, fmt.Sprintf(format, args...))
	}
	if m.Target == "" {
		return state.MountPoint{}, nil, bad("field Target must not be empty")
	}
	if err := checkDestination(m.Target); err != nil {
		return state.MountPoint{}, nil, bad("%v", err)
	}
	mp := state.MountPoint{Type: string(m.Type), Destination: path.Clean(m.Target), RW: !m.ReadOnly}
	if m.Type != mount.TypeBind && m.BindOptions != nil {
		return mp, nil, bad("bind options given for a non-bind mount")
	}
	if m.Type != mount.TypeVolume && m.VolumeOptions != nil {
		return mp, nil, bad("volume options given for a non-volume mount")
	}
	if m.Type != mount.TypeTmpfs && m.TmpfsOptions != nil {
		return mp, nil, bad("tmpfs options given for a non-tmpfs mount")
	}
	switch m.Type {
	case mount.TypeBind:
		if m.Source == "" {
			return mp, nil, bad("field Source must not be empty")
		}
		if !strings.HasPrefix(m.Source, "/") {
			return mp, nil, bad("invalid mount path: '%s' mount path must be absolute", m.Source)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return mp, nil, bad("bind source path does not exist: %s", m.Source)
		}
		mp.Source = path.Clean(m.Source)
		mp.Propagation = string(mount.PropagationRPrivate)
		if m.BindOptions != nil && m.BindOptions.Propagation != "" {
			ok := false
			for _, p := range mount.Propagations {
				ok = ok || p == m.BindOptions.Propagation
			}
			if !ok {
				return mp, nil, bad("invalid propagation mode: %s", m.BindOptions.Propagation)
			}
			mp.Propagation = string(m.BindOptions.Propagation)
		}
		return mp, nil, nil
	case mount.TypeVolume:
		req := &volumeRequest{name: m.Source, driver: "local"}
		if m.Source != "" && !state.ValidVolumeName(m.Source) {
			return mp, nil, bad("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed", m.Source)
		}
		mp.Name = m.Source
		if o := m.VolumeOptions; o != nil {
			mp.NoCopy = o.NoCopy
			if o.Subpath != "" {
				return mp, nil, bad("volume-subpath is not supported")
			}
			req.labels = o.Labels
			if o.DriverConfig != nil {
				if o.DriverConfig.Name != "" && o.DriverConfig.Name != "local" {
					return mp, nil, bad("volume driver %q is not supported (only local)", o.DriverConfig.Name)
				}
				req.options = o.DriverConfig.Options
				if err := checkVolumeOptions(req.options); err != nil {
					return mp, nil, bad("%v", err)
				}
			}
		}
		return mp, req, nil
	case mount.TypeTmpfs:
		if m.Source != "" {
			return mp, nil, bad("field Source must be empty for a tmpfs mount")
		}
		var opts []string
		if o := m.TmpfsOptions; o != nil {
			if o.SizeBytes < 0 {
				return mp, nil, bad("invalid tmpfs size %d", o.SizeBytes)
			}
			if o.SizeBytes > 0 {
				opts = append(opts, fmt.Sprintf("size=%dk", (o.SizeBytes+1023)/1024))
			}
			if o.Mode != 0 {
				opts = append(opts, fmt.Sprintf("mode=%o", uint32(o.Mode)&0o7777)) // docker reads tmpfs-mode as a raw octal number
			}
		}
		mp.TmpfsOptions = strings.Join(opts, ",")
		return mp, nil, nil
	case "":
		return mp, nil, invalidf("invalid mount config: type is missing (want bind, volume or tmpfs)")
	}
	return mp, nil, invalidf("invalid mount config: mount type %q is not supported (want bind, volume or tmpfs)", m.Type)
}

// checkVolumeOptions accepts the local driver's options berth implements:
// type=tmpfs (device=tmpfs, o=size=…,mode=…,uid=…,gid=…) and
// type=none with o=bind and an absolute device.
func checkVolumeOptions(opts map[string]string) error {
	if len(opts) == 0 {
		return nil
	}
	for k := range opts {
		switch k {
		case "type", "device", "o":
		default:
			return fmt.Errorf("invalid option key: %q (want type, device or o)", k)
		}
	}
	switch opts["type"] {
	case "tmpfs":
		for _, o := range strings.Split(opts["o"], ",") {
			k, _, _ := strings.Cut(o, "=")
			switch k {
			case "", "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "noexec", "nosuid", "nodev", "exec", "suid", "dev", "ro", "rw":
			default:
				return fmt.Errorf("unsupported tmpfs option %q", o)
			}
		}
		return nil
	case "none", "":
		bind := false
		for _, o := range strings.Split(opts["o"], ",") {
			if o == "bind" || o == "rbind" {
				bind = true
			}
		}
		if !bind {
			return fmt.Errorf("only tmpfs volumes (type=tmpfs) and bind volumes (type=none, o=bind) are supported")
		}
		dev := opts["device"]
		if !strings.HasPrefix(dev, "/") {
			return fmt.Errorf("a bind volume needs an absolute device path, got %q", dev)
		}
		if fi, err := os.Stat(dev); err != nil || !fi.IsDir() {
			return fmt.Errorf("bind volume device %s is not a directory", dev)
		}
		return nil
	}
	return fmt.Errorf("volume type %q is not supported (want tmpfs, or none with o=bind)", opts["type"])
}

// newVolumeName makes an anonymous volume's name: 64 hex digits, as docker.
func newVolumeName() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("naming volume: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// planMounts resolves a new container's mounts and checks them all before
// anything is created. --volumes-from comes first, then -v, then --mount
// (a later one at the same destination is an error), then the image's
// VOLUME entries where nothing else is mounted.
func (e *Engine) planMounts(hc *container.HostConfig, imageVolumes map[string]struct{}) (*mountPlan, error) {
	p := &mountPlan{}
	byDest := map[string]int{}
	explicit := map[string]bool{}
	add := func(mp state.MountPoint, req *volumeRequest, fromFlag bool) error {
		if i, ok := byDest[mp.Destination]; ok {
			if fromFlag && explicit[mp.Destination] {
				return invalidf("duplicate mount point: %s", mp.Destination)
			}
			if !fromFlag {
				return nil
			}
			p.mounts[i] = mp // a flag overrides --volumes-from
		} else {
			byDest[mp.Destination] = len(p.mounts)
			p.mounts = append(p.mounts, mp)
		}
		if fromFlag {
			explicit[mp.Destination] = true
		}
		if req != nil {
			p.volumes = append(p.volumes, *req)
		}
		return nil
	}
	for _, from := range hc.VolumesFrom {
		ref, mode, _ := strings.Cut(from, ":")
		switch mode {
		case "", "ro", "rw":
		default:
			return nil, invalidf("--volumes-from %q: invalid mode %q (want ro or rw)", from, mode)
		}
		id, err := e.containers.Resolve(ref)
		if err != nil {
			return nil, invalidf("--volumes-from %q: no such container: %s", from, ref)
		}
		src, err := e.containers.Record(id)
		if err != nil {
			return nil, invalidf("--volumes-from %q: %v", from, err)
		}
		for _, mp := range src.Mounts {
			if mp.Type == "tmpfs" {
				continue
			}
			if mode != "" {
				mp.RW = mode == "rw"
			}
			mp.NoCopy = true // its content is the other container's
			if err := add(mp, nil, false); err != nil {
				return nil, err
			}
		}
	}
	for _, spec := range hc.Binds {
		mp, err := ParseBind(spec)
		if err != nil {
			return nil, err
		}
		var req *volumeRequest
		if mp.Type == "volume" {
			if mp.Name == "" {
				if mp.Name, err = newVolumeName(); err != nil {
					return nil, err
				}
				req = &volumeRequest{name: mp.Name, driver: "local", labels: map[string]string{state.AnonymousLabel: ""}}
			} else {
				req = &volumeRequest{name: mp.Name, driver: "local"}
			}
		} else if _, err := os.Stat(mp.Source); err != nil {
			p.hostDirs = append(p.hostDirs, mp.Source)
		}
		if err := add(mp, req, true); err != nil {
			return nil, err
		}
	}
	for _, m := range hc.Mounts {
		mp, req, err := mountFromAPI(m)
		if err != nil {
			return nil, err
		}
		if req != nil && req.name == "" {
			if req.name, err = newVolumeName(); err != nil {
				return nil, err
			}
			mp.Name = req.name
			if req.labels == nil {
				req.labels = map[string]string{}
			}
			req.labels[state.AnonymousLabel] = ""
		}
		if err := add(mp, req, true); err != nil {
			return nil, err
		}
	}
	for d := range hc.Tmpfs {
		if explicit[path.Clean(d)] {
			return nil, invalidf("duplicate mount point: %s", path.Clean(d))
		}
		byDest[path.Clean(d)] = -1 // an image VOLUME there stays unmounted
	}
	var dests []string
	for d := range imageVolumes {
		dests = append(dests, d)
	}
	sort.Strings(dests)
	for _, d := range dests {
		if !strings.HasPrefix(d, "/") {
			d = "/" + d
		}
		d = path.Clean(d)
		if d == "/" {
			continue
		}
		if _, ok := byDest[d]; ok {
			continue
		}
		name, err := newVolumeName()
		if err != nil {
			return nil, err
		}
		add(state.MountPoint{Type: "volume", Name: name, Destination: d, RW: true},
			&volumeRequest{name: name, driver: "local", labels: map[string]string{state.AnonymousLabel: ""}}, false)
	}
	// Parents before children: /a is mounted before /a/b.
	sort.SliceStable(p.mounts, func(i, j int) bool {
		return strings.Count(p.mounts[i].Destination, "/") < strings.Count(p.mounts[j].Destination, "/")
	})
	return p, nil
}
