package commands

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/go-units"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/berth-dev/berth/engine"
)

const cpUsage = "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"

func cpCommand() *cli.Command {
	return &cli.Command{
		Name:  "cp",
		Usage: "copy files/folders between a container and the local filesystem",
		Description: "Use '-' as the source to read a tar archive from stdin and extract it to a\n" +
			"directory destination in a container. Use '-' as the destination to stream a\n" +
			"tar archive of a container source to stdout.",
		ArgsUsage: "CONTAINER:SRC_PATH DEST_PATH|-  or  SRC_PATH|- CONTAINER:DEST_PATH",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "archive", Aliases: []string{"a"}, Usage: "archive mode (copy all uid/gid information)"},
			&cli.BoolFlag{Name: "follow-link", Aliases: []string{"L"}, Usage: "always follow symbol link in SRC_PATH"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "suppress progress output during copy (automatic without a terminal)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("%q requires exactly 2 arguments\nUsage: berth cp %s", "cp", cpUsage)
			}
			src, dst := c.Args().Get(0), c.Args().Get(1)
			if src == "" {
				return usagef("source can not be empty")
			}
			if dst == "" {
				return usagef("destination can not be empty")
			}
			srcCtr, srcPath := splitCpArg(src)
			dstCtr, dstPath := splitCpArg(dst)
			o := engine.CopyOptions{
				FollowLink:           c.Bool("follow-link"),
				CopyUIDGID:           c.Bool("archive"),
				NoOverwriteDirNonDir: true,
			}
			quiet := c.Bool("quiet") || !isTerminal(c.App.Writer)
			switch {
			case srcCtr != "" && dstCtr != "":
				return usagef("copying between containers is not supported")
			case srcCtr == "" && dstCtr == "":
				return usagef("must specify at least one container source\nUsage: berth cp %s", cpUsage)
			}
			return withEngine(c, func(e *engine.Engine) error {
				if srcCtr != "" {
					return copyFromContainer(c, e, srcCtr, srcPath, dstPath, o, quiet)
				}
				return copyToContainer(c, e, srcPath, dstCtr, dstPath, o, quiet)
			})
		},
	}
}

// splitCpArg splits CONTAINER:PATH. A local path with a colon must be
// made explicit: absolute, or starting with "." (as docker and scp do).
func splitCpArg(arg string) (ctr, path string) {
	if filepath.IsAbs(arg) {
		return "", arg
	}
	ctr, path, ok := strings.Cut(arg, ":")
	if !ok || strings.HasPrefix(ctr, ".") {
		return "", arg
	}
	return ctr, path
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func copyFromContainer(c *cli.Context, e *engine.Engine, ctr, srcPath, dstPath string, o engine.CopyOptions, quiet bool) error {
	if dstPath == "-" {
		rc, _, err := e.CopyFromContainer(c.Context, ctr, srcPath, o)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(c.App.Writer, rc)
		return err
	}
	dst, err := localPath(dstPath)
	if err != nil {
		return err
	}
	rc, stat, err := e.CopyFromContainer(c.Context, ctr, srcPath, o)
	if err != nil {
		return err
	}
	defer rc.Close()
	counted := &countingReader{r: rc}
	dstInfo, err := hostDestInfo(dst)
	if err != nil {
		return err
	}
	srcInfo := copyInfo{Path: srcPath, Exists: true, IsDir: stat.Mode.IsDir()}
	dstDir, content, err := prepareArchiveCopy(counted, stat.Name, srcInfo, dstInfo)
	if err != nil {
		return err
	}
	defer content.Close()
	if err := engine.ExtractToHost(dstDir, content, o); err != nil {
		return err
	}
	if !quiet {
		size := counted.n
		if !stat.Mode.IsDir() {
			size = stat.Size
		}
		fmt.Fprintf(c.App.ErrWriter, "Successfully copied %s to %s\n", units.HumanSizeWithPrecision(float64(size), 3), dst)
	}
	return nil
}

func copyToContainer(c *cli.Context, e *engine.Engine, srcPath, ctr, dstPath string, o engine.CopyOptions, quiet bool) error {
	// What the destination is decides where the archive goes and how its
	// entries are named. A failed stat is not an error yet: the parent may
	// exist, and the extraction tells.
	dstInfo := copyInfo{Path: dstPath}
	st, err := e.ContainerStatPath(c.Context, ctr, dstPath)
	if errors.Is(err, engine.ErrNoSuchContainer) {
		return err
	}
	if err == nil && st.Mode&fs.ModeSymlink != 0 {
		dstInfo.Path = st.LinkTarget
		st, err = e.ContainerStatPath(c.Context, ctr, st.LinkTarget)
	}
	if err == nil {
		if err := validateDestMode(st.Mode); err != nil {
			return fmt.Errorf("destination \"%s:%s\" must be a directory or a regular file: %w", ctr, dstPath, err)
		}
		dstInfo.Exists, dstInfo.IsDir = true, st.Mode.IsDir()
	}

	if srcPath == "-" {
		if !dstInfo.IsDir {
			return fmt.Errorf("destination \"%s:%s\" must be a directory", ctr, dstPath)
		}
		return e.CopyToContainer(c.Context, ctr, dstInfo.Path, c.App.Reader, o)
	}
	src, err := localPath(srcPath)
	if err != nil {
		return err
	}
	rc, srcStat, err := engine.ArchiveHostPath(src, o)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lstat %s: no such file or directory", src)
		}
		return err
	}
	defer rc.Close()
	counted := &countingReader{r: rc}
	srcInfo := copyInfo{Path: src, Exists: true, IsDir: srcStat.Mode.IsDir()}
	dstDir, content, err := prepareArchiveCopy(counted, srcStat.Name, srcInfo, dstInfo)
	if err != nil {
		return err
	}
	defer content.Close()
	if err := e.CopyToContainer(c.Context, ctr, dstDir, content, o); err != nil {
		return err
	}
	if !quiet {
		fmt.Fprintf(c.App.ErrWriter, "Successfully copied %s to %s:%s\n", units.HumanSizeWithPrecision(float64(localContentSize(src, srcStat, counted.n)), 3), ctr, dstInfo.Path)
	}
	return nil
}

