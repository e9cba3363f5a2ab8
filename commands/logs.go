package commands

import (
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
)

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "fetch the logs of a container",
		ArgsUsage: "CONTAINER",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "follow log output"},
			&cli.StringFlag{Name: "tail", Aliases: []string{"n"}, Value: "all", Usage: "number of lines to show from the end of the logs"},
			&cli.BoolFlag{Name: "timestamps", Aliases: []string{"t"}, Usage: "show timestamps"},
			&cli.StringFlag{Name: "since", Usage: "show logs since timestamp (RFC 3339 or Unix) or relative (e.g. 42m)"},
			&cli.StringFlag{Name: "until", Usage: "show logs before a timestamp (RFC 3339 or Unix) or relative (e.g. 42m)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("\"logs\" requires exactly 1 argument\nUsage: berth logs [OPTIONS] CONTAINER")
			}
			o := engine.LogsOptions{Follow: c.Bool("follow"), Timestamps: c.Bool("timestamps"), Tail: -1}
			if t := c.String("tail"); t != "all" && t != "" {
				n, err := strconv.Atoi(t)
				if err != nil {
					return usagef("invalid --tail %q: want a number or \"all\"", t)
				}
				o.Tail = n
			}
			var err error
			if o.Since, err = parseTimeArg("since", c.String("since")); err != nil {
				return err
			}
			if o.Until, err = parseTimeArg("until", c.String("until")); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				return e.Logs(c.Context, c.Args().First(), o, c.App.Writer, c.App.ErrWriter)
			})
		},
	}
}

// parseTimeArg reads docker's --since/--until values: RFC 3339 times,
// Unix seconds (with fractions), or durations before now ("10m").
func parseTimeArg(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	sec, frac, _ := strings.Cut(v, ".")
	if s, err := strconv.ParseInt(sec, 10, 64); err == nil {
		var ns int64
		if frac != "" {
			frac = (frac + "000000000")[:9]
			if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
				return time.Time{}, usagef("invalid --%s %q", name, v)
			}
		}
		return time.Unix(s, ns), nil
	}
	return time.Time{}, usagef("invalid --%s %q: want a time (RFC 3339 or Unix seconds) or a duration such as 10m", name, v)
}
