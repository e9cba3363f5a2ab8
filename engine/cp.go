package engine

// `cp`: tar streams in and out of a container's root filesystem, docker's
// archive API (stat a path, get an archive of a path, extract an archive
// into a directory). The CLI turns host paths into such streams and back,
// with docker's naming rules.
//
// Security: the container is hostile. Its root filesystem is the overlay
// "merged" directory on the host, and a path in it may contain symlinks
// that point anywhere, changed by the running container at any moment
// (CVE-2018-15664, CVE-2019-14271). So:
//
//   - a path given by the user is resolved with openat2(RESOLVE_IN_ROOT)
//     (filepath-securejoin's pathrs-lite, which falls back to a safe
//     userspace walk on old kernels) relative to a descriptor of the
//     root: a symlink, even one swapped in during the walk, resolves
//     inside the container;
//   - below that point everything is done relative to directory
//     descriptors, one name at a time, with O_NOFOLLOW /
//     AT_SYMLINK_NOFOLLOW: an archive never follows a symlink, and an
//     extraction never writes through one (an intermediate symlink is
//     refused, a final one is replaced);
//   - archive entries must be relative and stay below the extraction
//     point, hard links too; device nodes only with CopyUIDGID;
//   - nothing runs inside the container.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/state"
)

// CopyOptions tune `cp`.
type CopyOptions struct {
	// FollowLink follows a symlink named by the source path (-L); without
	// it the symlink itself is copied.
	FollowLink bool
	// CopyUIDGID keeps the owners recorded in the archive (-a). Without
	// it, what is extracted into a container belongs to root (0:0) and
	// what is extracted on the host to the caller. Device nodes are
	// created only with it.
	CopyUIDGID bool
	// NoOverwriteDirNonDir refuses to replace a directory with a
	// non-directory and the reverse (docker cp always sets it).
	NoOverwriteDirNonDir bool
}

// PathStat describes a path in a container as docker's API does (the
// X-Docker-Container-Path-Stat header).
type PathStat = container.PathStat

var (
	// ErrNoSuchPath is returned (wrapped) when a path does not exist in
	// a container.
	ErrNoSuchPath = errors.New("no such file or directory")
	// ErrNotDirectory is returned (wrapped) when an archive is extracted
	// to something that is not a directory.
	ErrNotDirectory = errors.New("extraction point is not a directory")
	// ErrUnsafeArchive is returned (wrapped) for an archive entry that
	// would leave the extraction point or write through a symlink.
	ErrUnsafeArchive = errors.New("unsafe archive entry")
)

type pathNotFoundError struct{ path, ref string }

func (e *pathNotFoundError) Error() string {
	return fmt.Sprintf("could not find the file %s in container %s", e.path, e.ref)
}

func (e *pathNotFoundError) Is(target error) bool { return target == ErrNoSuchPath }

// ContainerStatPath describes path in the container's root filesystem;
// a symlink is not followed, but its LinkTarget is resolved within the
// container.
func (e *Engine) ContainerStatPath(ctx context.Context, ref, p string) (PathStat, error) {
	h, err := e.openRootfs(ref)
	if err != nil {
		return PathStat{}, err
	}
	defer h.release()
	st, err := statPath(h.root, p)
	return st, h.pathErr(p, err)
}

// CopyFromContainer returns a tar archive of srcPath in the container and
// its description. The archive's entries are named after srcPath's last
// element ("." for a path ending in "/."), also when FollowLink followed
// a symlink. Symlinks below srcPath are archived as symlinks. The caller
// must close the stream; the container's rootfs stays mounted until then.
func (e *Engine) CopyFromContainer(ctx context.Context, ref, srcPath string, o CopyOptions) (io.ReadCloser, PathStat, error) {
	h, err := e.openRootfs(ref)
	if err != nil {
		return nil, PathStat{}, err
	}
	src, err := openSource(h.root, srcPath, o.FollowLink)
	if err != nil {
		h.release()
		return nil, PathStat{}, h.pathErr(srcPath, err)
	}
	return streamArchive(src, h.release), src.stat, nil
}

