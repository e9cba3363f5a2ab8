package commands

import (
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/state"
)

func TestStatusTextHealth(t *testing.T) {
	started := time.Now().Add(-3 * time.Second)
	cases := map[container.HealthStatus]string{
		container.Starting:  " (health: starting)",
		container.Healthy:   " (healthy)",
		container.Unhealthy: " (unhealthy)",
	}
	for status, suffix := range cases {
		st := &state.State{Status: state.StatusRunning, StartedAt: started, Health: &container.Health{Status: status}}
		if got := statusText(st); !strings.HasPrefix(got, "Up ") || !strings.HasSuffix(got, suffix) {
			t.Errorf("%s: %q", status, got)
		}
	}
	st := &state.State{Status: state.StatusPaused, StartedAt: started, Health: &container.Health{Status: container.Healthy}}
	if got := statusText(st); !strings.HasSuffix(got, " (Paused)") {
		t.Errorf("paused: %q", got)
	}
	st = &state.State{Status: state.StatusRunning, StartedAt: started}
	if got := statusText(st); strings.Contains(got, "(") {
		t.Errorf("no healthcheck: %q", got)
	}
}
