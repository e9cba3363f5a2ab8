package commands

// Layers: diff, commit, history.

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/storage"
)

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "inspect changes to files or directories on a container's filesystem",
		ArgsUsage: "CONTAINER",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("%q requires exactly 1 argument\nUsage: berth diff CONTAINER", c.Command.Name)
			}
			return withEngine(c, func(e *engine.Engine) error {
				changes, err := e.ContainerDiff(c.Context, c.Args().First())
				if err != nil {
					return err
				}
				var sb strings.Builder
				for _, ch := range changes {
					sb.WriteString(ch.String() + "\n")
				}
				_, err = fmt.Fprint(c.App.Writer, sb.String())
				return err
			})
		},
	}
}

func commitCommand() *cli.Command {
	return &cli.Command{
		Name:      "commit",
		Usage:     "create a new image from a container's changes",
		ArgsUsage: "CONTAINER [REPOSITORY[:TAG]]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "author", Aliases: []string{"a"}, Usage: `author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`},
			&cli.StringSliceFlag{Name: "change", Aliases: []string{"c"}, Usage: "apply Dockerfile instruction to the created image"},
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "commit message"},
			&cli.BoolFlag{Name: "pause", Aliases: []string{"p"}, Value: true, Usage: "pause container during commit"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usagef("\"commit\" requires at least 1 and at most 2 arguments\nUsage: berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]")
			}
			o := engine.CommitOptions{
				Ref:     c.Args().Get(1),
				Author:  c.String("author"),
				Message: c.String("message"),
				Changes: c.StringSlice("change"),
				Pause:   c.Bool("pause"),
			}
			return withEngine(c, func(e *engine.Engine) error {
				img, err := e.Commit(c.Context, c.Args().First(), o)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, "sha256:"+img.ID)
				return nil
			})
		},
	}
}

const historyDefaultFormat = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"

var historyHeaders = map[string]string{
	"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
	"CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
}

func historyCommand() *cli.Command {
	return &cli.Command{
		Name:      "history",
		Usage:     "show the history of an image",
		ArgsUsage: "IMAGE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "human", Aliases: []string{"H"}, Value: true, Usage: "print sizes and dates in human readable format"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "don't truncate output"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only show image IDs"},
			&cli.StringFlag{Name: "format", Usage: "format output using a Go template"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("%q requires exactly 1 argument\nUsage: berth history [OPTIONS] IMAGE", c.Command.Name)
			}
			return withEngine(c, func(e *engine.Engine) error {
				entries, err := e.ImageHistory(c.Context, c.Args().First())
				if err != nil {
					return err
				}
				rows := make([]any, len(entries))
				for i := range entries {
					rows[i] = &historyRow{h: &entries[i], human: c.Bool("human"), trunc: !c.Bool("no-trunc")}
				}
				format := c.String("format")
				switch {
				case c.Bool("quiet"):
					format = "{{.ID}}"
				case format == "":
					format = historyDefaultFormat
				}
				return writeFormatted(c.App.Writer, format, rows, historyHeaders)
			})
		},
	}
}

// historyRow gives a history entry docker history's field names.
type historyRow struct {
	h     *storage.HistoryEntry
	human bool
	trunc bool
}

func (r *historyRow) ID() string {
	if r.h.ID == "" {
		return "<missing>"
	}
	if r.trunc {
		return r.h.ID[:12]
	}
	return "sha256:" + r.h.ID
}

func (r *historyRow) CreatedSince() string {
	if r.h.Created.IsZero() {
		return "N/A"
	}
	if !r.human {
		return r.CreatedAt()
	}
	return humanDuration(time.Since(r.h.Created)) + " ago"
}

func (r *historyRow) CreatedAt() string {
	if r.h.Created.IsZero() {
		return "N/A"
	}
	return r.h.Created.Local().Format(time.RFC3339)
}

func (r *historyRow) CreatedBy() string {
	createdBy := strings.ReplaceAll(r.h.CreatedBy, "\t", " ")
	if r.trunc {
		return ellipsis(createdBy, 45)
	}
	return createdBy
}

func (r *historyRow) Size() string {
	if r.human {
		return humanSizePrecision(r.h.Size, 3)
	}
	return strconv.FormatInt(r.h.Size, 10)
}

func (r *historyRow) Comment() string { return r.h.Comment }

// Tags are the names of the image the entry made (not in docker's
// formatter; berth's addition).
func (r *historyRow) Tags() string { return strings.Join(r.h.Tags, ", ") }

// ellipsis cuts s to width runes, the last one an ellipsis, as docker's
// formatter does.
func ellipsis(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	runes := []rune(s)
	return string(runes[:width-1]) + "…"
}

// humanSizePrecision is go-units' HumanSizeWithPrecision.
func humanSizePrecision(n int64, precision int) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.*g%s", precision, f, units[i])
}
