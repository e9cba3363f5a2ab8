package engine

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/berth-dev/berth/state"
)

func TestParseBind(t *testing.T) {
	cases := []struct {
		spec string
		want state.MountPoint
	}{
		{"/data", state.MountPoint{Type: "volume", Destination: "/data", RW: true}},
		{"name:/data", state.MountPoint{Type: "volume", Name: "name", Destination: "/data", Mode: "z", RW: true}},
		{"name:/data/:ro", state.MountPoint{Type: "volume", Name: "name", Destination: "/data", Mode: "ro", RW: false}},
		{"name:/data:nocopy,rw", state.MountPoint{Type: "volume", Name: "name", Destination: "/data", Mode: "nocopy,rw", RW: true, NoCopy: true}},
		{"/host:/ctr", state.MountPoint{Type: "bind", Source: "/host", Destination: "/ctr", RW: true, Propagation: "rprivate"}},
		{"/host/../h:/ctr:ro,Z,rslave", state.MountPoint{Type: "bind", Source: "/h", Destination: "/ctr", Mode: "ro,Z,rslave", Propagation: "rslave"}},
		{"/host:/ctr:z,cached", state.MountPoint{Type: "bind", Source: "/host", Destination: "/ctr", Mode: "z,cached", RW: true, Propagation: "rprivate"}},
	}
	for _, c := range cases {
		got, err := ParseBind(c.spec)
		if err != nil {
			t.Errorf("ParseBind(%q): %v", c.spec, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseBind(%q) = %+v, want %+v", c.spec, got, c.want)
		}
	}
}

func TestParseBindErrors(t *testing.T) {
	cases := map[string]string{
		"":                    "empty section",
		"rel":                 "must be absolute",
		"name:rel":            "'rel' mount path must be absolute",
		"/a:/b:ro:x":          "too many colons",
		"/a:ro":               "takes no mode",
		"name:/":              "can't be '/'",
		"/h:/c:rx":            "invalid mode: rx",
		"/h:/c:ro,rw":         "more than one access mode",
		"/h:/c:z,Z":           "more than one label mode",
		"/h:/c:shared,slave":  "more than one propagation mode",
		"name:/c:rshared":     "bind mounts only",
		"/h:/c:nocopy":        "volumes only",
		"a:/c":                "invalid characters",
		"bad$name:/c":         "invalid characters",
		":/c":                 "empty section",
		"/h::ro":              "empty section",
		"./rel:/c":            "invalid characters", // the CLI makes ./ absolute before
		"name:/c:":            "empty section",
		"/h:/c:ro,,":          "invalid mode",
		"name:/c:propagation": "invalid mode: propagation",
	}
	for spec, want := range cases {
		_, err := ParseBind(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseBind(%q) = %v, want an error containing %q", spec, err, want)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseBind(%q): error %v is not ErrInvalid", spec, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseBind(%q): error spans lines: %q", spec, err)
		}
	}
}

func TestMountFromAPI(t *testing.T) {
	dir := t.TempDir()
	mp, req, err := mountFromAPI(mount.Mount{Type: mount.TypeBind, Source: dir, Target: "/x/", ReadOnly: true,
		BindOptions: &mount.BindOptions{Propagation: mount.PropagationRShared}})
	if err != nil || req != nil {
		t.Fatalf("bind: %v %v", err, req)
	}
	if want := (state.MountPoint{Type: "bind", Source: dir, Destination: "/x", Propagation: "rshared"}); mp != want {
		t.Errorf("bind = %+v, want %+v", mp, want)
	}
	mp, req, err = mountFromAPI(mount.Mount{Type: mount.TypeVolume, Source: "v1", Target: "/v",
		VolumeOptions: &mount.VolumeOptions{NoCopy: true, Labels: map[string]string{"a": "b"},
			DriverConfig: &mount.Driver{Options: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}}})
	if err != nil || req == nil {
		t.Fatalf("volume: %v %v", err, req)
	}
	if !mp.NoCopy || mp.Name != "v1" || !mp.RW || req.labels["a"] != "b" || req.options["type"] != "tmpfs" {
		t.Errorf("volume = %+v / %+v", mp, req)
	}
	mp, _, err = mountFromAPI(mount.Mount{Type: mount.TypeTmpfs, Target: "/t",
		TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1 << 20, Mode: 0o1770}})
	if err != nil || mp.TmpfsOptions != "size=1024k,mode=1770" {
		t.Errorf("tmpfs = %+v, %v", mp, err)
	}

	bad := []struct {
		m    mount.Mount
		want string
	}{
		{mount.Mount{Type: mount.TypeBind, Source: dir + "/missing", Target: "/x"}, "bind source path does not exist"},
		{mount.Mount{Type: mount.TypeBind, Target: "/x"}, "Source must not be empty"},
		{mount.Mount{Type: mount.TypeBind, Source: "rel", Target: "/x"}, "must be absolute"},
		{mount.Mount{Type: mount.TypeBind, Source: dir}, "Target must not be empty"},
		{mount.Mount{Type: mount.TypeBind, Source: dir, Target: "x"}, "must be absolute"},
		{mount.Mount{Type: mount.TypeBind, Source: dir, Target: "/x", BindOptions: &mount.BindOptions{Propagation: "sideways"}}, "invalid propagation mode"},
		{mount.Mount{Type: mount.TypeVolume, Source: dir, Target: "/x"}, "invalid characters"},
		{mount.Mount{Type: mount.TypeVolume, Target: "/x", BindOptions: &mount.BindOptions{}}, "bind options"},
		{mount.Mount{Type: mount.TypeTmpfs, Target: "/x", VolumeOptions: &mount.VolumeOptions{}}, "volume options"},
		{mount.Mount{Type: mount.TypeTmpfs, Source: "x", Target: "/x"}, "Source must be empty"},
		{mount.Mount{Type: mount.TypeVolume, Target: "/x", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "nfs"}}}, "not supported"},
		{mount.Mount{Type: mount.TypeVolume, Target: "/x", VolumeOptions: &mount.VolumeOptions{Subpath: "a"}}, "subpath"},
		{mount.Mount{Type: "npipe", Target: "/x"}, "not supported"},
		{mount.Mount{Target: "/x"}, "type is missing"},
	}
	for _, c := range bad {
		_, _, err := mountFromAPI(c.m)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("mountFromAPI(%+v) = %v, want ErrInvalid containing %q", c.m, err, c.want)
		}
	}
}