// CopyToContainer extracts the tar archive content into the directory
// dstPath of the container (symlinks in dstPath resolved within the
// container), as docker's PUT /containers/ID/archive does.
func (e *Engine) CopyToContainer(ctx context.Context, ref, dstPath string, content io.Reader, o CopyOptions) error {
	h, err := e.openRootfs(ref)
	if err != nil {
		return err
	}
	defer h.release()
	if h.rec.HostConfig != nil && h.rec.HostConfig.ReadonlyRootfs {
		return fmt.Errorf("container rootfs is marked read-only")
	}
	dir, err := openExtractPoint(h.root, dstPath)
	if err != nil {
		return h.pathErr(dstPath, err)
	}
	defer dir.Close()
	x := &extractor{
		root:        dir,
		noOverwrite: o.NoOverwriteDirNonDir,
		devices:     o.CopyUIDGID && os.Geteuid() == 0,
		chown:       true,
	}
	if !o.CopyUIDGID {
		x.uid, x.gid = 0, 0
		x.forceOwner = true
	}
	return x.extract(content)
}

// HostStatPath describes a path on the host the way ContainerStatPath
// does in a container.
func HostStatPath(p string) (PathStat, error) {
	root, err := openHostRoot()
	if err != nil {
		return PathStat{}, err
	}
	defer root.Close()
	return statPath(root, absHostPath(p))
}

// ArchiveHostPath is CopyFromContainer for a path on the host (the source
// of a copy into a container): the same archive, with the same naming.
func ArchiveHostPath(p string, o CopyOptions) (io.ReadCloser, PathStat, error) {
	root, err := openHostRoot()
	if err != nil {
		return nil, PathStat{}, err
	}
	src, err := openSource(root, absHostPath(p), o.FollowLink)
	root.Close()
	if err != nil {
		return nil, PathStat{}, err
	}
	return streamArchive(src, func() {}), src.stat, nil
}

// ExtractToHost extracts a tar archive (from a container: untrusted) into
// the host directory dir, which the caller chose. Entries stay below dir
// and are never written through a symlink; owners are kept only with
// CopyUIDGID (and only when berth runs as root), and so are setuid and
// setgid bits and device nodes.
func ExtractToHost(dir string, content io.Reader, o CopyOptions) error {
	d, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("%w: %s", ErrNotDirectory, dir)
		}
		return err
	}
	defer d.Close()
	root := os.Geteuid() == 0
	x := &extractor{
		root:        d,
		noOverwrite: o.NoOverwriteDirNonDir,
		devices:     o.CopyUIDGID && root,
		chown:       o.CopyUIDGID && root,
		stripSetID:  !o.CopyUIDGID,
	}
	return x.extract(content)
}

func absHostPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	return wd + "/" + p
}

func openHostRoot() (*os.File, error) {
	return os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// rootfsHandle is a container's mounted root filesystem, held for one
// copy.
type rootfsHandle struct {
	ref     string
	rec     *state.Record
	root    *os.File // O_PATH descriptor of the rootfs
	release func()
}

func (h *rootfsHandle) pathErr(p string, err error) error {
	if errors.Is(err, unix.ENOENT) {
		return &pathNotFoundError{path: p, ref: h.ref}
	}
	return err
}

// openRootfs mounts the container's root filesystem (or finds it mounted)
// and opens it.
//
// A container that is not running is mounted for the copy and unmounted
// afterwards; its monitor lock is held meanwhile, so that it cannot start
// (and mount it too) under the copy. A running container's rootfs is
// mounted already: c/storage's Mount returns that mount (counting one more
// user), and the monitor's unmount when the container stops releases it
// whatever the count, so it is not unmounted here; should the container
// have stopped meanwhile, it is unmounted like a stopped one.
func (e *Engine) openRootfs(ref string) (*rootfsHandle, error) {
	id, err := e.containers.Resolve(ref)
	if err != nil {
		return nil, err
	}
	rec, err := e.containers.Record(id)
	if err != nil {
		return nil, err
	}
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	// Correct a container whose monitor and process died first.
	if _, err := e.State(id); err != nil {
		return nil, err
	}
	stoppedLock, err := e.lockIfStopped(id)
	if err != nil {
		return nil, err
	}
	unmountIfStopped := func() {
		if stoppedLock != nil {
			images.UnmountRootfs(id)
			stoppedLock.Unlock()
			return
		}
		if l, _ := e.lockIfStopped(id); l != nil {
			images.UnmountRootfs(id)
			l.Unlock()
		}
	}
	dir, err := images.MountRootfs(id)
	if err != nil {
		unmountIfStopped()
		return nil, err
	}
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unmountIfStopped()
		return nil, fmt.Errorf("opening container rootfs: %w", err)
	}
	var once sync.Once
	return &rootfsHandle{ref: ref, rec: rec, root: root, release: func() {
		once.Do(func() {
			root.Close()
			unmountIfStopped()
		})
	}}, nil
}

