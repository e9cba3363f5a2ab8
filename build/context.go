package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/berth-dev/berth/engine"
)

// buildContext is the directory COPY and ADD read from, with the
// .dockerignore rules.
type buildContext struct {
	dir     string
	ignore  *patternmatcher.PatternMatcher
	cleanup func()
}

// readStdinContext reads `build -` input: a tar archive (the context,
// extracted into a temporary directory with engine.ExtractToHost's safe
// extraction) or, if it is not a tar, a Dockerfile with an empty context.
func readStdinContext(r io.Reader, tmpDir string) (ctx *buildContext, dockerfile []byte, err error) {
	br := bufio.NewReaderSize(r, 4096)
	head, _ := br.Peek(512)
	dir, err := os.MkdirTemp(tmpDir, "berth-build-context-")
	if err != nil {
		return nil, nil, err
	}
	ctx = &buildContext{dir: dir, cleanup: func() { os.RemoveAll(dir) }}
	if !isTar(head) {
		data, err := io.ReadAll(br)
		if err != nil {
			ctx.cleanup()
			return nil, nil, err
		}
		return ctx, data, nil
	}
	if err := engine.ExtractToHost(dir, br, engine.CopyOptions{}); err != nil {
		ctx.cleanup()
		return nil, nil, fmt.Errorf("reading the build context from stdin: %w", err)
	}
	return ctx, nil, nil
}

func isTar(head []byte) bool {
	if len(head) < 512 {
		return false
	}
	_, err := tar.NewReader(bytes.NewReader(head)).Next()
	return err == nil
}

// loadIgnore reads .dockerignore of the context.
func (c *buildContext) loadIgnore() error {
	f, err := os.Open(filepath.Join(c.dir, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return fmt.Errorf("reading .dockerignore: %w", err)
	}
	if len(patterns) == 0 {
		return nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf("reading .dockerignore: %w", err)
	}
	c.ignore = pm
	return nil
}

// ignored tells whether rel (slash separated, relative to the context)
// is excluded by .dockerignore.
func (c *buildContext) ignored(rel string) bool {
	if c.ignore == nil || rel == "." || rel == "" {
		return false
	}
	m, err := c.ignore.MatchesOrParentMatches(filepath.FromSlash(rel))
	return err == nil && m
}

// resolve turns a COPY source into context-relative paths (globs
// expanded); a source cannot leave the context.
func (c *buildContext) resolve(src string) ([]string, error) {
	clean := filepath.Clean("/" + filepath.FromSlash(src))
	rel := strings.TrimPrefix(clean, "/")
	if rel == "" {
		rel = "."
	}
	var matches []string
	if strings.ContainsAny(rel, "*?[") {
		m, err := filepath.Glob(filepath.Join(c.dir, rel))
		if err != nil {
			return nil, err
		}
		for _, p := range m {
			r, err := filepath.Rel(c.dir, p)
			if err != nil || strings.HasPrefix(r, "..") {
				continue
			}
			if !c.ignored(filepath.ToSlash(r)) {
				matches = append(matches, r)
			}
		}
	} else if _, err := os.Lstat(filepath.Join(c.dir, rel)); err == nil && !c.ignored(filepath.ToSlash(rel)) {
		matches = []string{rel}
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("COPY failed: file not found in build context or excluded by .dockerignore: stat %s: file does not exist", src)
	}
	return matches, nil
}
