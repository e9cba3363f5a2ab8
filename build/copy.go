package build

import (
	"archive/tar"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/berth-dev/berth/engine"
)

type copyFlags struct {
	from     string
	uid, gid int
	chown    bool
	chmod    os.FileMode
	hasChmod bool
}

func parseCopyFlags(n *parser.Node, env []string, b *builder) (copyFlags, error) {
	var f copyFlags
	for _, fl := range n.Flags {
		k, v, _ := strings.Cut(strings.TrimPrefix(fl, "--"), "=")
		v, err := b.expand(v, env)
		if err != nil {
			return f, err
		}
		switch k {
		case "from":
			if n.Value == "add" {
				return f, errors.New("ADD does not support --from")
			}
			f.from = v
		case "chown":
			u, g, hasGroup := strings.Cut(v, ":")
			if !hasGroup {
				g = u
			}
			uid, err1 := strconv.Atoi(u)
			gid, err2 := strconv.Atoi(g)
			if err1 != nil || err2 != nil {
				return f, fmt.Errorf("--chown=%s: berth supports numeric uid[:gid] only", v)
			}
			f.uid, f.gid, f.chown = uid, gid, true
		case "chmod":
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > 0o7777 {
				return f, fmt.Errorf("--chmod=%s: invalid octal mode", v)
			}
			f.chmod, f.hasChmod = os.FileMode(m), true
		default:
			return f, fmt.Errorf("%s: unknown flag --%s", strings.ToUpper(n.Value), k)
		}
	}
	return f, nil
}

// tarSpool is a temporary file holding the tar stream of one COPY.
type tarSpool struct {
	f     *os.File
	tw    *tar.Writer
	fl    copyFlags
	epoch time.Time // SOURCE_DATE_EPOCH, or zero
	// written collects the absolute paths of the entries (see
	// storage.LayerTimes.Keep), when set.
	written map[string]bool
}

func newTarSpool(fl copyFlags) (*tarSpool, error) {
	f, err := os.CreateTemp("", "berth-build-copy-*.tar")
	if err != nil {
		return nil, err
	}
	return &tarSpool{f: f, tw: tar.NewWriter(f), fl: fl}, nil
}

func (s *tarSpool) remove() {
	s.f.Close()
	os.Remove(s.f.Name())
}

func (s *tarSpool) finish() (io.Reader, error) {
	if err := s.tw.Close(); err != nil {
		return nil, err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.f, nil
}

// header fixes owner and mode of an entry as COPY's flags say.
func (s *tarSpool) header(h *tar.Header, name string) *tar.Header {
	h.Name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if s.written != nil {
		s.written["/"+h.Name] = true
	}
	if h.Typeflag == tar.TypeDir {
		h.Name += "/"
	}
	h.Uname, h.Gname = "", ""
	if s.fl.chown {
		h.Uid, h.Gid = s.fl.uid, s.fl.gid
	}
	if s.fl.hasChmod && h.Typeflag != tar.TypeSymlink {
		h.Mode = h.Mode&^0o7777 | int64(s.fl.chmod)
	}
	if !s.epoch.IsZero() && h.ModTime.After(s.epoch) {
		h.ModTime = s.epoch // SOURCE_DATE_EPOCH clamps what a step adds
	}
	h.AccessTime, h.ChangeTime = h.ModTime, h.ModTime
	h.Format = tar.FormatPAX
	return h
}

// addHostPath writes the context path src (a file, symlink or whole
// directory) as dest.
func (b *builder) addHostPath(s *tarSpool, src, dest string, top bool) error {
	full := filepath.Join(b.bctx.dir, src)
	fi, err := os.Lstat(full)
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(full); err != nil {
			return err
		}
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() && link == "" {
		return nil // sockets, devices, fifos are not copied
	}
	h, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	h.Uid, h.Gid = 0, 0
	if err := s.tw.WriteHeader(s.header(h, dest)); err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		f, err := os.Open(full)
		if err != nil {
			return err
		}
		_, err = io.Copy(s.tw, f)
		f.Close()
		return err
	}
	if !fi.IsDir() {
		return nil
	}
	entries, err := os.ReadDir(full)
	if err != nil {
		return err
	}
	for _, e := range entries {
		rel := filepath.Join(src, e.Name())
		if b.bctx.ignored(filepath.ToSlash(rel)) && !(e.IsDir() && b.bctx.ignore.Exclusions()) {
			continue
		}
		if b.bctx.ignored(filepath.ToSlash(rel)) && !e.IsDir() {
			continue
		}
		if err := b.addHostPath(s, rel, path.Join(dest, e.Name()), false); err != nil {
			return err
		}
	}
	return nil
}

