package engine

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseDetachKeys(t *testing.T) {
	cases := map[string][]byte{"": {16, 17}, "ctrl-p,ctrl-q": {16, 17}, "ctrl-a,d": {1, 'd'}, "ctrl-@": {0}, "x": {'x'}}
	for in, want := range cases {
		got, err := ParseDetachKeys(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ParseDetachKeys(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"ctrl-", "ctrl-1", "alt-x", "ab"} {
		if _, err := ParseDetachKeys(bad); err == nil {
			t.Errorf("ParseDetachKeys(%q) accepted", bad)
		}
	}
}

func TestCopyWithDetachKeys(t *testing.T) {
	keys := []byte{16, 17} // ctrl-p ctrl-q
	cases := []struct {
		in, want string
		detached bool
	}{
		{"hello\n", "hello\n", false},
		{"typed\n\x10\x11ignored", "typed\n", true},
		{"a\x10b\x10\x10\x11", "a\x10b\x10", true}, // a partial match is passed on
		{"x\x10", "x\x10", false},                  // a partial match at the end is flushed
	}
	for _, c := range cases {
		var sent bytes.Buffer
		err := copyWithDetachKeys(strings.NewReader(c.in), keys, func(p []byte) error { sent.Write(p); return nil })
		if errors.Is(err, ErrDetached) != c.detached {
			t.Errorf("%q: detached = %v, want %v", c.in, err, c.detached)
		}
		if sent.String() != c.want {
			t.Errorf("%q: sent %q, want %q", c.in, sent.String(), c.want)
		}
	}
}
