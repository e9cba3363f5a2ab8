package commands

import (
	"io"
	"strings"
	"testing"
)

func TestReorderArgsImageSubcommands(t *testing.T) {
	app := NewApp(io.Discard, io.Discard)
	for in, want := range map[string]string{
		"berth image rm busybox -f":                  "berth image rm -f -- busybox",
		"berth image ls --format {{.ID}} busybox":    "berth image ls --format {{.ID}} -- busybox",
		"berth image save busybox -o x.tar":          "berth image save -o x.tar -- busybox",
		"berth rmi a b -f":                           "berth rmi -f -- a b",
		"berth save --format oci-archive -o f.tar a": "berth save --format oci-archive -o f.tar -- a",
	} {
		got := strings.Join(reorderArgs(app, strings.Fields(in)), " ")
		if got != want {
			t.Errorf("reorderArgs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseFilters(t *testing.T) {
	filters, err := parseFilters([]string{"dangling=true", "label=a=b", "label!=c", "reference=x*"})
	if err != nil {
		t.Fatal(err)
	}
	if filters["dangling"][0] != "true" || filters["label"][0] != "a=b" || filters["label!"][0] != "c" || filters["reference"][0] != "x*" {
		t.Errorf("filters %v", filters)
	}
	if _, err := parseFilters([]string{"dangling"}); err == nil {
		t.Error("a filter without = accepted")
	}
}
