package commands

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestReorderArgs(t *testing.T) {
	app := NewApp(io.Discard, io.Discard)
	cases := []struct{ in, want string }{
		{"berth rm abc -f", "berth rm -f -- abc"},
		{"berth --root /r logs web -n 2 -t", "berth --root /r logs -n 2 -t -- web"},
		{"berth run --rm img ls -l", "berth run --rm img ls -l"},
		{"berth create img sh -c x", "berth create img sh -c x"},
		{"berth ps -a", "berth ps -a"},
		{"berth stop -t 1 a b", "berth stop -t 1 -- a b"},
		{"berth import - name --change CMD=sh", "berth import --change CMD=sh -- - name"},
	}
	for _, c := range cases {
		got := strings.Join(reorderArgs(app, strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("reorderArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	cases := map[time.Duration]string{
		500 * time.Millisecond: "Less than a second",
		time.Second:            "1 second",
		42 * time.Second:       "42 seconds",
		90 * time.Second:       "About a minute",
		5 * time.Minute:        "5 minutes",
		time.Hour:              "About an hour",
		5 * time.Hour:          "5 hours",
		72 * time.Hour:         "3 days",
	}
	for d, want := range cases {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	cases := map[string]int64{"512": 512, "64k": 64 << 10, "64m": 64 << 20, "1g": 1 << 30, "2MB": 2 << 20}
	for in, want := range cases {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseSize("lots"); err == nil {
		t.Error("parseSize(lots) succeeded")
	}
}

func TestParseTimeArg(t *testing.T) {
	if got, err := parseTimeArg("since", "1700000000.5"); err != nil || got.UnixNano() != 1700000000500000000 {
		t.Errorf("unix seconds: %v %v", got, err)
	}
	if got, err := parseTimeArg("since", "2026-01-02T03:04:05Z"); err != nil || got.Year() != 2026 {
		t.Errorf("RFC 3339: %v %v", got, err)
	}
	if got, err := parseTimeArg("since", "10m"); err != nil || time.Since(got) < 9*time.Minute {
		t.Errorf("duration: %v %v", got, err)
	}
	if _, err := parseTimeArg("since", "yesterday"); err == nil {
		t.Error("bad time accepted")
	}
}

func TestWriteFormattedTable(t *testing.T) {
	type row struct{ A, B string }
	var buf bytes.Buffer
	err := writeFormatted(&buf, "table {{.A}}\t{{.B}}", []any{row{"x", "yy"}, row{"longer", "z"}}, map[string]string{"A": "COL A", "B": "COL B"})
	if err != nil {
		t.Fatal(err)
	}
	// docker pads columns to at least 10 characters, then 3 spaces.
	want := "COL A     COL B\nx         yy\nlonger    z\n"
	if buf.String() != want {
		t.Errorf("table output:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := writeFormatted(&buf, "{{json .}}", []any{row{"1", "2"}}, nil); err != nil || buf.String() != "{\"A\":\"1\",\"B\":\"2\"}\n" {
		t.Errorf("json output %q, %v", buf.String(), err)
	}
	if err := writeFormatted(&buf, "{{.A", nil, nil); err == nil {
		t.Error("a broken template was accepted")
	}
}

func TestParseEnv(t *testing.T) {
	t.Setenv("FROM_HOST", "h")
	got, err := parseEnv(nil, []string{"A=1", "FROM_HOST", "UNSET_VAR_XYZ", "B="})
	if err != nil || strings.Join(got, " ") != "A=1 FROM_HOST=h B=" {
		t.Errorf("parseEnv = %q, %v", got, err)
	}
	if _, err := parseEnv(nil, []string{"=x"}); err == nil {
		t.Error("an empty variable name was accepted")
	}
}
