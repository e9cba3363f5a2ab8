package engine

import (
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/state"
)

func TestMergeHealthcheck(t *testing.T) {
	img := &v1.HealthConfig{Test: []string{"CMD-SHELL", "img"}, Interval: time.Second, Timeout: 2 * time.Second, Retries: 4}
	if got := mergeHealthcheck(nil, nil); got != nil {
		t.Fatalf("no healthcheck: got %+v", got)
	}
	got := mergeHealthcheck(nil, img)
	if got.Test[1] != "img" || got.Interval != time.Second || got.Retries != 4 {
		t.Fatalf("image's: got %+v", got)
	}
	got = mergeHealthcheck(&container.HealthConfig{Test: []string{"CMD-SHELL", "mine"}, Retries: 1}, img)
	if got.Test[1] != "mine" || got.Retries != 1 || got.Interval != time.Second || got.Timeout != 2*time.Second {
		t.Fatalf("merged: got %+v", got)
	}
	got = mergeHealthcheck(&container.HealthConfig{Interval: 5 * time.Second}, img)
	if got.Test[1] != "img" || got.Interval != 5*time.Second {
		t.Fatalf("inherited test: got %+v", got)
	}
	got = mergeHealthcheck(&container.HealthConfig{Test: []string{"NONE"}}, img)
	if healthcheckOf(&container.Config{Healthcheck: got}) != nil {
		t.Fatalf("NONE must disable: got %+v", got)
	}
}

func TestValidateHealthcheck(t *testing.T) {
	for _, h := range []*container.HealthConfig{
		{Interval: time.Microsecond},
		{Timeout: -time.Second},
		{Retries: -1},
		{Test: []string{"CMD"}},
		{Test: []string{"CMD-SHELL"}},
		{Test: []string{"BOGUS", "x"}},
	} {
		if validateHealthcheck(h) == nil {
			t.Errorf("%+v: accepted", h)
		}
	}
	for _, h := range []*container.HealthConfig{nil, {}, {Test: []string{"NONE"}}, {Test: []string{"CMD", "true"}, Interval: time.Millisecond}} {
		if err := validateHealthcheck(h); err != nil {
			t.Errorf("%+v: %v", h, err)
		}
	}
}

func TestLimitedBuffer(t *testing.T) {
	var b limitedBuffer
	b.Write(make([]byte, healthMaxOutput-1))
	b.Write([]byte("ab"))
	if s := b.String(); len(s) != healthMaxOutput+3 || s[len(s)-3:] != "..." {
		t.Fatalf("len %d, tail %q", len(s), s[len(s)-4:])
	}
}

// recordHealth follows docker's rules on a container's state.
func TestRecordHealth(t *testing.T) {
	e := testEngine(t)
	rec := &state.Record{ID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Name: "h",
		Config: &container.Config{}, HostConfig: &container.HostConfig{}}
	if err := e.containers.Create(rec); err != nil {
		t.Fatal(err)
	}
	started := time.Now().Add(-time.Minute)
	e.containers.SaveState(rec.ID, &state.State{Status: state.StatusRunning, Pid: 42, StartedAt: started,
		Health: &container.Health{Status: container.Starting}})
	h := &container.HealthConfig{Test: []string{"CMD", "x"}, Retries: 2, StartPeriod: 2 * time.Minute}
	result := func(code int) *container.HealthcheckResult {
		return &container.HealthcheckResult{Start: time.Now(), End: time.Now(), ExitCode: code}
	}
	check := func(code int, want container.HealthStatus, streak int) {
		t.Helper()
		got, err := e.recordHealth(rec.ID, 42, h, result(code))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := e.containers.State(rec.ID)
		if got != want || st.Health.Status != want || st.Health.FailingStreak != streak {
			t.Fatalf("exit %d: got %s/%s streak %d, want %s streak %d", code, got, st.Health.Status, st.Health.FailingStreak, want, streak)
		}
	}
	check(1, container.Starting, 0) // within the start period: not counted
	check(1, container.Starting, 0)
	check(0, container.Healthy, 0) // a success ends the grace
	check(1, container.Healthy, 1)
	check(1, container.Unhealthy, 2)
	check(1, container.Unhealthy, 3)
	check(0, container.Healthy, 0)
	st, _ := e.containers.State(rec.ID)
	if len(st.Health.Log) != healthMaxLog {
		t.Fatalf("log has %d entries", len(st.Health.Log))
	}
	// A result of another run is dropped.
	if got, _ := e.recordHealth(rec.ID, 43, h, result(1)); got != "" {
		t.Fatalf("other run: got %q", got)
	}
}
