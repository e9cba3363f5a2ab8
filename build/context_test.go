package build

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDockerignore(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.txt", "secret.txt", "logs/x.log", "logs/keep.log"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("# comment\nsecret.txt\nlogs\n!logs/keep.log\n"), 0o644)
	c := &buildContext{dir: dir}
	if err := c.loadIgnore(); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]bool{"a.txt": false, "secret.txt": true, "logs/x.log": true, "logs/keep.log": false} {
		if got := c.ignored(rel); got != want {
			t.Errorf("ignored(%q) = %v, want %v", rel, got, want)
		}
	}
	if _, err := c.resolve("secret.txt"); err == nil {
		t.Error("an ignored source resolved")
	}
	if m, err := c.resolve("../../a.txt"); err != nil || len(m) != 1 || m[0] != "a.txt" {
		t.Errorf("resolve does not stay in the context: %v %v", m, err)
	}
	if m, err := c.resolve("*.txt"); err != nil || len(m) != 1 {
		t.Errorf("glob: %v %v", m, err)
	}
}

func TestCacheKey(t *testing.T) {
	if cacheKey("p", "a", "bc") == cacheKey("p", "ab", "c") {
		t.Error("cache key parts are ambiguous")
	}
}
