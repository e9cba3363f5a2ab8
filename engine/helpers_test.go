package engine

import "testing"

// testEngine is an engine on a fresh store (vfs) in a temporary directory.
func testEngine(t *testing.T) *Engine {
	t.Helper()
	dir := t.TempDir()
	e, err := New(Config{Root: dir + "/root", RunRoot: dir + "/run", StorageDriver: "vfs"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
