package engine

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCopyOutputSplitsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctr.log")
	log, err := openJSONLog(path)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("z", 20<<10)
	var echo bytes.Buffer
	copyOutput(strings.NewReader("one\ntwo\npartial"+"\n"+long), "stderr", log, &echo)
	log.Close()
	if echo.String() != "one\ntwo\npartial\n"+long {
		t.Errorf("output passed through changed")
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var got []string
	for _, l := range lines {
		var e logEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("bad log line %q: %v", l, err)
		}
		if e.Stream != "stderr" || e.Time.IsZero() {
			t.Errorf("entry %+v lacks stream or time", e)
		}
		got = append(got, e.Log)
	}
	want := []string{"one\n", "two\n", "partial\n", long[:16<<10], long[16<<10:]}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %.20q…, want %.20q…", i, got[i], want[i])
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, []string{"B=3", "C=4"})
	if strings.Join(got, " ") != "A=1 B=3 C=4" {
		t.Errorf("mergeEnv = %q", got)
	}
}

func TestReadEntriesKeepsPartialLine(t *testing.T) {
	entries, rest, err := readEntries(strings.NewReader(`{"log":"a\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}` + "\n" + `{"log":"b`))
	if err != nil || len(entries) != 1 || entries[0].Log != "a\n" || string(rest) != `{"log":"b` {
		t.Errorf("readEntries = %+v, %q, %v", entries, rest, err)
	}
}