func validateDestMode(m fs.FileMode) error {
	switch {
	case m&fs.ModeDevice != 0:
		return errors.New("got a device")
	case m&fs.ModeIrregular != 0, m&fs.ModeSocket != 0, m&fs.ModeNamedPipe != 0:
		return errors.New("got an irregular file")
	}
	return nil
}

// localContentSize is the size of the regular files copied, for the
// summary line.
func localContentSize(p string, st engine.PathStat, transferred int64) int64 {
	if !st.Mode.IsDir() {
		if st.Mode.IsRegular() {
			return st.Size
		}
		return 0
	}
	var total int64
	if filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	}) != nil {
		return transferred
	}
	return total
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// copyInfo is what docker's client knows of a copy's source or
// destination.
type copyInfo struct {
	Path   string
	Exists bool
	IsDir  bool
}

// localPath makes a host path absolute, keeping a trailing "/" or "/.".
func localPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return preserveTrailingDotOrSeparator(abs, p), nil
}

func preserveTrailingDotOrSeparator(cleaned, original string) string {
	if filepath.Base(cleaned) != "." && filepath.Base(original) == "." {
		if !strings.HasSuffix(cleaned, "/") {
			cleaned += "/"
		}
		cleaned += "."
	}
	if !strings.HasSuffix(cleaned, "/") && strings.HasSuffix(original, "/") {
		cleaned += "/"
	}
	return cleaned
}

func assertsDirectory(p string) bool {
	return strings.HasSuffix(p, "/") || filepath.Base(p) == "."
}

// splitPathDirEntry splits a path into its directory and last element,
// keeping a final "." ("dir/." → "dir", ".").
func splitPathDirEntry(p string) (dir, base string) {
	cleaned := filepath.Clean(p)
	if filepath.Base(p) == "." && cleaned != "." {
		cleaned += "/."
	}
	return filepath.Dir(cleaned), filepath.Base(cleaned)
}

// hostDestInfo is docker's CopyInfoDestinationPath: the host destination,
// symlinks followed (the user's own); if it does not exist, its parent
// must be a directory.
func hostDestInfo(p string) (copyInfo, error) {
	original := p
	st, err := os.Lstat(p)
	for n := 0; err == nil && st.Mode()&fs.ModeSymlink != 0; n++ {
		if n > 10 {
			return copyInfo{}, fmt.Errorf("too many symlinks in %s", original)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return copyInfo{}, err
		}
		if !filepath.IsAbs(target) {
			dir, _ := splitPathDirEntry(p)
			target = filepath.Join(dir, target)
		}
		p = target
		st, err = os.Lstat(p)
		if err != nil {
			break
		}
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return copyInfo{}, err
		}
		dir, _ := splitPathDirEntry(p)
		pst, err := os.Stat(dir)
		if err != nil {
			return copyInfo{}, err
		}
		if !pst.IsDir() {
			return copyInfo{}, fmt.Errorf("%s: not a directory", dir)
		}
		return copyInfo{Path: p}, nil
	}
	return copyInfo{Path: p, Exists: true, IsDir: st.IsDir()}, nil
}

// prepareArchiveCopy is docker's rule for a copy: from what the source
// (an archive whose entries start with srcBase) and the destination are,
// it returns the directory to extract to and the archive, renamed if the
// copy takes the destination's name.
func prepareArchiveCopy(content io.Reader, srcBase string, src, dst copyInfo) (string, io.ReadCloser, error) {
	dstDir, dstBase := splitPathDirEntry(dst.Path)
	switch {
	case dst.Exists && dst.IsDir:
		// Into the existing directory, as it is.
		return dst.Path, io.NopCloser(content), nil
	case dst.Exists && src.IsDir:
		return "", nil, errors.New("cannot copy directory")
	case !dst.Exists && !src.IsDir && assertsDirectory(dst.Path):
		return "", nil, errors.New("no such directory")
	default:
		// A file replacing a file, or a new file or directory taking the
		// destination's name, made in its parent.
		return dstDir, rebaseArchive(content, srcBase, dstBase), nil
	}
}

// rebaseArchive renames the leading element oldBase of every entry (and
// hard link target) to newBase.
func rebaseArchive(content io.Reader, oldBase, newBase string) io.ReadCloser {
	rebase := func(name string) string {
		if name == oldBase || strings.HasPrefix(name, oldBase+"/") {
			return newBase + name[len(oldBase):]
		}
		return name
	}
	pr, pw := io.Pipe()
	go func() {
		tr := tar.NewReader(content)
		tw := tar.NewWriter(pw)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			hdr.Format = tar.FormatPAX
			hdr.Name = rebase(hdr.Name)
			if hdr.Typeflag == tar.TypeLink {
				hdr.Linkname = rebase(hdr.Linkname)
			}
			if err := tw.WriteHeader(hdr); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}
