package commands

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/volume"
	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
)

const volumeLsDefaultFormat = "table {{.Driver}}\t{{.Name}}"

var volumeHeaders = map[string]string{
	"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE",
	"Labels": "LABELS", "CreatedAt": "CREATED AT", "Links": "LINKS", "Size": "SIZE",
}

// volumeRow is what `volume ls --format` sees.
type volumeRow struct{ v *volume.Volume }

func (r *volumeRow) Name() string       { return r.v.Name }
func (r *volumeRow) Driver() string     { return r.v.Driver }
func (r *volumeRow) Mountpoint() string { return r.v.Mountpoint }
func (r *volumeRow) Scope() string      { return r.v.Scope }
func (r *volumeRow) CreatedAt() string  { return r.v.CreatedAt }
func (r *volumeRow) Links() string      { return "N/A" }
func (r *volumeRow) Size() string       { return "N/A" }
func (r *volumeRow) Labels() string     { return joinLabels(r.v.Labels) }
func (r *volumeRow) Label(k string) string {
	return r.v.Labels[k]
}

func joinLabels(m map[string]string) string {
	var parts []string
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func volumeCommand() *cli.Command {
	group := &cli.Command{
		Name:  "volume",
		Usage: "manage volumes",
		Subcommands: []*cli.Command{
			volumeCreateCommand(), volumeLsCommand(), volumeInspectCommand(),
			volumeRmCommand(), volumePruneCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q for \"berth volume\"", c.Args().First())
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

func volumeCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a volume",
		ArgsUsage: "[VOLUME]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "driver", Aliases: []string{"d"}, Value: "local", Usage: "volume driver (local only)"},
			&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "set metadata (key=value)"},
			&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "driver options: type=tmpfs,device=tmpfs,o=size=…; or type=none,o=bind,device=/host/dir"},
			&cli.StringFlag{Name: "name", Usage: "the volume's name (instead of the argument)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usagef("\"berth volume create\" requires at most 1 argument\nUsage: berth volume create [OPTIONS] [VOLUME]")
			}
			name := c.Args().First()
			if n := c.String("name"); n != "" {
				if name != "" && name != n {
					return usagef("conflicting options: either specify --name or provide positional arg, not both")
				}
				name = n
			}
			labels, err := parseLabels(c.StringSlice("label"))
			if err != nil {
				return err
			}
			opts := map[string]string{}
			for _, o := range c.StringSlice("opt") {
				k, v, ok := strings.Cut(o, "=")
				if !ok || k == "" {
					return usagef("invalid option %q: want KEY=VALUE", o)
				}
				opts[k] = v
			}
			if len(opts) == 0 {
				opts = nil
			}
			if len(labels) == 0 {
				labels = nil
			}
			return withEngine(c, func(e *engine.Engine) error {
				v, err := e.VolumeCreate(c.Context, engine.VolumeCreateOptions{Name: name, Driver: c.String("driver"), Labels: labels, Options: opts})
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, v.Name)
				return nil
			})
		},
	}
}

func volumeLsCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list volumes",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only display volume names"},
			&cli.StringFlag{Name: "format", Usage: "format output using a Go template"},
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "filter output (name=, label=KEY[=VALUE], dangling=true|false, driver=)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("\"berth volume ls\" accepts no arguments\nUsage: berth volume ls [OPTIONS]")
			}
			filters, err := parseFilters(c.StringSlice("filter"))
			if err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				vols, err := e.VolumeList(c.Context, engine.VolumeListOptions{Filters: filters})
				if err != nil {
					return err
				}
				format := c.String("format")
				switch {
				case c.Bool("quiet"):
					format = "{{.Name}}"
				case format == "" || format == "table":
					format = volumeLsDefaultFormat
				}
				rows := make([]any, len(vols))
				for i, v := range vols {
					rows[i] = &volumeRow{v}
				}
				return writeFormatted(c.App.Writer, format, rows, volumeHeaders)
			})
		},
	}
}

func volumeInspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "display detailed information on one or more volumes",
		ArgsUsage: "VOLUME [VOLUME...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "format output using a Go template"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] VOLUME [VOLUME...]"); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				return printInspected(c, func(name string) (any, error) { return e.VolumeInspect(c.Context, name) })
			})
		},
	}
}

func volumeRmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Aliases:   []string{"remove"},
		Usage:     "remove one or more volumes (never one a container uses)",
		ArgsUsage: "VOLUME [VOLUME...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not fail on a volume that does not exist"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] VOLUME [VOLUME...]"); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				var first error
				for _, name := range c.Args().Slice() {
					if err := e.VolumeRemove(c.Context, name, c.Bool("force")); err != nil {
						if first != nil {
							fmt.Fprintf(c.App.ErrWriter, "Error: %v\n", first)
						}
						first = err
						continue
					}
					fmt.Fprintln(c.App.Writer, name)
				}
				return first
			})
		},
	}
}

func volumePruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove unused anonymous volumes (with -a unused named ones too; no prompt: berth never asks)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "remove all unused volumes, not just anonymous ones"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not prompt for confirmation (berth never prompts)"},
			&cli.StringSliceFlag{Name: "filter", Usage: "provide filter values (label=KEY[=VALUE], all=true)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("\"berth volume prune\" accepts no arguments\nUsage: berth volume prune [OPTIONS]")
			}
			filters, err := parseFilters(c.StringSlice("filter"))
			if err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				report, err := e.VolumePrune(c.Context, engine.VolumePruneOptions{All: c.Bool("all"), Filters: filters})
				if report != nil && len(report.VolumesDeleted) > 0 {
					fmt.Fprintln(c.App.Writer, "Deleted Volumes:\n"+strings.Join(report.VolumesDeleted, "\n")+"\n")
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
