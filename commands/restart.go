package commands

// start --all and stop --all with ps's filters, for restart policies at
// boot (contrib/systemd/berth-restart.service, docs/restart.md).

import (
	"fmt"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
)

// withStopAll adds --all, --filter and --shutdown to stop.
func withStopAll(cmd *cli.Command) *cli.Command {
	// For the boot unit (contrib/systemd/berth-restart.service).
	cmd.Flags = append(cmd.Flags,
		&cli.BoolFlag{Name: "all", Usage: "stop all running containers (with --filter: those that match)"},
		&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "with --all: ps's filters"},
		&cli.BoolFlag{Name: "shutdown", Usage: "the system is going down, not the user stopping: restart-policy=unless-stopped starts the containers again at boot"},
	)
	action := cmd.Action
	cmd.Action = func(c *cli.Context) error {
		if !c.Bool("all") {
			if c.IsSet("filter") {
				return usagef("--filter needs --all")
			}
			return action(c)
		}
		if c.NArg() > 0 {
			return usagef("--all and container names exclude each other")
		}
		o, err := stopOptions(c)
		if err != nil {
			return err
		}
		filters, err := parsePsFilters(c.StringSlice("filter"))
		if err != nil {
			return err
		}
		return withEngine(c, func(e *engine.Engine) error {
			list, err := e.List(c.Context, engine.ListOptions{})
			if err != nil {
				return err
			}
			// All at once: each may wait its stop timeout.
			var mu sync.Mutex
			var wg sync.WaitGroup
			failed := 0
			for i := range list {
				if ok, err := filters.match(e, &list[i]); err != nil || !ok {
					continue
				}
				wg.Add(1)
				go func(ctr *engine.Container) {
					defer wg.Done()
					err := e.Stop(c.Context, ctr.Record.ID, o)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						fmt.Fprintf(c.App.ErrWriter, "Error: stopping %s: %v\n", ctr.Record.Name, err)
						failed++
						return
					}
					fmt.Fprintln(c.App.Writer, ctr.Record.Name)
				}(&list[i])
			}
			wg.Wait()
			if failed > 0 {
				return fmt.Errorf("%d container(s) could not be stopped", failed)
			}
			return nil
		})
	}
	return cmd
}

// startAll is `start --all [--filter …]`: every stopped container that
// matches, started detached; the boot unit (contrib/systemd) runs it with
// restart-policy filters. With restart-policy=unless-stopped, a container
// the user stopped is left alone: that policy brings back only what was
// running when the machine went down.
func startAll(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("--all and container names exclude each other")
	}
	if c.Bool("attach") || c.Bool("interactive") {
		return usagef("you cannot start and attach multiple containers at once")
	}
	filters, err := parsePsFilters(c.StringSlice("filter"))
	if err != nil {
		return err
	}
	bootFilter := len(filters["restart-policy"]) > 0
	return withEngine(c, func(e *engine.Engine) error {
		list, err := e.List(c.Context, engine.ListOptions{All: true})
		if err != nil {
			return err
		}
		failed := 0
		for i := len(list) - 1; i >= 0; i-- { // oldest first, as they were made
			ctr := &list[i]
			if ctr.State.Active() {
				continue
			}
			ok, err := filters.match(e, ctr)
			if err != nil {
				return err
			}
			if !ok || (bootFilter && restartPolicyName(ctr.Record) == "unless-stopped" && ctr.State.StoppedByUser) {
				continue
			}
			name := ctr.Record.Name
			if _, err := e.Start(c.Context, ctr.Record.ID, engine.StartOptions{}); err != nil {
				fmt.Fprintf(c.App.ErrWriter, "Error: starting %s: %v\n", name, err)
				failed++
				continue
			}
			fmt.Fprintln(c.App.Writer, name)
		}
		if failed > 0 {
			return fmt.Errorf("%d container(s) could not be started", failed)
		}
		return nil
	})
}
