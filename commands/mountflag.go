package commands

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/mount"
)

// parseMount reads one --mount value, docker's CSV syntax:
//
//	type=bind|volume|tmpfs,source=,target=,readonly,bind-propagation=,
//	volume-nocopy,volume-label=K=V,volume-driver=,volume-opt=K=V,
//	tmpfs-size=,tmpfs-mode=
//
// type defaults to volume, as in docker.
func parseMount(value string) (mount.Mount, error) {
	bad := func(format string, args ...any) error {
		return usagef("invalid argument %q for \"--mount\" flag: "+format, append([]any{value}, args...)...)
	}
	r := csv.NewReader(strings.NewReader(value))
	fields, err := r.Read()
	if err != nil {
		return mount.Mount{}, bad("%v", err)
	}
	m := mount.Mount{Type: mount.TypeVolume}
	bindOpts := func() *mount.BindOptions {
		if m.BindOptions == nil {
			m.BindOptions = &mount.BindOptions{}
		}
		return m.BindOptions
	}
	volOpts := func() *mount.VolumeOptions {
		if m.VolumeOptions == nil {
			m.VolumeOptions = &mount.VolumeOptions{}
		}
		return m.VolumeOptions
	}
	tmpfsOpts := func() *mount.TmpfsOptions {
		if m.TmpfsOptions == nil {
			m.TmpfsOptions = &mount.TmpfsOptions{}
		}
		return m.TmpfsOptions
	}
	driver := func() *mount.Driver {
		o := volOpts()
		if o.DriverConfig == nil {
			o.DriverConfig = &mount.Driver{}
		}
		return o.DriverConfig
	}
	boolValue := func(key, val string, hasVal bool) (bool, error) {
		if !hasVal {
			return true, nil
		}
		switch strings.ToLower(val) {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
		return false, bad("invalid value for %s: %s", key, val)
	}
	for _, field := range fields {
		key, val, hasVal := strings.Cut(field, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		switch key {
		case "readonly", "ro":
			if m.ReadOnly, err = boolValue(key, val, hasVal); err != nil {
				return m, err
			}
			continue
		case "volume-nocopy":
			b, err := boolValue(key, val, hasVal)
			if err != nil {
				return m, err
			}
			volOpts().NoCopy = b
			continue
		case "bind-nonrecursive":
			return m, bad("bind-nonrecursive is not supported")
		}
		if !hasVal {
			return m, bad("invalid field '%s' must be a key=value pair", field)
		}
		switch key {
		case "type":
			m.Type = mount.Type(strings.ToLower(val))
		case "source", "src":
			m.Source = val
			if strings.HasPrefix(val, ".") {
				if abs, err := filepath.Abs(val); err == nil {
					m.Source = abs
				}
			}
		case "target", "dst", "destination":
			m.Target = val
		case "bind-propagation":
			bindOpts().Propagation = mount.Propagation(strings.ToLower(val))
		case "consistency":
			m.Consistency = mount.Consistency(strings.ToLower(val))
		case "volume-label":
			k, v, _ := strings.Cut(val, "=")
			o := volOpts()
			if o.Labels == nil {
				o.Labels = map[string]string{}
			}
			o.Labels[k] = v
		case "volume-driver":
			driver().Name = val
		case "volume-opt":
			k, v, ok := strings.Cut(val, "=")
			if !ok {
				return m, bad("invalid volume-opt '%s': want KEY=VALUE", val)
			}
			d := driver()
			if d.Options == nil {
				d.Options = map[string]string{}
			}
			d.Options[k] = v
		case "volume-subpath":
			volOpts().Subpath = val
		case "tmpfs-size":
			n, err := parseSize(val)
			if err != nil || n <= 0 {
				return m, bad("invalid tmpfs-size '%s'", val)
			}
			tmpfsOpts().SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return m, bad("invalid tmpfs-mode '%s': want an octal mode", val)
			}
			tmpfsOpts().Mode = os.FileMode(n)
		default:
			return m, bad("unexpected key '%s' in '%s'", key, field)
		}
	}
	if m.Target == "" {
		return m, bad("target is required")
	}
	return m, nil
}

// parseVolumeFlag reads one -v value. A source starting with "." is a
// host path relative to the working directory (docker's CLI does the
// same); everything else is checked by the engine.
func parseVolumeFlag(spec string) string {
	if strings.HasPrefix(spec, ".") {
		if src, rest, ok := strings.Cut(spec, ":"); ok {
			if abs, err := filepath.Abs(src); err == nil {
				return abs + ":" + rest
			}
		}
	}
	return spec
}
