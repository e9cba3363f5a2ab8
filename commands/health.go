package commands

import (
	"fmt"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
)

// healthFlags are run's and create's healthcheck flags (docker's, and
// podman's --health-on-failure and --health-start-interval).
func healthFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "health-cmd", Usage: "command to run to check health (run by /bin/sh -c)"},
		&cli.StringFlag{Name: "health-interval", Usage: "time between running the check (ms|s|m|h) (default 30s)"},
		&cli.StringFlag{Name: "health-timeout", Usage: "maximum time to allow one check to run (ms|s|m|h) (default 30s)"},
		&cli.StringFlag{Name: "health-retries", Usage: "consecutive failures needed to report unhealthy (default 3)"},
		&cli.StringFlag{Name: "health-start-period", Usage: "start period for the container to initialize before failures count (ms|s|m|h) (default 0s)"},
		&cli.StringFlag{Name: "health-start-interval", Usage: "time between running the check during the start period (ms|s|m|h) (default 5s)"},
		&cli.BoolFlag{Name: "no-healthcheck", Usage: "disable any container-specified HEALTHCHECK"},
		&cli.StringFlag{Name: "health-on-failure", Value: engine.HealthOnFailureNone, Usage: "action when the container becomes unhealthy: none, kill, restart or stop"},
	}
}

// healthcheckFlags builds the container's own healthcheck from the flags,
// as docker's CLI does: nil when none is set (the image's applies), Test
// ["NONE"] for --no-healthcheck, zero fields inherited from the image's.
func healthcheckFlags(c *cli.Context) (*container.HealthConfig, error) {
	h := &container.HealthConfig{}
	type durationFlag struct {
		flag string
		dst  *time.Duration
	}
	durations := []durationFlag{
		{"health-interval", &h.Interval}, {"health-timeout", &h.Timeout},
		{"health-start-period", &h.StartPeriod}, {"health-start-interval", &h.StartInterval},
	}
	set := false
	for _, d := range durations {
		if !c.IsSet(d.flag) {
			continue
		}
		set = true
		v, err := time.ParseDuration(c.String(d.flag))
		if err != nil {
			return nil, usagef("invalid --%s %q: %v", d.flag, c.String(d.flag), err)
		}
		if v < 0 {
			return nil, usagef("--%s cannot be negative", d.flag)
		}
		if v != 0 && v < container.MinimumDuration {
			return nil, usagef("--%s cannot be less than %s", d.flag, container.MinimumDuration)
		}
		*d.dst = v
	}
	if c.IsSet("health-retries") {
		set = true
		n, err := strconv.Atoi(c.String("health-retries"))
		if err != nil {
			return nil, usagef("invalid --health-retries %q: not a number", c.String("health-retries"))
		}
		if n < 0 {
			return nil, usagef("--health-retries cannot be negative")
		}
		h.Retries = n
	}
	if cmd := c.String("health-cmd"); cmd != "" {
		set = true
		h.Test = []string{"CMD-SHELL", cmd}
	}
	if c.Bool("no-healthcheck") {
		if set {
			return nil, usagef("--no-healthcheck conflicts with --health-* options")
		}
		return &container.HealthConfig{Test: []string{"NONE"}}, nil
	}
	if !set {
		return nil, nil
	}
	return h, nil
}

// healthcheckCommand is podman's `healthcheck run`.
func healthcheckCommand() *cli.Command {
	return &cli.Command{
		Name:  "healthcheck",
		Usage: "run container healthchecks",
		Subcommands: []*cli.Command{{
			Name:      "run",
			Usage:     "run a container's healthcheck once now: prints healthy (exit 0) or unhealthy (exit 1)",
			ArgsUsage: "CONTAINER",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usagef("\"healthcheck run\" requires exactly 1 argument\nUsage: berth healthcheck run CONTAINER")
				}
				return withEngine(c, func(e *engine.Engine) error {
					res, _, err := e.HealthcheckRun(c.Context, c.Args().First())
					if err != nil {
						return err
					}
					if res.ExitCode != 0 {
						fmt.Fprintln(c.App.Writer, "unhealthy")
						return &engine.ExitError{Code: 1}
					}
					fmt.Fprintln(c.App.Writer, "healthy")
					return nil
				})
			},
		}},
	}
}
