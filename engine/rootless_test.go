package engine

import (
	"reflect"
	"testing"
)

func TestKeepIDMap(t *testing.T) {
	for _, c := range []struct {
		own, n int
		want   []idMap
	}{
		// The user (1001) at itself, root at the first subordinate id.
		{1001, 65537, []idMap{{1001, 0, 1}, {0, 1, 1001}, {1002, 1002, 64535}}},
		{0, 65537, []idMap{{0, 0, 1}, {1, 1, 65536}}},
		// Fewer subordinate ids than the uid: root and the user only.
		{70000, 65537, []idMap{{0, 1, 1}, {70000, 0, 1}}},
	} {
		if got := keepIDMap(c.own, c.n); !reflect.DeepEqual(got, c.want) {
			t.Errorf("keepIDMap(%d, %d) = %v, want %v", c.own, c.n, got, c.want)
		}
	}
}