// hashHostPath hashes what COPY reads from the context: names, modes,
// link targets and contents, not times.
func (b *builder) hashHostPath(h io.Writer, src string) error {
	full := filepath.Join(b.bctx.dir, src)
	return filepath.WalkDir(full, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.bctx.dir, p)
		if p != full && b.bctx.ignored(filepath.ToSlash(rel)) {
			if d.IsDir() && (b.bctx.ignore == nil || !b.bctx.ignore.Exclusions()) {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				return nil
			}
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%o\x00", filepath.ToSlash(rel), fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(h, "%s\x00", l)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// openArchive returns a tar reader if the context file is a (possibly
// gzip or bzip2 compressed) tar archive, for ADD.
func openArchive(p string) (*tar.Reader, io.Closer, bool) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, false
	}
	br := bufio.NewReader(f)
	head, _ := br.Peek(3)
	var r io.Reader = br
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, false
		}
		r = gz
	case len(head) >= 3 && string(head) == "BZh":
		r = bzip2.NewReader(br)
	}
	tr := tar.NewReader(r)
	if _, err := tr.Next(); err != nil {
		f.Close()
		return nil, nil, false
	}
	// Reopen to start from the first entry again.
	f.Close()
	f, _ = os.Open(p)
	br = bufio.NewReader(f)
	r = br
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		gz, _ := gzip.NewReader(br)
		r = gz
	case len(head) >= 3 && string(head) == "BZh":
		r = bzip2.NewReader(br)
	}
	return tar.NewReader(r), f, true
}

// rerootTar copies the entries of tr below dest. Entry names are
// cleaned; with strip, the first path element is dropped (the source's
// own name, as CopyFromContainer archives it).
func rerootTar(s *tarSpool, tr *tar.Reader, dest string, strip bool, keepOwners bool) error {
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if strip {
			_, rest, _ := strings.Cut(name, "/")
			name = rest
		}
		if !keepOwners {
			h.Uid, h.Gid = 0, 0
		}
		if h.Typeflag == tar.TypeLink {
			target := strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")
			if strip {
				_, target, _ = strings.Cut(target, "/")
			}
			h.Linkname = strings.TrimPrefix(path.Join(dest, target), "/")
		}
		if err := s.tw.WriteHeader(s.header(h, path.Join(dest, name))); err != nil {
			return err
		}
		if _, err := io.Copy(s.tw, tr); err != nil {
			return err
		}
	}
}

