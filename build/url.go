package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
)

// urlFile is an ADD source fetched from an http(s) URL. As docker's
// classic builder: saved under the URL's basename (or as the destination
// file), mode 0600, mtime from Last-Modified when the server sends one,
// never extracted; the step's cache key has the content's hash, so the
// URL is fetched on every build.
type urlFile struct {
	url   string
	name  string // basename of the URL path
	file  string // temporary file with the content
	size  int64
	mtime time.Time
	sum   string
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// fetchURL downloads rawURL into a temporary file; the caller removes it.
func (b *builder) fetchURL(ctx context.Context, rawURL string) (*urlFile, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	name := path.Base(u.Path)
	if u.Path == "" || strings.HasSuffix(u.Path, "/") || name == "/" || name == "." {
		return nil, fmt.Errorf("ADD %s: cannot determine filename from url", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, fmt.Errorf("ADD %s: failed to GET with status %s", rawURL, resp.Status)
	}
	f, err := os.CreateTemp("", "berth-build-url-*")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	mtime := b.fileTime()
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			mtime = t.UTC()
		}
	}
	return &urlFile{url: rawURL, name: name, file: f.Name(), size: n, mtime: mtime, sum: hex.EncodeToString(h.Sum(nil))}, nil
}
