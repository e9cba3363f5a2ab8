package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseUserns(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    usernsMode
		errPart string // "" for no error
	}{
		{"", usernsMode{}, ""},
		{"host", usernsMode{}, ""},
		{"keep-id", usernsMode{kind: usernsKeepID}, ""},
		{"nomap", usernsMode{kind: usernsNomap}, ""},
		{"auto", usernsMode{kind: usernsAuto}, ""},
		{"auto:size=8192", usernsMode{kind: usernsAuto, size: 8192}, ""},
		{"auto:size=abc", usernsMode{}, `invalid size "abc"`},
		{"auto:size=0", usernsMode{}, `invalid size "0"`},
		{"auto:size=", usernsMode{}, `invalid size ""`},
		{"auto:bogus=1", usernsMode{}, `unknown auto option "bogus=1"`},
		{"auto:uidmapping=0:1:10", usernsMode{}, "uidmapping is not supported"},
		{"bogus", usernsMode{}, `unknown mode "bogus"`},
		{"host:x", usernsMode{}, `unknown mode "host"`},
		{"keep-id:uid=1", usernsMode{}, "takes no options"},
		{"ns:/proc/1/ns/user", usernsMode{}, `unknown mode "ns"`},
	} {
		got, err := parseUserns(c.in)
		switch {
		case c.errPart == "" && err != nil:
			t.Errorf("parseUserns(%q): %v", c.in, err)
		case c.errPart != "" && (err == nil || !strings.Contains(err.Error(), c.errPart) || !errors.Is(err, ErrInvalid)):
			t.Errorf("parseUserns(%q) = %v, want an invalid-argument error with %q", c.in, err, c.errPart)
		case c.errPart == "" && got != c.want:
			t.Errorf("parseUserns(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("parseUserns(%q): error on several lines: %q", c.in, err)
		}
	}
}

func TestIDMapsHelpers(t *testing.T) {
	m := &idMaps{uid: []idMap{{0, 1025, 2000}}, gid: []idMap{{0, 1025, 2000}}}
	if m.mapsHost(0) || !m.mapsHost(1025) || !m.mapsHost(3024) || m.mapsHost(3025) {
		t.Errorf("mapsHost wrong for %+v", m)
	}
	if u, g := m.rootHost(); u != 1025 || g != 1025 {
		t.Errorf("rootHost = %d, %d", u, g)
	}
	k := &idMaps{uid: keepIDMap(1001, 65537), gid: keepIDMap(1001, 65537)}
	if !k.mapsHost(0) {
		t.Errorf("keep-id maps leave out the user")
	}
	back := mapsFromRecord(m.record())
	if back.uid[0] != m.uid[0] || back.gid[0] != m.gid[0] {
		t.Errorf("record round trip: %+v", back)
	}
	if got := inspectIDMappings(m.record()); got.UIDMap[0] != "0:1025:2000" || got.GIDMap[0] != "0:1025:2000" {
		t.Errorf("inspectIDMappings = %+v", got)
	}
}

func TestMakeAccessible(t *testing.T) {
	top := t.TempDir()
	deep := filepath.Join(top, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(top, "a"), filepath.Join(top, "a", "b")} {
		os.Chmod(d, 0o700)
	}
	if err := makeAccessible(deep, 123456, 123456); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{deep, filepath.Join(top, "a", "b"), filepath.Join(top, "a")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o711 {
			t.Errorf("%s: mode %v, want search for all (0711) and no more", d, fi.Mode().Perm())
		}
	}
}

func TestCheckAutoRanges(t *testing.T) {
	dir := t.TempDir()
	subuidFile, subgidFile = filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	t.Cleanup(func() { subuidFile, subgidFile = "/etc/subuid", "/etc/subgid" })
	os.WriteFile(subuidFile, []byte("berthtest:100000:65536\ncontainers:2147483647:2147483648\n"), 0o644)
	os.WriteFile(subgidFile, []byte("berthtest:100000:65536\n"), 0o644)
	err := checkAutoRanges()
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `ranges of user "containers"`) || !strings.Contains(err.Error(), subgidFile+" has none") {
		t.Errorf("without containers in subgid: %v", err)
	}
	os.WriteFile(subgidFile, []byte("containers:2147483647:2147483648\n"), 0o644)
	if err := checkAutoRanges(); err != nil {
		t.Errorf("with ranges in both: %v", err)
	}
}