// lockIfStopped returns the container's monitor lock, held, if the
// container is not running; nil if it is.
func (e *Engine) lockIfStopped(id string) (*state.Lock, error) {
	if err := os.MkdirAll(e.containers.RunDir(id), 0o700); err != nil {
		return nil, fmt.Errorf("creating runtime directory: %w", err)
	}
	l, ok, err := state.TryLockFile(e.containers.MonitorLockPath(id))
	if err != nil || !ok {
		return nil, err
	}
	// No monitor. A process without one (its monitor was killed) still
	// runs in the mount.
	st, err := e.containers.State(id)
	if err != nil {
		l.Unlock()
		return nil, err
	}
	if st.Active() {
		l.Unlock()
		return nil, nil
	}
	return l, nil
}

// splitPath cleans a container path (relative paths are taken from /) and
// tells whether it asserts a directory: a trailing "/" or "/.". The
// result has no trailing slash, except "/" itself; "dir/." stays so.
func splitPath(p string) (clean string, assertsDir, dot bool) {
	assertsDir = strings.HasSuffix(p, "/") || p == "." || strings.HasSuffix(p, "/.")
	dot = p == "." || strings.HasSuffix(p, "/.")
	clean = path.Clean("/" + p)
	return clean, assertsDir, dot
}

// statPath is ContainerStatPath in root.
func statPath(root *os.File, p string) (PathStat, error) {
	clean, assertsDir, dot := splitPath(p)
	name := path.Base(clean)
	if dot {
		name = "."
	}
	var st unix.Stat_t
	if clean == "/" || assertsDir {
		f, err := pathrs.OpenatInRoot(root, clean)
		if err != nil {
			return PathStat{}, err
		}
		defer f.Close()
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return PathStat{}, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return PathStat{}, fmt.Errorf("%s: %w", p, unix.ENOTDIR)
		}
		return pathStat(name, &st, ""), nil
	}
	dir, err := pathrs.OpenatInRoot(root, path.Dir(clean))
	if err != nil {
		return PathStat{}, err
	}
	defer dir.Close()
	base := path.Base(clean)
	if err := unix.Fstatat(int(dir.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return PathStat{}, err
	}
	link := ""
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		link = resolveLink(root, dir, clean, base)
	}
	return pathStat(name, &st, link), nil
}

// resolveLink returns where the symlink at clean leads within root, as an
// absolute path in root: fully resolved when it exists, else its target
// joined to its directory.
func resolveLink(root, dir *os.File, clean, base string) string {
	if f, err := pathrs.OpenatInRoot(root, clean); err == nil {
		defer f.Close()
		rootPath, err1 := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", root.Fd()))
		p, err2 := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
		if err1 == nil && err2 == nil {
			if rootPath == "/" {
				return p
			}
			if p == rootPath {
				return "/"
			}
			if rel, ok := strings.CutPrefix(p, rootPath+"/"); ok {
				return "/" + rel
			}
		}
	}
	target, err := readlinkat(dir, base)
	if err != nil {
		return ""
	}
	if !strings.HasPrefix(target, "/") {
		target = path.Dir(clean) + "/" + target
	}
	return path.Clean(target)
}

func pathStat(name string, st *unix.Stat_t, link string) PathStat {
	return PathStat{
		Name:       name,
		Size:       st.Size,
		Mode:       fileMode(st.Mode),
		Mtime:      time.Unix(st.Mtim.Unix()),
		LinkTarget: link,
	}
}

