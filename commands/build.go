package commands

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/build"
	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/state"
)

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:      "build",
		Usage:     "build an image from a Dockerfile",
		ArgsUsage: "PATH | -",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "tag", Aliases: []string{"t"}, Usage: "name and optionally a tag (name:tag); repeatable"},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "name of the Dockerfile (default PATH/Dockerfile; - reads stdin)"},
			&cli.StringSliceFlag{Name: "build-arg", Usage: "set a build-time variable (KEY=VALUE, or KEY to take it from the environment)"},
			&cli.StringFlag{Name: "target", Usage: "build stage to build"},
			&cli.BoolFlag{Name: "no-cache", Usage: "do not use the cache"},
			&cli.BoolFlag{Name: "layers", Value: true, Usage: "use and keep the step cache (podman's flag; --layers=false is --no-cache)"},
			&cli.StringSliceFlag{Name: "label", Usage: "set metadata on the image (KEY=VALUE)"},
			&cli.StringFlag{Name: "network", Value: "none", Usage: "network of RUN steps: none or host"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the image ID"},
			&cli.StringFlag{Name: "iidfile", Usage: "write the image ID to the file"},
			&cli.BoolFlag{Name: "pull", Usage: "pull a missing base image"},
			&cli.StringFlag{Name: "platform", Usage: "target platform (os/arch[/variant]) of the image; RUN steps need this machine's"},
			&cli.StringFlag{Name: "timestamp", Usage: "seconds since the epoch: the image's creation time, and the cap on its new files' times (as SOURCE_DATE_EPOCH)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("\"build\" requires exactly 1 argument\nUsage: berth build [OPTIONS] PATH | -")
			}
			o := build.Options{
				Tags:     c.StringSlice("tag"),
				Target:   c.String("target"),
				NoCache:  c.Bool("no-cache") || !c.Bool("layers"),
				Network:  c.String("network"),
				Quiet:    c.Bool("quiet"),
				Pull:     c.Bool("pull"),
				Platform: c.String("platform"),
				Stdin:    os.Stdin,
				Stdout:   c.App.Writer,
				Stderr:   c.App.ErrWriter,
			}
			if ts := c.String("timestamp"); ts != "" {
				sec, err := strconv.ParseInt(ts, 10, 64)
				if err != nil || sec < 0 {
					return usagef("invalid --timestamp %q: want seconds since the epoch", ts)
				}
				o.Timestamp = time.Unix(sec, 0).UTC()
			}
			if arg := c.Args().First(); arg == "-" {
				o.ContextStdin = true
			} else {
				o.ContextDir = arg
			}
			if f := c.String("file"); f == "-" {
				if o.ContextStdin {
					return usagef("invalid argument: can't use stdin for both build context and dockerfile")
				}
				o.DockerfileStdin = true
			} else {
				o.Dockerfile = f
			}
			o.BuildArgs = map[string]string{}
			for _, a := range c.StringSlice("build-arg") {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					var set bool
					if v, set = os.LookupEnv(k); !set {
						continue
					}
				}
				o.BuildArgs[k] = v
			}
			if labels := c.StringSlice("label"); len(labels) > 0 {
				o.Labels = map[string]string{}
				for _, l := range labels {
					k, v, _ := strings.Cut(l, "=")
					o.Labels[k] = v
				}
			}
			return withEngine(c, func(e *engine.Engine) error {
				res, err := build.Build(c.Context, e, o)
				if err != nil {
					return err
				}
				if o.Quiet {
					fmt.Fprintf(c.App.Writer, "sha256:%s\n", res.ID)
				}
				if f := c.String("iidfile"); f != "" {
					if err := state.WriteFileAtomic(f, []byte("sha256:"+res.ID), 0o644); err != nil {
						return fmt.Errorf("writing iidfile: %w", err)
					}
				}
				return nil
			})
		},
	}
}
