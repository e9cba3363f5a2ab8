package commands

// The image manager's commands: tag, rmi, save, export, image prune,
// image inspect, and the `image` group (ls, rm, tag, inspect, prune, save,
// load, import), which maps onto the same code.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/storage"
)

func tagCommand() *cli.Command {
	return &cli.Command{
		Name:      "tag",
		Usage:     "create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		ArgsUsage: "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("%q requires exactly 2 arguments\nUsage: berth %s SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", c.Command.Name, c.Command.Name)
			}
			return withEngine(c, func(e *engine.Engine) error {
				return e.ImageTag(c.Context, c.Args().Get(0), c.Args().Get(1))
			})
		},
	}
}

func rmiCommand() *cli.Command {
	return &cli.Command{
		Name:      "rmi",
		Usage:     "remove one or more images",
		ArgsUsage: "IMAGE [IMAGE...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "force removal of the image"},
			&cli.BoolFlag{Name: "no-prune", Usage: "do not delete untagged parents"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] IMAGE [IMAGE...]"); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				var first error
				for _, ref := range c.Args().Slice() {
					records, err := e.ImageRemove(c.Context, ref, engine.ImageRemoveOptions{Force: c.Bool("force"), NoPrune: c.Bool("no-prune")})
					for _, r := range records {
						if r.Deleted != "" {
							fmt.Fprintf(c.App.Writer, "Deleted: %s\n", r.Deleted)
						} else {
							fmt.Fprintf(c.App.Writer, "Untagged: %s\n", r.Untagged)
						}
					}
					if err != nil {
						if first != nil {
							fmt.Fprintf(c.App.ErrWriter, "Error: %v\n", first)
						}
						first = err
					}
				}
				return first
			})
		},
	}
}

// parseFilters turns repeated -f KEY=VALUE flags into a map.
func parseFilters(items []string) (map[string][]string, error) {
	filters := map[string][]string{}
	for _, item := range items {
		key, value, ok := strings.Cut(item, "=")
		if !ok {
			return nil, usagef("bad format of filter (expected name=value): %s", item)
		}
		filters[key] = append(filters[key], value) // "label!=x": key "label!"
	}
	return filters, nil
}

func imagePruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove unused images (no prompt: berth never asks)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "remove all images not used by a container, not just dangling ones"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not prompt for confirmation (berth never prompts)"},
			&cli.StringSliceFlag{Name: "filter", Usage: "provide filter values (label=KEY[=VALUE], label!=…, until=TIME)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("\"berth image prune\" accepts no arguments\nUsage: berth image prune [OPTIONS]")
			}
			filters, err := parseFilters(c.StringSlice("filter"))
			if err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				report, err := e.ImagePrune(c.Context, engine.ImagePruneOptions{All: c.Bool("all"), Filters: filters})
				if report != nil && len(report.ImagesDeleted) > 0 {
					var sb strings.Builder
					sb.WriteString("Deleted Images:\n")
					for _, r := range report.ImagesDeleted {
						if r.Untagged != "" {
							sb.WriteString("untagged: " + r.Untagged + "\n")
						} else {
							sb.WriteString("deleted: " + r.Deleted + "\n")
						}
					}
					fmt.Fprintln(c.App.Writer, sb.String())
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, "Total reclaimed space:", humanSize(int64(report.SpaceReclaimed)))
				return nil
			})
		},
	}
}

func imageInspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "display detailed information on one or more images",
		ArgsUsage: "IMAGE [IMAGE...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "format output using a Go template"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] IMAGE [IMAGE...]"); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				return inspectAll(c, e, "image")
			})
		},
	}
}

// outputFile writes to path through a temporary file in the same
// directory, renamed into place by commit; abort removes it.
type outputFile struct {
	*os.File
	path string
}

func createOutput(path string) (*outputFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, usagef("failed to save: %v", err)
	}
	return &outputFile{File: f, path: path}, nil
}

func (o *outputFile) commit() error {
	if err := o.Chmod(0o644); err != nil {
		o.abort()
		return err
	}
	if err := o.Close(); err != nil {
		os.Remove(o.Name())
		return err
	}
	return os.Rename(o.Name(), o.path)
}

func (o *outputFile) abort() {
	o.Close()
	os.Remove(o.Name())
}

// writeTo runs write on the file named by -o, or on stdout, which must
// not be a terminal.
func writeTo(c *cli.Context, output string, write func(io.Writer) error) error {
	if output == "" || output == "-" {
		if isTerminal(c.App.Writer) {
			return usagef("cowardly refusing to save to a terminal. Use the -o flag or redirect")
		}
		return write(c.App.Writer)
	}
	f, err := createOutput(output)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.abort()
		return err
	}
	return f.commit()
}

func saveCommand() *cli.Command {
	return &cli.Command{
		Name:      "save",
		Usage:     "save one or more images to a tar archive (streamed to STDOUT by default)",
		ArgsUsage: "IMAGE [IMAGE...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to a file (a directory for oci-dir), instead of STDOUT"},
			&cli.StringFlag{Name: "format", Value: storage.FormatDockerArchive, Usage: "docker-archive, oci-archive or oci-dir"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] IMAGE [IMAGE...]"); err != nil {
				return err
			}
			format, output := c.String("format"), c.String("output")
			refs := c.Args().Slice()
			return withEngine(c, func(e *engine.Engine) error {
				if format == storage.FormatOCIDir {
					return e.Save(c.Context, nil, refs, engine.SaveOptions{Format: format, Dir: output})
				}
				return writeTo(c, output, func(w io.Writer) error {
					return e.Save(c.Context, w, refs, engine.SaveOptions{Format: format})
				})
			})
		},
	}
}

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "export a container's filesystem as a tar archive",
		ArgsUsage: "CONTAINER",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to a file, instead of STDOUT"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("%q requires exactly 1 argument\nUsage: berth export [OPTIONS] CONTAINER", c.Command.Name)
			}
			return withEngine(c, func(e *engine.Engine) error {
				return writeTo(c, c.String("output"), func(w io.Writer) error {
					return e.Export(c.Context, c.Args().First(), w)
				})
			})
		},
	}
}

// isURL tells whether an import source is to be downloaded.
func isURL(src string) bool {
	return strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://")
}

// imageCommand is the `image` group.
func imageCommand() *cli.Command {
	sub := func(cmd *cli.Command, name string, aliases ...string) *cli.Command {
		cmd.Name, cmd.Aliases = name, aliases
		return cmd
	}
	group := &cli.Command{
		Name:  "image",
		Usage: "manage images",
		Subcommands: []*cli.Command{
			sub(imagesCommand(), "ls", "list"),
			sub(rmiCommand(), "rm", "remove"),
			tagCommand(),
			imageInspectCommand(),
			imagePruneCommand(),
			saveCommand(),
			loadCommand(),
			importCommand(),
			buildCommand(),
			historyCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q for \"berth image\"", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
	}
	for _, cmd := range group.Subcommands {
		cmd.OnUsageError = func(c *cli.Context, err error, isSub bool) error { return &UsageError{Err: err} }
		cmd.UseShortOptionHandling = true
	}
	return group
}
