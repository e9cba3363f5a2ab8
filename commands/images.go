package commands

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/storage"
)

const imagesDefaultFormat = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"

const imagesDigestsFormat = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"

var imagesHeaders = map[string]string{
	"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
	"Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}

func imagesCommand() *cli.Command {
	return &cli.Command{
		Name:      "images",
		Usage:     "list images",
		ArgsUsage: "[REPOSITORY[:TAG]]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show all images (berth has no intermediate images)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only show image IDs"},
			&cli.BoolFlag{Name: "digests", Usage: "show digests"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "don't truncate output"},
			&cli.StringFlag{Name: "format", Usage: "format output using a Go template"},
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "filter output (dangling, reference, label, before, since, until)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usagef("%q requires at most 1 argument\nUsage: berth images [OPTIONS] [REPOSITORY[:TAG]]", c.Command.Name)
			}
			filters, err := parseFilters(c.StringSlice("filter"))
			if err != nil {
				return err
			}
			if want := c.Args().First(); want != "" {
				filters["reference"] = append(filters["reference"], want)
			}
			return withEngine(c, func(e *engine.Engine) error {
				imgs, err := e.ListImages(c.Context, engine.ImageListOptions{All: c.Bool("all"), Filters: filters})
				if err != nil {
					return err
				}
				var rows []any
				for i := range imgs {
					tags := imgs[i].Tags
					if len(tags) == 0 {
						tags = []string{""}
					}
					for _, n := range tags {
						rows = append(rows, &imageRow{img: &imgs[i], name: storage.FamiliarName(n), noTrunc: c.Bool("no-trunc")})
					}
				}
				format := c.String("format")
				switch {
				case c.Bool("quiet"):
					format = "{{.ID}}"
				case format == "" && c.Bool("digests"):
					format = imagesDigestsFormat
				case format == "":
					format = imagesDefaultFormat
				}
				return writeFormatted(c.App.Writer, format, rows, imagesHeaders)
			})
		},
	}
}

// imageRow gives one name of an image docker images' field names.
type imageRow struct {
	img     *engine.ImageSummary
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
func (r *imageRow) Size() string        { return humanSize(r.img.Size) }
func (r *imageRow) VirtualSize() string { return humanSize(r.img.Size) }
func (r *imageRow) SharedSize() string  { return "N/A" }
func (r *imageRow) UniqueSize() string  { return "N/A" }
func (r *imageRow) Containers() string  { return fmt.Sprint(r.img.Containers) }

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
				if isURL(src) {
					return withEngine(c, func(e *engine.Engine) error {
						o := engine.ImportOptions{Ref: c.Args().Get(1), Changes: c.StringSlice("change"), Message: c.String("message")}
						img, err := e.ImportURL(c.Context, src, o)
						if err != nil {
							return err
						}
						fmt.Fprintln(c.App.Writer, "sha256:"+img.ID)
						return nil
					})
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
			in := c.String("input")
			if in != "" {
				if _, err := os.Stat(in); err != nil {
					return usagef("load: %v", err)
				}
			}
			return withEngine(c, func(e *engine.Engine) error {
				var refs []string
				var err error
				if in != "" {
					refs, err = e.LoadPath(c.Context, in) // an archive or an OCI layout directory
				} else {
					refs, err = e.Load(c.Context, os.Stdin)
				}
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
