package engine

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

type tarEntry struct {
	name, link, body string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if hdr.Typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			io.WriteString(tw, e.body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func openPath(t *testing.T, dir string) *os.File {
	t.Helper()
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// A destination directory dst inside a scratch directory; outside is a
// sibling that no extraction may touch.
func scratch(t *testing.T) (dst, outside string) {
	base := t.TempDir()
	dst, outside = filepath.Join(base, "dst"), filepath.Join(base, "outside")
	for _, d := range []string{dst, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dst, outside
}

func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestExtractRefusesEscapes(t *testing.T) {
	cases := map[string][]tarEntry{
		"dotdot":         {{name: "../outside/pwned", body: "x"}},
		"dotdot-inner":   {{name: "a/../../outside/pwned", body: "x"}},
		"absolute":       {{name: "/outside/pwned", body: "x"}},
		"abs-symlink":    {{name: "l", typ: tar.TypeSymlink, link: "OUTSIDE"}, {name: "l/pwned", body: "x"}},
		"rel-symlink":    {{name: "l", typ: tar.TypeSymlink, link: "../outside"}, {name: "l/pwned", body: "x"}},
		"symlink-dir":    {{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "d/l", typ: tar.TypeSymlink, link: "/"}, {name: "d/l/tmp/pwned", body: "x"}},
		"hardlink-out":   {{name: "h", typ: tar.TypeLink, link: "../outside/victim"}},
		"hardlink-abs":   {{name: "h", typ: tar.TypeLink, link: "OUTSIDE/victim"}},
		"hardlink-via-l": {{name: "l", typ: tar.TypeSymlink, link: "OUTSIDE"}, {name: "h", typ: tar.TypeLink, link: "l/victim"}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			dst, outside := scratch(t)
			if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("victim"), 0o644); err != nil {
				t.Fatal(err)
			}
			for i := range entries {
				entries[i].link = strings.ReplaceAll(entries[i].link, "OUTSIDE", outside)
			}
			x := &extractor{root: openPath(t, dst), noOverwrite: true}
			err := x.extract(makeTar(t, entries...))
			if !errors.Is(err, ErrUnsafeArchive) {
				t.Fatalf("extract: %v, want ErrUnsafeArchive", err)
			}
			if got := listTree(t, outside); len(got) != 1 || got[0] != "victim" {
				t.Errorf("outside changed: %v", got)
			}
			if st, _ := os.Stat(filepath.Join(outside, "victim")); st != nil && st.Sys().(*syscall.Stat_t).Nlink != 1 {
				t.Errorf("victim got a hard link")
			}
		})
	}
}

// Symlinks that already exist in the destination (planted by a container)
// are replaced, or refused as a path's directory, never written through.
func TestExtractDoesNotFollowExistingSymlinks(t *testing.T) {
	dst, outside := scratch(t)
	os.WriteFile(filepath.Join(outside, "victim"), []byte("victim"), 0o644)
	os.Symlink(filepath.Join(outside, "victim"), filepath.Join(dst, "f"))
	os.Symlink(outside, filepath.Join(dst, "d"))
	x := &extractor{root: openPath(t, dst), noOverwrite: true}
	if err := x.extract(makeTar(t, tarEntry{name: "f", body: "new", mode: 0o600})); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "victim" {
		t.Errorf("victim overwritten: %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dst, "f"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("f not replaced by a regular 0600 file: %v %v", fi, err)
	}
	x = &extractor{root: openPath(t, dst), noOverwrite: true}
	err = x.extract(makeTar(t, tarEntry{name: "d/pwned", body: "x"}))
	if !errors.Is(err, ErrUnsafeArchive) {
		t.Fatalf("write through symlinked dir: %v, want ErrUnsafeArchive", err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "pwned")); err == nil {
		t.Errorf("file created through a symlink")
	}
}

func TestExtractRules(t *testing.T) {
	dst, _ := scratch(t)
	os.Mkdir(filepath.Join(dst, "dir"), 0o755)
	os.WriteFile(filepath.Join(dst, "file"), nil, 0o644)
	x := &extractor{root: openPath(t, dst), noOverwrite: true}
	if err := x.extract(makeTar(t, tarEntry{name: "dir", body: "x"})); err == nil || !strings.Contains(err.Error(), "cannot overwrite directory") {
		t.Errorf("file over dir: %v", err)
	}
	if err := x.extract(makeTar(t, tarEntry{name: "file/", typ: tar.TypeDir, mode: 0o755})); err == nil || !strings.Contains(err.Error(), "cannot overwrite non-directory") {
		t.Errorf("dir over file: %v", err)
	}
	// Devices are skipped unless asked for; fifos are made; missing
	// parents are created; hard links inside work.
	err := x.extract(makeTar(t,
		tarEntry{name: "./", typ: tar.TypeDir, mode: 0o700},
		tarEntry{name: "null", typ: tar.TypeChar, mode: 0o666},
		tarEntry{name: "fifo", typ: tar.TypeFifo, mode: 0o644},
		tarEntry{name: "new/deep/f", body: "deep", mode: 0o4755},
		tarEntry{name: "new/deep/h", typ: tar.TypeLink, link: "new/deep/f"},
	))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "null")); err == nil {
		t.Errorf("device node created")
	}
	if fi, err := os.Lstat(filepath.Join(dst, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v %v", fi, err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o755 {
		t.Errorf("the extraction point's own mode changed: %v", fi.Mode())
	}
	a, _ := os.Stat(filepath.Join(dst, "new/deep/f"))
	b, _ := os.Stat(filepath.Join(dst, "new/deep/h"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Errorf("hard link not made")
	}
	if a != nil && a.Mode()&os.ModeSetuid == 0 {
		t.Errorf("setuid dropped without stripSetID")
	}
}

func TestExtractOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dst, _ := scratch(t)
	entries := []tarEntry{{name: "f", body: "x", mode: 0o4755}}
	tr := makeTar(t, entries...)
	// Rewrite the owner to 1000:1000.
	var buf bytes.Buffer
	r, w := tar.NewReader(tr), tar.NewWriter(&buf)
	hdr, _ := r.Next()
	hdr.Uid, hdr.Gid = 1000, 1000
	w.WriteHeader(hdr)
	io.Copy(w, r)
	w.Close()
	archive := buf.Bytes()

	stat := func(name string) *unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dst, name), &st); err != nil {
			t.Fatal(err)
		}
		return &st
	}
	x := &extractor{root: openPath(t, dst), chown: true, forceOwner: true}
	if err := x.extract(bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	if st := stat("f"); st.Uid != 0 || st.Gid != 0 || st.Mode&unix.S_ISUID == 0 {
		t.Errorf("forced owner: %d:%d mode %o", st.Uid, st.Gid, st.Mode)
	}
	x = &extractor{root: openPath(t, dst), chown: true}
	if err := x.extract(bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	if st := stat("f"); st.Uid != 1000 || st.Gid != 1000 || st.Mode&unix.S_ISUID == 0 {
		t.Errorf("kept owner: %d:%d mode %o", st.Uid, st.Gid, st.Mode)
	}
	x = &extractor{root: openPath(t, dst), stripSetID: true}
	if err := x.extract(bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	if st := stat("f"); st.Mode&unix.S_ISUID != 0 {
		t.Errorf("setuid kept with stripSetID: %o", st.Mode)
	}
}

func readArchive(t *testing.T, rc io.ReadCloser) map[string]*tar.Header {
	t.Helper()
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			hdr.PAXRecords = map[string]string{"body": string(b)}
		}
		out[hdr.Name] = hdr
	}
}

