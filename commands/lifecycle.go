package commands

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/moby/sys/signal"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/engine"
)

func parseSignal(s string) (unix.Signal, error) { return signal.ParseSignal(s) }

func startCommand() *cli.Command {
	return &cli.Command{
		Name:      "start",
		Usage:     "start one or more stopped containers",
		ArgsUsage: "CONTAINER [CONTAINER...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "attach", Aliases: []string{"a"}, Usage: "attach STDOUT/STDERR and forward signals"},
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "attach the container's STDIN"},
			&cli.StringFlag{Name: "detach-keys", Usage: "key sequence for detaching (default ctrl-p,ctrl-q)"},
			&cli.BoolFlag{Name: "all", Usage: "start all containers that are not running (with --filter: those that match)"},
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "with --all: ps's filters (restart-policy=always at boot, …)"},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("all") {
				return startAll(c)
			}
			if c.IsSet("filter") {
				return usagef("--filter needs --all")
			}
			if err := needArgs(c, 1, "[OPTIONS] CONTAINER [CONTAINER...]"); err != nil {
				return err
			}
			attach := c.Bool("attach") || c.Bool("interactive")
			if attach && c.NArg() > 1 {
				return usagef("you cannot start and attach multiple containers at once")
			}
			return withEngine(c, func(e *engine.Engine) error {
				if !attach {
					return eachArg(c, func(ref string) error {
						_, err := e.Start(c.Context, ref, engine.StartOptions{})
						return err
					})
				}
				ctr, err := e.Get(c.Context, c.Args().First())
				if err != nil {
					return err
				}
				streams, restore, err := foregroundStreams(ctr.Record.Config.Tty, c.Bool("interactive") && ctr.Record.Config.OpenStdin)
				if err != nil {
					return err
				}
				defer restore()
				return containerExit(e.Start(c.Context, ctr.Record.ID, engine.StartOptions{Attach: true, Streams: streams, DetachKeys: c.String("detach-keys")}))
			})
		},
	}
}

func stopFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "time", Aliases: []string{"t"}, Usage: "seconds to wait before killing the container"},
		&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Usage: "signal to send instead of the container's stop signal"},
	}
}

func stopOptions(c *cli.Context) (engine.StopOptions, error) {
	o := engine.StopOptions{Signal: c.String("signal"), Shutdown: c.Bool("shutdown")}
	if c.IsSet("time") {
		n, err := strconv.Atoi(c.String("time"))
		if err != nil {
			return o, usagef("invalid --time %q: not a number of seconds", c.String("time"))
		}
		o.Timeout = &n
	}
	if o.Signal != "" {
		if _, err := parseSignal(o.Signal); err != nil {
			return o, usagef("invalid --signal %q: %v", o.Signal, err)
		}
	}
	return o, nil
}

func stopCommand() *cli.Command {
	cmd := stopLikeCommand("stop", "stop one or more running containers",
		func(e *engine.Engine, c *cli.Context, ref string, o engine.StopOptions) error {
			return ignoreMissing(c, e.Stop(c.Context, ref, o))
		})
	cmd.Flags = append(cmd.Flags, ignoreFlag())
	return withStopAll(cmd) // --all, --filter, --shutdown: commands/restart.go
}

// ignoreFlag is podman's --ignore of stop and rm (used by systemd units:
// commands/generate.go).
func ignoreFlag() cli.Flag {
	return &cli.BoolFlag{Name: "ignore", Aliases: []string{"i"}, Usage: "ignore errors when a specified container is missing"}
}

func ignoreMissing(c *cli.Context, err error) error {
	if err != nil && c.Bool("ignore") && errors.Is(err, engine.ErrNoSuchContainer) {
		return nil
	}
	return err
}

func restartCommand() *cli.Command {
	return stopLikeCommand("restart", "restart one or more containers",
		func(e *engine.Engine, c *cli.Context, ref string, o engine.StopOptions) error {
			return e.Restart(c.Context, ref, o)
		})
}

// stopLikeCommand is stop and restart: -t and -s, then one call per container.
func stopLikeCommand(name, usage string, call func(*engine.Engine, *cli.Context, string, engine.StopOptions) error) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "CONTAINER [CONTAINER...]",
		Flags:     stopFlags(),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] CONTAINER [CONTAINER...]"); err != nil {
				return err
			}
			o, err := stopOptions(c)
			if err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				return eachArg(c, func(ref string) error { return call(e, c, ref, o) })
			})
		},
	}
}

