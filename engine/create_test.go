package engine

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/storage"
)

func testImage(entrypoint, cmd []string) *storage.Image {
	return &storage.Image{ID: "abc", Config: &v1.ConfigFile{Config: v1.Config{
		Entrypoint: entrypoint, Cmd: cmd, Env: []string{"PATH=/bin", "A=image"}, WorkingDir: "/srv",
		User: "daemon", Labels: map[string]string{"from": "image", "both": "image"},
	}}}
}

func TestNewRecordMergesLikeDocker(t *testing.T) {
	cases := []struct {
		name             string
		imgEntry, imgCmd []string
		entry, cmd       []string
		wantPath         string
		wantArgs         []string
	}{
		{"image cmd", nil, []string{"sh"}, nil, nil, "sh", []string{}},
		{"cmd overrides", nil, []string{"sh"}, nil, []string{"echo", "hi"}, "echo", []string{"hi"}},
		{"entrypoint keeps image cmd", []string{"/e"}, []string{"x"}, nil, nil, "/e", []string{"x"}},
		{"entrypoint plus args", []string{"/e"}, []string{"x"}, nil, []string{"y"}, "/e", []string{"y"}},
		{"--entrypoint drops image cmd", []string{"/e"}, []string{"x"}, []string{"/f"}, nil, "/f", []string{}},
		{"--entrypoint '' clears", []string{"/e"}, []string{"x"}, []string{""}, []string{"ls"}, "ls", []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, err := newRecord(CreateOptions{
				Config:     &container.Config{Image: "img", Entrypoint: c.entry, Cmd: c.cmd},
				HostConfig: &container.HostConfig{},
			}, testImage(c.imgEntry, c.imgCmd))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Path != c.wantPath || !reflect.DeepEqual(append([]string{}, rec.Args...), c.wantArgs) {
				t.Errorf("argv = %q %q, want %q %q", rec.Path, rec.Args, c.wantPath, c.wantArgs)
			}
		})
	}
}

func TestNewRecordDefaults(t *testing.T) {
	rec, err := newRecord(CreateOptions{
		Config: &container.Config{Image: "img", Env: []string{"A=mine", "B=2"},
			Labels: map[string]string{"both": "mine"}},
		HostConfig: &container.HostConfig{},
	}, testImage(nil, []string{"sh"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=/bin", "A=mine", "B=2"}; !reflect.DeepEqual(rec.Config.Env, want) {
		t.Errorf("Env = %q, want %q", rec.Config.Env, want)
	}
	if rec.Config.WorkingDir != "/srv" || rec.Config.User != "daemon" {
		t.Errorf("image WorkingDir/User not kept: %q %q", rec.Config.WorkingDir, rec.Config.User)
	}
	if rec.Config.Labels["from"] != "image" || rec.Config.Labels["both"] != "mine" {
		t.Errorf("labels = %v", rec.Config.Labels)
	}
	if rec.Config.Hostname != rec.ID[:12] {
		t.Errorf("hostname = %q, want the short ID %q", rec.Config.Hostname, rec.ID[:12])
	}
	if len(rec.ID) != 64 {
		t.Errorf("ID %q is not 64 hex digits", rec.ID)
	}
	if rec.HostConfig.NetworkMode != "bridge" || rec.HostConfig.LogConfig.Type != "json-file" {
		t.Errorf("host config defaults: %+v", rec.HostConfig)
	}
}

func TestNewRecordNoCommand(t *testing.T) {
	_, err := newRecord(CreateOptions{Config: &container.Config{Image: "img"}, HostConfig: &container.HostConfig{}}, testImage(nil, nil))
	if err == nil {
		t.Fatal("an image without CMD and no command given was accepted")
	}
}
