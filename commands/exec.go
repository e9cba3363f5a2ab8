package commands

import (
	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
)

func execCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "execute a command in a running container",
		ArgsUsage: "CONTAINER COMMAND [ARG...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep STDIN open"},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-TTY"},
			&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "detached mode: run the command in the background"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set environment variables (KEY=VALUE, or KEY to copy it)"},
			&cli.StringSliceFlag{Name: "env-file", Usage: "read environment variables from a file"},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "user[:group] to run as (name or id)"},
			&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory inside the container"},
			&cli.BoolFlag{Name: "privileged", Usage: "give extended privileges (all capabilities) to the command"},
			&cli.StringFlag{Name: "detach-keys", Usage: "accepted for compatibility; detaching from an exec session is not supported"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2, "[OPTIONS] CONTAINER COMMAND [ARG...]"); err != nil {
				return err
			}
			env, err := parseEnv(c.StringSlice("env-file"), c.StringSlice("env"))
			if err != nil {
				return err
			}
			wd := c.String("workdir")
			if wd != "" && wd[0] != '/' {
				return usagef("the working directory %q is invalid, it needs to be an absolute path", wd)
			}
			o := engine.ExecOptions{
				Cmd:         c.Args().Slice()[1:],
				Env:         env,
				User:        c.String("user"),
				WorkingDir:  wd,
				Tty:         c.Bool("tty"),
				Interactive: c.Bool("interactive"),
				Detach:      c.Bool("detach"),
				Privileged:  c.Bool("privileged"),
				DetachKeys:  c.String("detach-keys"),
			}
			return withEngine(c, func(e *engine.Engine) error {
				if !o.Detach {
					streams, restore, err := foregroundStreams(o.Tty, o.Interactive)
					if err != nil {
						return err
					}
					defer restore()
					o.Streams = streams
				}
				return containerExit(e.Exec(c.Context, c.Args().First(), o))
			})
		},
	}
}