func killCommand() *cli.Command {
	return &cli.Command{
		Name:      "kill",
		Usage:     "kill one or more running containers",
		ArgsUsage: "CONTAINER [CONTAINER...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Value: "KILL", Usage: "signal to send"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] CONTAINER [CONTAINER...]"); err != nil {
				return err
			}
			sig := c.String("signal")
			if _, err := parseSignal(sig); err != nil {
				return usagef("invalid signal %q: %v", sig, err)
			}
			return withEngine(c, func(e *engine.Engine) error {
				return eachArg(c, func(ref string) error { return e.Kill(c.Context, ref, sig) })
			})
		},
	}
}

func rmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove one or more containers",
		ArgsUsage: "CONTAINER [CONTAINER...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "force the removal of a running container (uses SIGKILL)"},
			&cli.BoolFlag{Name: "volumes", Aliases: []string{"v"}, Usage: "remove anonymous volumes associated with the container"},
			ignoreFlag(),
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] CONTAINER [CONTAINER...]"); err != nil {
				return err
			}
			o := engine.RemoveOptions{Force: c.Bool("force"), Volumes: c.Bool("volumes")}
			return withEngine(c, func(e *engine.Engine) error {
				return eachArg(c, func(ref string) error { return ignoreMissing(c, e.Remove(c.Context, ref, o)) })
			})
		},
	}
}

func waitCommand() *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "block until one or more containers stop, then print their exit codes",
		ArgsUsage: "CONTAINER [CONTAINER...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "condition", Usage: "wait for: not-running (default), next-exit, removed, running, healthy or unhealthy"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "CONTAINER [CONTAINER...]"); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				var first error
				for _, ref := range c.Args().Slice() {
					code, err := e.Wait(c.Context, ref, c.String("condition"))
					if err != nil {
						if first == nil {
							first = err
						}
						continue
					}
					fmt.Fprintln(c.App.Writer, code)
				}
				return first
			})
		},
	}
}

func renameCommand() *cli.Command {
	return &cli.Command{
		Name:      "rename",
		Usage:     "rename a container",
		ArgsUsage: "CONTAINER NEW_NAME",
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("\"rename\" requires exactly 2 arguments\nUsage: berth rename CONTAINER NEW_NAME")
			}
			return withEngine(c, func(e *engine.Engine) error {
				return e.Rename(c.Context, c.Args().Get(0), c.Args().Get(1))
			})
		},
	}
}

func attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "attach local standard input, output and error streams to a running container",
		ArgsUsage: "CONTAINER",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "detach-keys", Usage: "key sequence for detaching (default ctrl-p,ctrl-q)"},
			&cli.BoolFlag{Name: "no-stdin", Usage: "do not attach STDIN"},
			&cli.BoolFlag{Name: "sig-proxy", Value: true, Usage: "proxy received signals to the container"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("\"attach\" requires exactly 1 argument\nUsage: berth attach [OPTIONS] CONTAINER")
			}
			return withEngine(c, func(e *engine.Engine) error {
				ctr, err := e.Get(c.Context, c.Args().First())
				if err != nil {
					return err
				}
				stdin := ctr.Record.Config.OpenStdin && !c.Bool("no-stdin")
				streams, restore, err := foregroundStreams(ctr.Record.Config.Tty, stdin)
				if err != nil {
					return err
				}
				defer restore()
				if !c.Bool("sig-proxy") {
					streams.Signals = nil
				}
				return containerExit(e.Attach(c.Context, ctr.Record.ID, engine.AttachOptions{Streams: streams, NoStdin: !stdin, DetachKeys: c.String("detach-keys")}))
			})
		},
	}
}

// containerExit makes the end of an attached container the command's
// result: its exit code, nothing after a detach, or the error.
func containerExit(code int, err error) error {
	switch {
	case errors.Is(err, engine.ErrDetached):
		return nil
	case err != nil:
		return err
	case code != 0:
		return &engine.ExitError{Code: code}
	}
	return nil
}