func (b *builder) copy(ctx context.Context, st *state, n *parser.Node, cfg v1.Config) error {
	env := st.expandEnv()
	fl, err := parseCopyFlags(n, env, b)
	if err != nil {
		return err
	}
	var words []string
	var inline []*inlineFile
	raw := nodeWords(n)
	for i, w := range raw {
		if i < len(raw)-1 {
			f, err := b.heredocSource(n, w, env)
			if err != nil {
				return err
			}
			if f != nil {
				inline = append(inline, f)
				continue
			}
		}
		x, err := b.expand(w, env)
		if err != nil {
			return err
		}
		words = append(words, x)
	}
	name := strings.ToUpper(n.Value)
	if len(words)+len(inline) < 2 {
		return fmt.Errorf("%s requires at least two arguments", name)
	}
	srcs, dest := words[:len(words)-1], words[len(words)-1]
	if len(inline) > 0 && fl.from != "" {
		return fmt.Errorf("%s --from cannot be used with a heredoc source", name)
	}
	destDir := strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.") || len(srcs)+len(inline) > 1
	if !path.IsAbs(dest) {
		wd := cfg.WorkingDir
		if wd == "" {
			wd = "/"
		}
		dest = path.Join(wd, dest)
	}
	dest = path.Clean(dest)

	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%v\x00%+v\x00", name, dest, destDir, fl)
	var fromImage string
	type hostSrc struct {
		rel     string
		isDir   bool
		archive bool
	}
	var hostSrcs []hostSrc
	var urls []*urlFile
	if fl.from != "" {
		if s := b.stageByRef(fl.from, st.s.index); s != nil {
			fromImage = s.image.ID
		} else {
			img, err := b.e.BuildImage(ctx, fl.from, map[bool]string{true: "missing"}[b.o.Pull], "")
			if err != nil {
				return err
			}
			fromImage = img.ID
		}
		fmt.Fprintf(h, "from\x00%s\x00%q\x00", fromImage, srcs)
	} else {
		for _, src := range srcs {
			if isURL(src) && n.Value == "add" {
				uf, err := b.fetchURL(ctx, src)
				if err != nil {
					return err
				}
				defer os.Remove(uf.file)
				urls = append(urls, uf)
				fmt.Fprintf(h, "url\x00%s\x00%s\x00%s\x00", uf.url, uf.name, uf.sum)
				continue
			}
			if strings.Contains(src, "://") {
				return fmt.Errorf("%s %s: source can't be a URL for %s", name, src, name)
			}
			matches, err := b.bctx.resolve(src)
			if err != nil {
				return err
			}
			if len(matches) > 1 {
				destDir = true
			}
			for _, m := range matches {
				fi, err := os.Stat(filepath.Join(b.bctx.dir, m))
				isDir := err == nil && fi.IsDir()
				arch := false
				if n.Value == "add" && err == nil && fi.Mode().IsRegular() {
					if _, c, ok := openArchive(filepath.Join(b.bctx.dir, m)); ok {
						c.Close()
						arch = true
					}
				}
				if isDir || arch {
					destDir = true
				}
				hostSrcs = append(hostSrcs, hostSrc{rel: m, isDir: isDir, archive: arch})
				fmt.Fprintf(h, "src\x00%s\x00%v\x00", m, arch)
				if err := b.hashHostPath(h, m); err != nil {
					return err
				}
			}
		}
	}
	for _, f := range inline {
		fmt.Fprintf(h, "inline\x00%s\x00%d:%s", f.name, len(f.data), f.data)
	}
	contentHash := hex.EncodeToString(h.Sum(nil))
	createdBy := fmt.Sprintf("%s %s:%s in %s ", name, map[bool]string{true: "multi", false: "file"}[len(srcs) > 1], contentHash, dest)
	key := cacheKey(st.image.ID, "copy", contentHash, st.author)
	if b.fromCache(st, key) {
		return nil
	}

	var spool *tarSpool
	defer func() {
		if spool != nil {
			spool.remove()
		}
	}()
	var cleanups []func()
	defer func() {
		for _, c := range cleanups {
			c()
		}
	}()
	times := b.layerTimes()
	if !times.MadeSince.IsZero() {
		times.Keep = map[string]bool{}
	}
	content := func(stat func(string) (engine.PathStat, error)) (io.Reader, error) {
		isDir := destDir
		if !isDir {
			if ps, err := stat(dest); err == nil && ps.Mode.IsDir() {
				isDir = true
			}
		}
		var err error
		if spool, err = newTarSpool(fl); err != nil {
			return nil, err
		}
		spool.epoch = b.time
		spool.written = times.Keep
		if fromImage != "" {
			for _, src := range srcs {
				rc, ps, cleanup, err := b.e.BuildReadFrom(ctx, fromImage, src, true)
				if err != nil {
					return nil, fmt.Errorf("COPY --from=%s %s: %w", fl.from, src, err)
				}
				cleanups = append(cleanups, cleanup)
				target := dest
				strip := ps.Mode.IsDir()
				if !strip {
					if isDir {
						target = path.Join(dest, path.Base(path.Clean("/"+src)))
					}
					// A single file: its entry is renamed to the target.
					tr := tar.NewReader(rc)
					hdr, err := tr.Next()
					if err != nil {
						rc.Close()
						return nil, err
					}
					hdr.Uid, hdr.Gid = 0, 0
					if err := spool.tw.WriteHeader(spool.header(hdr, target)); err != nil {
						rc.Close()
						return nil, err
					}
					_, err = io.Copy(spool.tw, tr)
					rc.Close()
					if err != nil {
						return nil, err
					}
					continue
				}
				err = rerootTar(spool, tar.NewReader(rc), target, true, false)
				rc.Close()
				if err != nil {
					return nil, err
				}
			}
			return spool.finish()
		}
		for _, f := range inline {
			target := dest
			if isDir {
				target = path.Join(dest, f.name)
			}
			hdr := &tar.Header{Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data)), ModTime: b.fileTime()}
			if err := spool.tw.WriteHeader(spool.header(hdr, target)); err != nil {
				return nil, err
			}
			if _, err := io.WriteString(spool.tw, f.data); err != nil {
				return nil, err
			}
		}
		for _, u := range urls {
			target := dest
			if isDir {
				target = path.Join(dest, u.name)
			}
			hdr := &tar.Header{Typeflag: tar.TypeReg, Mode: 0o600, Size: u.size, ModTime: u.mtime}
			if err := spool.tw.WriteHeader(spool.header(hdr, target)); err != nil {
				return nil, err
			}
			f, err := os.Open(u.file)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(spool.tw, f)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
		for _, s := range hostSrcs {
			switch {
			case s.archive:
				tr, c, _ := openArchive(filepath.Join(b.bctx.dir, s.rel))
				err := rerootTar(spool, tr, dest, false, true)
				c.Close()
				if err != nil {
					return nil, fmt.Errorf("ADD %s: %w", s.rel, err)
				}
			case s.isDir:
				if err := b.addHostPath(spool, s.rel, dest, true); err != nil {
					return nil, err
				}
			default:
				target := dest
				if isDir {
					target = path.Join(dest, filepath.Base(s.rel))
				}
				if err := b.addHostPath(spool, s.rel, target, true); err != nil {
					return nil, err
				}
			}
		}
		return spool.finish()
	}
	img, err := b.e.BuildCopy(ctx, engine.BuildStep{Parent: st.image.ID, Config: cfg, CreatedBy: "/bin/sh -c #(nop) " + createdBy, Created: b.createdTime(), Author: st.author, Times: times}, content, true)
	if err != nil {
		return err
	}
	b.setImage(st, img)
	return b.store(key, img)
}
