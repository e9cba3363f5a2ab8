package engine

import (
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

func TestParseRestartPolicy(t *testing.T) {
	good := map[string]container.RestartPolicy{
		"":               {Name: "no"},
		"no":             {Name: "no"},
		"always":         {Name: "always"},
		"unless-stopped": {Name: "unless-stopped"},
		"on-failure":     {Name: "on-failure"},
		"on-failure:3":   {Name: "on-failure", MaximumRetryCount: 3},
		"on-failure:0":   {Name: "on-failure"},
	}
	for in, want := range good {
		got, err := ParseRestartPolicy(in)
		if err != nil || got != want {
			t.Errorf("ParseRestartPolicy(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"bogus", "always:3", "no:1", "on-failure:x", "on-failure:-1", "unless-stopped:", "on-failure:"} {
		if _, err := ParseRestartPolicy(in); err == nil {
			t.Errorf("ParseRestartPolicy(%q): no error", in)
		}
	}
	if err := validateRestartPolicy(container.RestartPolicy{Name: "always"}, true); err == nil {
		t.Errorf("--rm with always: no error")
	}
	if err := validateRestartPolicy(container.RestartPolicy{Name: "no"}, true); err != nil {
		t.Errorf("--rm with no: %v", err)
	}
}

func TestRestartBackoff(t *testing.T) {
	b := &restartBackoff{max: restartBackoffMax}
	quick := time.Second
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	for i, w := range want {
		if got := b.next(quick); got != w {
			t.Fatalf("restart %d: %v, want %v", i+1, got, w)
		}
	}
	for i := 0; i < 20; i++ {
		b.next(quick)
	}
	if got := b.next(quick); got != time.Minute {
		t.Fatalf("capped: %v, want 1m", got)
	}
	if got := b.next(10 * time.Second); got != 100*time.Millisecond {
		t.Fatalf("after a run of 10s: %v, want 100ms", got)
	}
	t.Setenv(RestartBackoffMaxEnv, "300ms")
	b = newRestartBackoff()
	for i := 0; i < 5; i++ {
		b.next(quick)
	}
	if got := b.next(quick); got != 300*time.Millisecond {
		t.Fatalf("with %s=300ms: %v", RestartBackoffMaxEnv, got)
	}
}