// fileMode converts a stat mode to an fs.FileMode (as os.Lstat does).
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// source is what an archive is made of: either name in dir (not
// followed), or the already opened target (followed).
type source struct {
	dir    *os.File // O_PATH parent directory, with name
	name   string
	target *os.File // O_PATH, when followed
	entry  string   // the archive's top entry name
	stat   PathStat
}

func (s *source) close() {
	if s.dir != nil {
		s.dir.Close()
	}
	if s.target != nil {
		s.target.Close()
	}
}

// openSource resolves an archive's source in root: the directories
// leading to it within root, the last element itself only with follow or
// a trailing "/" or "/.".
func openSource(root *os.File, p string, follow bool) (*source, error) {
	clean, assertsDir, dot := splitPath(p)
	s := &source{entry: path.Base(clean)}
	if dot || clean == "/" {
		s.entry = "."
	}
	var st unix.Stat_t
	if follow || assertsDir || clean == "/" {
		f, err := pathrs.OpenatInRoot(root, clean)
		if err != nil {
			return nil, err
		}
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, err
		}
		if assertsDir && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			f.Close()
			return nil, fmt.Errorf("%s: %w", p, unix.ENOTDIR)
		}
		s.target = f
	} else {
		dir, err := pathrs.OpenatInRoot(root, path.Dir(clean))
		if err != nil {
			return nil, err
		}
		s.dir, s.name = dir, path.Base(clean)
		if err := unix.Fstatat(int(dir.Fd()), s.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			dir.Close()
			return nil, err
		}
	}
	s.stat = pathStat(s.entry, &st, "")
	if s.entry != "." {
		s.stat.Name = path.Base(clean)
	}
	return s, nil
}

// streamArchive writes the archive of src in a goroutine; closing the
// returned stream stops it, waits for it and calls release.
func streamArchive(src *source, release func()) io.ReadCloser {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer release()
		defer src.close()
		a := &archiver{tw: tar.NewWriter(pw), links: map[[2]uint64]string{}}
		err := a.source(src)
		if err == nil {
			err = a.tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return &archiveStream{PipeReader: pr, done: done}
}

type archiveStream struct {
	*io.PipeReader
	done chan struct{}
}

func (s *archiveStream) Close() error {
	s.PipeReader.CloseWithError(errors.New("archive stream closed"))
	<-s.done
	return nil
}

// archiver writes a tar archive of a tree without following any symlink.
type archiver struct {
	tw    *tar.Writer
	links map[[2]uint64]string // dev, ino of files with several links → first entry
	buf   []byte
}

func (a *archiver) source(s *source) error {
	if s.target == nil {
		return a.entry(s.dir, s.name, s.entry)
	}
	// A followed target: a directory or a file (a symlink was followed).
	var st unix.Stat_t
	if err := unix.Fstat(int(s.target.Fd()), &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		d, err := openat(s.target, ".", unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return err
		}
		defer d.Close()
		return a.dir(d, s.entry)
	case unix.S_IFREG:
		f, err := pathrs.Reopen(s.target, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
		if err != nil {
			return err
		}
		defer f.Close()
		return a.file(f, s.entry)
	default:
		return a.special(&st, "", s.entry)
	}
}

// entry archives name in dir.
func (a *archiver) entry(dir *os.File, name, entry string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		d, err := openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		defer d.Close()
		return a.dir(d, entry)
	case unix.S_IFREG:
		f, err := openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY)
		if err != nil {
			return err
		}
		defer f.Close()
		return a.file(f, entry)
	case unix.S_IFLNK:
		target, err := readlinkat(dir, name)
		if err != nil {
			return err
		}
		return a.special(&st, target, entry)
	default:
		return a.special(&st, "", entry)
	}
}

func header(st *unix.Stat_t, name string) *tar.Header {
	return &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Format:  tar.FormatPAX,
	}
}

