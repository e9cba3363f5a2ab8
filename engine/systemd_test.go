package engine

import (
	"errors"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/state"
)

func TestValidateLogging(t *testing.T) {
	cases := []struct {
		driver   string
		tty      bool
		sdnotify string
		ok       bool
	}{
		{"", false, "", true},
		{"json-file", true, "conmon", true},
		{"k8s-file", false, "container", true},
		{"none", true, "ignore", true},
		{"passthrough", false, "", true},
		{"passthrough", true, "", false},
		{"journald", false, "", false},
		{"json-file", false, "healthy", false},
	}
	for _, c := range cases {
		err := validateLogging(&container.Config{Tty: c.tty}, &container.HostConfig{LogConfig: container.LogConfig{Type: c.driver}}, c.sdnotify)
		if (err == nil) != c.ok {
			t.Errorf("validateLogging(%q, tty=%v, %q) = %v, want ok=%v", c.driver, c.tty, c.sdnotify, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("validateLogging(%q): %v is not ErrInvalid", c.driver, err)
		}
	}
	for driver, want := range map[string]string{"": "json-file", "k8s-file": "json-file", "none": "none", "passthrough": "passthrough"} {
		if got := logDriver(&container.HostConfig{LogConfig: container.LogConfig{Type: driver}}); got != want {
			t.Errorf("logDriver(%q) = %q, want %q", driver, got, want)
		}
	}
	for driver, readable := range map[string]bool{"json-file": true, "k8s-file": true, "none": false, "passthrough": false} {
		err := checkLogsReadable(&state.Record{HostConfig: &container.HostConfig{LogConfig: container.LogConfig{Type: driver}}})
		if (err == nil) != readable {
			t.Errorf("checkLogsReadable(%q) = %v", driver, err)
		}
	}
}