// A fake container root: its own /etc/shadow, and symlinks that lead out
// of it when resolved on the host.
func fakeRoot(t *testing.T) string {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "tmp/dir/sub"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/shadow"), []byte("container"), 0o600)
	os.WriteFile(filepath.Join(root, "tmp/dir/sub/f"), []byte("f"), 0o644)
	os.Link(filepath.Join(root, "tmp/dir/sub/f"), filepath.Join(root, "tmp/dir/hard"))
	os.Symlink("/", filepath.Join(root, "evil"))
	os.Symlink("../../../../../../../../..", filepath.Join(root, "tmp/up"))
	os.Symlink("/etc", filepath.Join(root, "tmp/dir/etc"))
	return root
}

func archiveOf(t *testing.T, root *os.File, p string, follow bool) (map[string]*tar.Header, PathStat) {
	t.Helper()
	src, err := openSource(root, p, follow)
	if err != nil {
		t.Fatalf("openSource %s: %v", p, err)
	}
	return readArchive(t, streamArchive(src, func() {})), src.stat
}

func TestArchiveStaysInRoot(t *testing.T) {
	dir := fakeRoot(t)
	root := openPath(t, dir)
	for _, p := range []string{"/evil/etc/shadow", "/tmp/up/etc/shadow", "tmp/up/etc/../etc/shadow"} {
		a, st := archiveOf(t, root, p, false)
		if h := a["shadow"]; len(a) != 1 || h == nil || h.PAXRecords["body"] != "container" || st.Name != "shadow" {
			t.Errorf("%s: got %v", p, a)
		}
	}
	// A symlink is archived as itself, -L follows it within the root.
	a, st := archiveOf(t, root, "/evil", false)
	if h := a["evil"]; len(a) != 1 || h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/" || st.Mode&os.ModeSymlink == 0 {
		t.Errorf("/evil: %v", a)
	}
	a, _ = archiveOf(t, root, "/tmp/dir/etc", true)
	if a["etc/shadow"] == nil || a["etc/shadow"].PAXRecords["body"] != "container" {
		t.Errorf("-L /tmp/dir/etc: %v", a)
	}
	// Inside a directory symlinks are never followed; hard links are kept.
	a, _ = archiveOf(t, root, "/tmp/dir", false)
	var names []string
	for n := range a {
		names = append(names, n)
	}
	sort.Strings(names)
	want := "dir/ dir/etc dir/hard dir/sub/ dir/sub/f"
	if strings.Join(names, " ") != want {
		t.Errorf("/tmp/dir: %v, want %s", names, want)
	}
	if a["dir/sub/f"].Typeflag != tar.TypeLink && a["dir/hard"].Typeflag != tar.TypeLink {
		t.Errorf("hard link not recorded")
	}
	// "/." names the contents "./…".
	a, st = archiveOf(t, root, "/tmp/dir/.", false)
	if a["./"] == nil || a["./sub/f"] == nil || st.Name != "." {
		t.Errorf("/tmp/dir/.: %v", a)
	}
	// A trailing slash asserts a directory.
	if _, err := openSource(root, "/etc/shadow/", false); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("/etc/shadow/: %v", err)
	}
	if _, err := openSource(root, "/nope", false); !errors.Is(err, unix.ENOENT) {
		t.Errorf("/nope: %v", err)
	}
}

func TestStatPathResolvesLinksInRoot(t *testing.T) {
	dir := fakeRoot(t)
	root := openPath(t, dir)
	for p, want := range map[string]string{"/evil": "/", "/tmp/up": "/", "/tmp/dir/etc": "/etc"} {
		st, err := statPath(root, p)
		if err != nil || st.LinkTarget != want {
			t.Errorf("%s: %+v %v, want link target %s", p, st, err, want)
		}
	}
	st, err := statPath(root, "/evil/tmp/")
	if err != nil || !st.Mode.IsDir() {
		t.Errorf("/evil/tmp/: %+v %v", st, err)
	}
	// The extraction point resolves within the root too.
	d, err := openExtractPoint(root, "/tmp/up/etc")
	if err != nil {
		t.Fatal(err)
	}
	x := &extractor{root: d}
	if err := x.extract(makeTar(t, tarEntry{name: "new", body: "n"})); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if b, err := os.ReadFile(filepath.Join(dir, "etc/new")); err != nil || string(b) != "n" {
		t.Errorf("etc/new: %q %v", b, err)
	}
	if _, err := openExtractPoint(root, "/etc/shadow"); !errors.Is(err, ErrNotDirectory) {
		t.Errorf("file as extraction point: %v", err)
	}
}