func (a *archiver) dir(d *os.File, entry string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return err
	}
	hdr := header(&st, entry+"/")
	hdr.Typeflag = tar.TypeDir
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		err := a.entry(d, n, entry+"/"+n)
		if errors.Is(err, unix.ENOENT) {
			continue // removed meanwhile (a running container)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *archiver) file(f *os.File, entry string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // replaced meanwhile by something else: skipped
	}
	hdr := header(&st, entry)
	hdr.Typeflag = tar.TypeReg
	if st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := a.links[key]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			return a.tw.WriteHeader(hdr)
		}
		a.links[key] = entry
	}
	hdr.Size = st.Size
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if a.buf == nil {
		a.buf = make([]byte, 128<<10)
	}
	n, err := io.CopyBuffer(a.tw, io.LimitReader(f, st.Size), a.buf)
	if err != nil {
		return err
	}
	// The file shrank meanwhile: pad, so that the archive stays whole.
	for ; n < st.Size; n++ {
		if _, err := a.tw.Write([]byte{0}); err != nil {
			return err
		}
	}
	return nil
}

// special archives a symlink, fifo or device (sockets are skipped).
func (a *archiver) special(st *unix.Stat_t, link, entry string) error {
	hdr := header(st, entry)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = link
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	default:
		return nil
	}
	return a.tw.WriteHeader(hdr)
}

// openExtractPoint opens the directory an archive is extracted to: p with
// every symlink, the last one too, resolved within root.
func openExtractPoint(root *os.File, p string) (*os.File, error) {
	clean, _, _ := splitPath(p)
	d, err := pathrs.OpenatInRoot(root, clean)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		d.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		d.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotDirectory, p)
	}
	return d, nil
}

// extractor writes a tar archive below a directory descriptor, one name
// at a time, never following a symlink.
type extractor struct {
	root        *os.File // O_PATH, the extraction point
	noOverwrite bool     // NoOverwriteDirNonDir
	devices     bool     // create device nodes
	chown       bool     // set owners: the archive's, or uid:gid with forceOwner
	forceOwner  bool
	uid, gid    int
	stripSetID  bool // drop setuid/setgid from non-directories
	dirs        []dirTime
}

type dirTime struct {
	name  string
	atime time.Time
	mtime time.Time
}

// cleanEntry checks an archive entry name and returns it cleaned and
// relative to the extraction point ("" for the point itself).
func cleanEntry(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q: absolute path", ErrUnsafeArchive, name)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q: outside the destination", ErrUnsafeArchive, name)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

