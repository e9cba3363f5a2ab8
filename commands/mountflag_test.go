package commands

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/mount"
)

func TestParseMount(t *testing.T) {
	cases := []struct {
		in   string
		want mount.Mount
	}{
		{"type=bind,source=/h,target=/c,readonly,bind-propagation=rslave",
			mount.Mount{Type: "bind", Source: "/h", Target: "/c", ReadOnly: true, BindOptions: &mount.BindOptions{Propagation: "rslave"}}},
		{"type=bind,src=/h,dst=/c,ro=false",
			mount.Mount{Type: "bind", Source: "/h", Target: "/c"}},
		{"source=v,destination=/c,volume-nocopy,volume-label=a=b,volume-opt=type=tmpfs,volume-opt=o=size=1m",
			mount.Mount{Type: "volume", Source: "v", Target: "/c", VolumeOptions: &mount.VolumeOptions{NoCopy: true,
				Labels: map[string]string{"a": "b"}, DriverConfig: &mount.Driver{Options: map[string]string{"type": "tmpfs", "o": "size=1m"}}}}},
		{"target=/anon", mount.Mount{Type: "volume", Target: "/anon"}},
		{"type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770",
			mount.Mount{Type: "tmpfs", Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 64 << 20, Mode: os.FileMode(0o1770)}}},
		// docker's CSV: a quoted field may hold a comma.
		{`type=volume,target=/v,"volume-opt=o=size=1m,mode=1777"`,
			mount.Mount{Type: "volume", Target: "/v", VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Options: map[string]string{"o": "size=1m,mode=1777"}}}}},
	}
	for _, c := range cases {
		got, err := parseMount(c.in)
		if err != nil {
			t.Errorf("parseMount(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseMount(%q) =\n %+v, want\n %+v", c.in, got, c.want)
		}
	}
}

func TestParseMountErrors(t *testing.T) {
	cases := map[string]string{
		"type=bind,source=/h,target=/c,colour=red":     "unexpected key 'colour' in 'colour=red'",
		"type=bind,source=/h":                          "target is required",
		"type=bind,source=/h,target=/c,readonly=maybe": "invalid value for readonly",
		"type=tmpfs,target=/t,tmpfs-size=lots":         "invalid tmpfs-size",
		"type=tmpfs,target=/t,tmpfs-mode=999":          "invalid tmpfs-mode",
		"type=volume,target=/t,volume-opt=novalue":     "invalid volume-opt",
		"type,target=/t":                               "must be a key=value pair",
		`type=bind,"source=/h`:                         "--mount",
	}
	for in, want := range cases {
		_, err := parseMount(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseMount(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestParseVolumeFlag(t *testing.T) {
	wd, _ := os.Getwd()
	if got := parseVolumeFlag("./d:/c:ro"); got != wd+"/d:/c:ro" {
		t.Errorf("parseVolumeFlag(./d:/c:ro) = %q", got)
	}
	for _, s := range []string{"/h:/c", "name:/c", "/c"} {
		if got := parseVolumeFlag(s); got != s {
			t.Errorf("parseVolumeFlag(%q) = %q", s, got)
		}
	}
}