func TestCheckVolumeOptions(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/f"
	os.WriteFile(file, nil, 0o644)
	good := []map[string]string{
		nil,
		{"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=1777,uid=1000"},
		{"type": "none", "o": "bind", "device": dir},
	}
	for _, o := range good {
		if err := checkVolumeOptions(o); err != nil {
			t.Errorf("checkVolumeOptions(%v): %v", o, err)
		}
	}
	bad := map[string]map[string]string{
		"invalid option key":  {"type": "tmpfs", "colour": "red"},
		"unsupported tmpfs":   {"type": "tmpfs", "o": "huge=1"},
		"not supported":       {"type": "ext4", "device": "/dev/sda1"},
		"only tmpfs volumes":  {"type": "none", "device": dir},
		"absolute device":     {"type": "none", "o": "bind", "device": "rel"},
		"is not a directory":  {"type": "none", "o": "bind", "device": file},
		"is not a directory ": {"type": "none", "o": "bind", "device": dir + "/missing"},
	}
	for want, o := range bad {
		err := checkVolumeOptions(o)
		if err == nil || !strings.Contains(err.Error(), strings.TrimSpace(want)) {
			t.Errorf("checkVolumeOptions(%v) = %v, want %q", o, err, want)
		}
	}
}

func TestPlanMountsOrderAndOverrides(t *testing.T) {
	e := testEngine(t)
	hc := &container.HostConfig{
		Binds:  []string{"/h:/a/b", "named:/a"},
		Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Target: "/t"}},
		Tmpfs:  map[string]string{"/img2": ""},
	}
	p, err := e.planMounts(hc, map[string]struct{}{"/a": {}, "/img": {}, "img2": {}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range p.mounts {
		got = append(got, m.Type+":"+m.Destination)
	}
	// Parents first; the image's /a is taken by -v, its /img2 by --tmpfs.
	if len(got) != 4 || got[0] != "volume:/a" || got[3] != "bind:/a/b" {
		t.Errorf("mounts = %v, want /a first, /a/b last, 4 in all", got)
	}
	if len(p.volumes) != 2 { // named, and the anonymous one for /img
		t.Errorf("volumes = %+v", p.volumes)
	}
	for _, v := range p.volumes {
		if v.name != "named" && (len(v.name) != 64 || v.labels[state.AnonymousLabel] != "") {
			t.Errorf("volume %+v: want named or a labelled 64-hex anonymous one", v)
		}
	}
	if len(p.hostDirs) != 1 || p.hostDirs[0] != "/h" {
		t.Errorf("hostDirs = %v", p.hostDirs)
	}
	for _, hc := range []*container.HostConfig{
		{Binds: []string{"a1:/x", "/x"}},
		{Binds: []string{"a1:/x"}, Mounts: []mount.Mount{{Type: mount.TypeTmpfs, Target: "/x/"}}},
		{Binds: []string{"a1:/x"}, Tmpfs: map[string]string{"/x": ""}},
	} {
		if _, err := e.planMounts(hc, nil); err == nil || !strings.Contains(err.Error(), "duplicate mount point: /x") {
			t.Errorf("planMounts(%+v) = %v, want a duplicate mount point", hc, err)
		}
	}
	if _, err := e.planMounts(&container.HostConfig{VolumesFrom: []string{"ghost"}}, nil); err == nil || !strings.Contains(err.Error(), "no such container: ghost") {
		t.Errorf("volumes-from ghost: %v", err)
	}
}
