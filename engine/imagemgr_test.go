package engine

import (
	"testing"
	"time"
)

func TestReferenceMatches(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		name     string
		want     bool
	}{
		{[]string{"busybox"}, "docker.io/library/busybox:latest", true},
		{[]string{"busybox:latest"}, "docker.io/library/busybox:latest", true},
		{[]string{"busybox:1"}, "docker.io/library/busybox:latest", false},
		{[]string{"busy*"}, "docker.io/library/busybox:latest", true},
		{[]string{"*:latest"}, "docker.io/library/busybox:latest", true},
		{[]string{"*"}, "docker.io/foo/bar:1", false}, // * does not cross "/"
		{[]string{"foo/*"}, "docker.io/foo/bar:1", true},
		{[]string{"quay.io/x/*:2"}, "quay.io/x/y:2", true},
		{[]string{"nope", "bb*"}, "docker.io/library/bb:3", true},
	} {
		if got := referenceMatches(tc.patterns, tc.name); got != tc.want {
			t.Errorf("referenceMatches(%v, %s) = %v, want %v", tc.patterns, tc.name, got, tc.want)
		}
	}
}

func TestLabelsMatch(t *testing.T) {
	labels := map[string]string{"tier": "web", "color": "blue", "empty": ""}
	for _, tc := range []struct {
		filters []string
		want    bool
	}{
		{nil, true},
		{[]string{"tier"}, true},
		{[]string{"tier=web"}, true},
		{[]string{"tier=db"}, false},
		{[]string{"tier=web", "color=blue"}, true},
		{[]string{"tier=web", "color=red"}, false},
		{[]string{"empty="}, true},
		{[]string{"missing"}, false},
	} {
		if got := labelsMatch(labels, tc.filters); got != tc.want {
			t.Errorf("labelsMatch(%v) = %v, want %v", tc.filters, got, tc.want)
		}
	}
}

func TestSingleReference(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  bool
	}{
		{nil, false},
		{[]string{"docker.io/library/a:1"}, true},
		{[]string{"docker.io/library/a:1", "docker.io/library/a:2"}, false},
		{[]string{"docker.io/library/a:1", "docker.io/library/b:1"}, false},
		{[]string{"docker.io/library/a:1", "docker.io/library/a@sha256:" + hex64}, true},
		{[]string{"localhost:5000/a:1"}, true},
	} {
		if got := singleReference(tc.names); got != tc.want {
			t.Errorf("singleReference(%v) = %v, want %v", tc.names, got, tc.want)
		}
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestNameOf(t *testing.T) {
	names := []string{"docker.io/library/busybox:latest", "quay.io/x/y:2"}
	for ref, want := range map[string]string{
		"busybox":                 "docker.io/library/busybox:latest",
		"busybox:latest":          "docker.io/library/busybox:latest",
		"quay.io/x/y:2":           "quay.io/x/y:2",
		"quay.io/x/y":             "",
		"sha256:" + hex64[:12]:    "",
		hex64[:12]:                "",
		"busybox@sha256:" + hex64: "",
	} {
		if got := nameOf(ref, names); got != want {
			t.Errorf("nameOf(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if got, err := parseTimestamp("10m", now); err != nil || !got.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("10m: %v %v", got, err)
	}
	if got, err := parseTimestamp("1700000000", now); err != nil || got.Unix() != 1700000000 {
		t.Errorf("unix: %v %v", got, err)
	}
	if got, err := parseTimestamp("2024-01-02T03:04:05Z", now); err != nil || got.Unix() != 1704164645 {
		t.Errorf("rfc3339: %v %v", got, err)
	}
	if _, err := parseTimestamp("yesterday", now); err == nil {
		t.Error("accepted yesterday")
	}
}

func TestShortID(t *testing.T) {
	if got := shortID("sha256:" + hex64); got != hex64[:12] {
		t.Errorf("shortID = %s", got)
	}
}
