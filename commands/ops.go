package commands

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
)

func pauseCommand() *cli.Command {
	return &cli.Command{
		Name:      "pause",
		Usage:     "pause all processes within one or more containers",
		ArgsUsage: "CONTAINER [CONTAINER...]",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "CONTAINER [CONTAINER...]"); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				return eachArg(c, func(ref string) error { return e.Pause(c.Context, ref) })
			})
		},
	}
}

func unpauseCommand() *cli.Command {
	return &cli.Command{
		Name:      "unpause",
		Usage:     "unpause all processes within one or more containers",
		ArgsUsage: "CONTAINER [CONTAINER...]",
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "CONTAINER [CONTAINER...]"); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				return eachArg(c, func(ref string) error { return e.Unpause(c.Context, ref) })
			})
		},
	}
}

func topCommand() *cli.Command {
	return &cli.Command{
		Name:            "top",
		Usage:           "display the running processes of a container",
		ArgsUsage:       "CONTAINER [ps OPTIONS]",
		SkipFlagParsing: true, // everything after the container is ps's
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if len(args) < 1 {
				return usagef("\"top\" requires at least 1 argument\nUsage: berth top CONTAINER [ps OPTIONS]")
			}
			return withEngine(c, func(e *engine.Engine) error {
				res, err := e.Top(c.Context, args[0], args[1:])
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(c.App.Writer, 20, 1, 3, ' ', 0)
				fmt.Fprintln(w, strings.Join(res.Titles, "\t"))
				for _, p := range res.Processes {
					fmt.Fprintln(w, strings.Join(p, "\t"))
				}
				return w.Flush()
			})
		},
	}
}

const statsDefaultFormat = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

var statsHeaders = map[string]string{
	"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "display a live stream of container resource usage statistics",
		ArgsUsage: "[CONTAINER...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show all containers (default shows just running)"},
			&cli.BoolFlag{Name: "no-stream", Usage: "disable streaming stats and only pull the first result"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "do not truncate output"},
			&cli.StringFlag{Name: "format", Usage: "format output using a Go template"},
		},
		Action: func(c *cli.Context) error {
			format := c.String("format")
			if format == "" {
				format = statsDefaultFormat
			}
			if _, _, err := parseTemplate(format); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				refs := c.Args().Slice()
				if len(refs) == 0 {
					list, err := e.List(c.Context, engine.ListOptions{})
					if err != nil {
						return err
					}
					for _, ctr := range list {
						refs = append(refs, ctr.Record.ID)
					}
				}
				for first := true; ; first = false {
					stats, err := e.Stats(c.Context, refs, 500*time.Millisecond)
					if err != nil {
						return err
					}
					rows := make([]any, len(stats))
					for i := range stats {
						rows[i] = &statsRow{s: &stats[i], noTrunc: c.Bool("no-trunc")}
					}
					if !first {
						fmt.Fprint(c.App.Writer, "\033[2J\033[H") // clear the terminal, as docker does
					}
					if err := writeFormatted(c.App.Writer, format, rows, statsHeaders); err != nil {
						return err
					}
					if c.Bool("no-stream") {
						return nil
					}
					select {
					case <-c.Context.Done():
						return nil
					case <-time.After(500 * time.Millisecond):
					}
				}
			})
		},
	}
}

// statsRow gives a sample docker stats' field names.
type statsRow struct {
	s       *engine.ContainerStats
	noTrunc bool
}

func (r *statsRow) ID() string {
	if r.noTrunc {
		return r.s.ID
	}
	return r.s.ID[:12]
}
func (r *statsRow) Container() string { return r.ID() }
func (r *statsRow) Name() string      { return r.s.Name }
func (r *statsRow) CPUPerc() string   { return fmt.Sprintf("%.2f%%", r.s.CPUPercent) }
func (r *statsRow) MemPerc() string   { return fmt.Sprintf("%.2f%%", r.s.MemPercent) }
func (r *statsRow) MemUsage() string {
	return binarySize(r.s.MemUsage) + " / " + binarySize(r.s.MemLimit)
}
func (r *statsRow) NetIO() string {
	return humanSize(int64(r.s.NetRx)) + " / " + humanSize(int64(r.s.NetTx))
}
func (r *statsRow) BlockIO() string {
	return humanSize(int64(r.s.BlockRead)) + " / " + humanSize(int64(r.s.BlockWrite))
}
func (r *statsRow) PIDs() string { return fmt.Sprint(r.s.Pids) }

// binarySize is docker's BytesSize (binary units, as in "1.5MiB").
func binarySize(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}

func portCommand() *cli.Command {
	return &cli.Command{
		Name:      "port",
		Usage:     "list port mappings or a specific mapping for the container",
		ArgsUsage: "CONTAINER [PRIVATE_PORT[/PROTO]]",
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usagef("\"port\" requires 1 or 2 arguments\nUsage: berth port CONTAINER [PRIVATE_PORT[/PROTO]]")
			}
			return withEngine(c, func(e *engine.Engine) error {
				ports, err := e.Port(c.Context, c.Args().First())
				if err != nil {
					return err
				}
				if want := c.Args().Get(1); want != "" {
					if !strings.Contains(want, "/") {
						want += "/tcp"
					}
					if len(ports[want]) == 0 {
						return fmt.Errorf("no public port '%s' published for %s", want, c.Args().First())
					}
					for _, hp := range ports[want] {
						fmt.Fprintln(c.App.Writer, hp)
					}
					return nil
				}
				for _, k := range sortedPortKeys(ports) { // by number, then protocol
					for _, hp := range ports[k] {
						fmt.Fprintf(c.App.Writer, "%s -> %s\n", k, hp)
					}
				}
				return nil
			})
		},
	}
}

func updateCommand() *cli.Command {
	names := []string{"memory", "memory-swap", "memory-reservation", "cpus", "cpu-shares", "cpu-quota",
		"cpu-period", "cpuset-cpus", "cpuset-mems", "pids-limit", "blkio-weight"}
	var flags []cli.Flag
	for _, f := range createFlags() {
		for _, n := range names {
			if f.Names()[0] == n {
				flags = append(flags, f)
			}
		}
	}
	flags = append(flags, &cli.StringFlag{Name: "restart", Usage: "restart policy: no, always, unless-stopped, on-failure[:max-retries]"})
	return &cli.Command{
		Name:      "update",
		Usage:     "update the resource limits or the restart policy of one or more containers",
		ArgsUsage: "CONTAINER [CONTAINER...]",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] CONTAINER [CONTAINER...]"); err != nil {
				return err
			}
			o := engine.UpdateOptions{Set: map[string]bool{}}
			if err := resourceFlags(c, &o.Resources); err != nil {
				return err
			}
			for _, n := range names {
				if c.IsSet(n) {
					o.Set[n] = true
				}
			}
			if c.IsSet("restart") {
				p, err := engine.ParseRestartPolicy(c.String("restart"))
				if err != nil {
					return &UsageError{Err: err}
				}
				o.RestartPolicy = &p
			}
			if len(o.Set) == 0 && o.RestartPolicy == nil {
				return usagef("you must provide one or more flags when using this command")
			}
			return withEngine(c, func(e *engine.Engine) error {
				return eachArg(c, func(ref string) error { return e.Update(c.Context, ref, o) })
			})
		},
	}
}