func (x *extractor) extract(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
	// Directory times last, deepest first: writing into a directory
	// changes its mtime.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		dir, base, err := x.parent(d.name, false)
		if err != nil {
			continue
		}
		setTimes(dir, base, d.atime, d.mtime)
		dir.Close()
	}
	return nil
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	case tar.TypeChar, tar.TypeBlock:
		if !x.devices {
			return nil
		}
	default:
		return nil // pax global headers, GNU volume labels, …
	}
	name, err := cleanEntry(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		if hdr.Typeflag == tar.TypeDir {
			return nil // the extraction point itself
		}
		return fmt.Errorf("%w: %q: not a directory", ErrUnsafeArchive, hdr.Name)
	}
	dir, base, err := x.parent(name, true)
	if err != nil {
		return err
	}
	defer dir.Close()

	var st unix.Stat_t
	exists := unix.Fstatat(int(dir.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
	if exists {
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if x.noOverwrite && isDir && hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("cannot overwrite directory %q with non-directory %q", name, hdr.Name)
		}
		if x.noOverwrite && !isDir && hdr.Typeflag == tar.TypeDir {
			return fmt.Errorf("cannot overwrite non-directory %q with directory %q", name, hdr.Name)
		}
		if !(isDir && hdr.Typeflag == tar.TypeDir) {
			// Replaced, never written through: it may be a symlink.
			if err := removeAllAt(dir, base); err != nil {
				return fmt.Errorf("replacing %s: %w", name, err)
			}
			exists = false
		}
	}
	uid, gid := hdr.Uid, hdr.Gid
	if x.forceOwner {
		uid, gid = x.uid, x.gid
	}
	mode := uint32(hdr.Mode & 0o7777)
	if x.stripSetID && hdr.Typeflag != tar.TypeDir {
		mode &^= unix.S_ISUID | unix.S_ISGID
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := unix.Mkdirat(int(dir.Fd()), base, 0o700); err != nil {
				return fmt.Errorf("creating %s: %w", name, err)
			}
		}
		d, err := openat(dir, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		err = x.setOwnerMode(d, uid, gid, mode)
		d.Close()
		if err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		x.dirs = append(x.dirs, dirTime{name: name, atime: atime, mtime: hdr.ModTime})
		return nil
	case tar.TypeReg, tar.TypeRegA:
		f, err := openat(dir, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		_, err = io.Copy(f, tr)
		if err == nil {
			err = x.setOwnerMode(f, uid, gid, mode)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, int(dir.Fd()), base); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		if x.chown {
			if err := unix.Fchownat(int(dir.Fd()), base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("creating %s: %w", name, err)
			}
		}
	case tar.TypeLink:
		target, err := cleanEntry(hdr.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("%w: hard link %q to %q: outside the destination", ErrUnsafeArchive, hdr.Name, hdr.Linkname)
		}
		tdir, tbase, err := x.parent(target, false)
		if err != nil {
			return fmt.Errorf("hard link %s: %w", name, err)
		}
		err = unix.Linkat(int(tdir.Fd()), tbase, int(dir.Fd()), base, 0)
		tdir.Close()
		if err != nil {
			return fmt.Errorf("hard link %s to %s: %w", name, target, err)
		}
		return nil
	case tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
		kind := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			kind = unix.S_IFCHR
		case tar.TypeBlock:
			kind = unix.S_IFBLK
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(int(dir.Fd()), base, kind|(mode&0o777), dev); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		if x.chown {
			if err := unix.Fchownat(int(dir.Fd()), base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("creating %s: %w", name, err)
			}
		}
	}
	setTimes(dir, base, atime, hdr.ModTime)
	return nil
}

func (x *extractor) setOwnerMode(f *os.File, uid, gid int, mode uint32) error {
	if x.chown {
		if err := unix.Fchown(int(f.Fd()), uid, gid); err != nil {
			return err
		}
	}
	// After chown, which clears setuid and setgid.
	return unix.Fchmod(int(f.Fd()), mode)
}

func setTimes(dir *os.File, base string, atime, mtime time.Time) {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	unix.UtimesNanoAt(int(dir.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// parent opens the directory that holds name (cleaned, relative to the
// extraction point), walking one element at a time without following
// symlinks; with create, missing directories are made (0755, owned by
// root or the caller).
func (x *extractor) parent(name string, create bool) (*os.File, string, error) {
	dir, err := openat(x.root, ".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, "", err
	}
	elems := strings.Split(name, "/")
	for i, e := range elems[:len(elems)-1] {
		next, err := openat(dir, e, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(int(dir.Fd()), e, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				if err == nil && x.chown {
					unix.Fchownat(int(dir.Fd()), e, x.uid, x.gid, unix.AT_SYMLINK_NOFOLLOW)
				}
				next, err = openat(dir, e, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
			}
		}
		if err != nil {
			sofar := strings.Join(elems[:i+1], "/")
			var st unix.Stat_t
			if unix.Fstatat(int(dir.Fd()), e, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = fmt.Errorf("%w: %q: %s is a symlink, not followed", ErrUnsafeArchive, name, sofar)
			} else {
				err = fmt.Errorf("%s: %w", sofar, err)
			}
			dir.Close()
			return nil, "", err
		}
		dir.Close()
		dir = next
	}
	return dir, elems[len(elems)-1], nil
}

// removeAllAt removes name in dir and, for a directory, everything below
// it, without following symlinks.
func removeAllAt(dir *os.File, name string) error {
	err := unix.Unlinkat(int(dir.Fd()), name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	d, err := openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(d, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(int(dir.Fd()), name, unix.AT_REMOVEDIR)
}

func openat(dir *os.File, name string, flags int, mode ...uint32) (*os.File, error) {
	var m uint32
	if len(mode) > 0 {
		m = mode[0]
	}
	for {
		fd, err := unix.Openat(int(dir.Fd()), name, flags|unix.O_CLOEXEC, m)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "openat", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

func readlinkat(dir *os.File, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(int(dir.Fd()), name, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlinkat", Path: name, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
