package commands

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/storage"
)

const imagesDefaultFormat = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"

var imagesHeaders = map[string]string{
	"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
}

func imagesCommand() *cli.Command {
	return &cli.Command{
		Name:      "images",
		Usage:     "list images",
		ArgsUsage: "[REPOSITORY[:TAG]]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show all images"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only show image IDs"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "don't truncate output"},
			&cli.StringFlag{Name: "format", Usage: "format output using a Go template"},
		},
		Action: func(c *cli.Context) error {
			return withEngine(c, func(e *engine.Engine) error {
				imgs, err := e.ImageList(c.Context)
				if err != nil {
					return err
				}
				sort.Slice(imgs, func(i, j int) bool { return imgs[i].Created.After(imgs[j].Created) })
				var rows []any
				seen := map[string]bool{}
				for _, img := range imgs {
					names := img.Names
					if len(names) == 0 {
						names = []string{""}
					}
					for _, n := range names {
						row := &imageRow{img: img, name: storage.FamiliarName(n), noTrunc: c.Bool("no-trunc")}
						if want := c.Args().First(); want != "" && !row.matches(want) {
							continue
						}
						if c.Bool("quiet") {
							if seen[img.ID] {
								continue
							}
							seen[img.ID] = true
						}
						rows = append(rows, row)
					}
				}
				format := c.String("format")
				if c.Bool("quiet") {
					format = "{{.ID}}"
				} else if format == "" {
					format = imagesDefaultFormat
				}
				return writeFormatted(c.App.Writer, format, rows, imagesHeaders)
			})
		},
	}
}

// imageRow gives one name of an image docker images' field names.
type imageRow struct {
	img     *storage.Image
	name    string // familiar name with tag, or "" for a dangling image
	noTrunc bool
}

func (r *imageRow) Repository() string {
	if r.name == "" {
		return "<none>"
	}
	repo, _ := splitTag(r.name)
	return repo
}

func (r *imageRow) Tag() string {
	if r.name == "" {
		return "<none>"
	}
	_, tag := splitTag(r.name)
	return tag
}

func (r *imageRow) ID() string {
	if r.noTrunc {
		return "sha256:" + r.img.ID
	}
	return r.img.ID[:12]
}

func (r *imageRow) Digest() string {
	if len(r.img.Digests) > 0 {
		return r.img.Digests[0]
	}
	return "<none>"
}

func (r *imageRow) CreatedSince() string { return humanDuration(time.Since(r.img.Created)) + " ago" }
func (r *imageRow) CreatedAt() string {
	return r.img.Created.Local().Format("2006-01-02 15:04:05 -0700 MST")
}
func (r *imageRow) Size() string { return humanSize(r.img.Size) }

func (r *imageRow) matches(want string) bool {
	repo, tag := splitTag(r.name)
	if strings.Contains(want, ":") {
		return r.name == want
	}
	_ = tag
	return repo == want
}

// splitTag splits "repo:tag" (the registry's port is not a tag).
func splitTag(name string) (repo, tag string) {
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i:], "/") {
		return name, "latest"
	}
	return name[:i], name[i+1:]
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import the contents from a tarball to create a filesystem image",
		ArgsUsage: "FILE|- [REPOSITORY[:TAG]]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "change", Aliases: []string{"c"}, Usage: "apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, …)"},
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "set a commit message for the imported image"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the image ID"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usagef("\"import\" requires 1 or 2 arguments\nUsage: berth import [OPTIONS] FILE|- [REPOSITORY[:TAG]]")
			}
			src := c.Args().Get(0)
			var r io.Reader = os.Stdin
			if src != "-" {
				if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
					return usagef("importing from a URL is not supported yet: %s", src)
				}
				f, err := os.Open(src)
				if err != nil {
					return usagef("import: %v", err)
				}
				defer f.Close()
				r = f
			}
			o := engine.ImportOptions{Ref: c.Args().Get(1), Changes: c.StringSlice("change"), Message: c.String("message")}
			return withEngine(c, func(e *engine.Engine) error {
				img, err := e.Import(c.Context, r, o)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, "sha256:"+img.ID)
				return nil
			})
		},
	}
}

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:  "load",
		Usage: "load images from a tar archive (docker-archive or OCI archive) or STDIN",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "read from a tar archive file instead of STDIN"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "suppress the load output"},
		},
		Action: func(c *cli.Context) error {
			var r io.Reader = os.Stdin
			if in := c.String("input"); in != "" {
				f, err := os.Open(in)
				if err != nil {
					return usagef("load: %v", err)
				}
				defer f.Close()
				r = f
			}
			return withEngine(c, func(e *engine.Engine) error {
				refs, err := e.Load(c.Context, r)
				if err != nil {
					return err
				}
				if c.Bool("quiet") {
					return nil
				}
				for _, ref := range refs {
					if strings.HasPrefix(ref, "sha256:") {
						fmt.Fprintf(c.App.Writer, "Loaded image ID: %s\n", ref)
					} else {
						fmt.Fprintf(c.App.Writer, "Loaded image: %s\n", storage.FamiliarName(ref))
					}
				}
				return nil
			})
		},
	}
}
