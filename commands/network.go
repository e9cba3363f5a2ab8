package commands

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
)

// networkCommand is the `network` group: create, ls, inspect, rm, prune,
// connect, disconnect.
func networkCommand() *cli.Command {
	group := &cli.Command{
		Name:  "network",
		Usage: "manage networks",
		Subcommands: []*cli.Command{
			networkCreateCommand(), networkLsCommand(), networkInspectCommand(), networkRmCommand(),
			networkPruneCommand(), networkConnectCommand(), networkDisconnectCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q for \"berth network\"", c.Args().First())
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

func networkCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a network",
		ArgsUsage: "NETWORK",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "driver", Aliases: []string{"d"}, Value: "bridge", Usage: "driver to manage the network (bridge only)"},
			&cli.StringFlag{Name: "subnet", Usage: "subnet in CIDR format"},
			&cli.StringFlag{Name: "gateway", Usage: "IPv4 gateway for the subnet"},
			&cli.StringFlag{Name: "ip-range", Usage: "allocate container addresses from a sub-range"},
			&cli.BoolFlag{Name: "internal", Usage: "restrict external access to the network"},
			&cli.StringSliceFlag{Name: "label", Usage: "set metadata on a network"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("\"berth network create\" requires exactly 1 argument\nUsage: berth network create [OPTIONS] NETWORK")
			}
			labels, err := parseLabels(c.StringSlice("label"))
			if err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				n, err := e.NetworkCreate(c.Context, engine.NetworkCreateOptions{
					Name: c.Args().First(), Driver: c.String("driver"), Subnet: c.String("subnet"),
					Gateway: c.String("gateway"), IPRange: c.String("ip-range"), Internal: c.Bool("internal"), Labels: labels,
				})
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, n.ID)
				return nil
			})
		},
	}
}

// networkRow is a `network ls` row (docker's --format fields).
type networkRow struct{ n engine.NetworkInfo }

func (r networkRow) ID() string     { return r.n.ID[:12] }
func (r networkRow) Name() string   { return r.n.Name }
func (r networkRow) Driver() string { return r.n.Driver }
func (r networkRow) Scope() string  { return "local" }
func (r networkRow) IPv4() string   { return fmt.Sprint(r.n.Net != nil) }
func (r networkRow) IPv6() string   { return "false" }
func (r networkRow) Internal() string {
	return fmt.Sprint(r.n.Net != nil && r.n.Net.Internal)
}
func (r networkRow) CreatedAt() string {
	return r.n.Created.Local().Format("2006-01-02 15:04:05 -0700 MST")
}
func (r networkRow) Labels() string {
	if r.n.Net == nil {
		return ""
	}
	var kv []string
	for k, v := range r.n.Net.Labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}
func (r networkRow) Label(name string) string {
	if r.n.Net == nil {
		return ""
	}
	return r.n.Net.Labels[name]
}

var networkHeaders = map[string]string{
	"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
	"IPv6": "IPV6", "Internal": "INTERNAL", "CreatedAt": "CREATED AT", "Labels": "LABELS",
}

func networkLsCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list networks",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only display network IDs"},
			&cli.StringFlag{Name: "format", Usage: "format output using a Go template"},
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "filter output (name=, id=, driver=, label=, type=custom|builtin)"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "do not truncate the output"},
		},
		Action: func(c *cli.Context) error {
			match, err := networkFilter(c.StringSlice("filter"))
			if err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				all, err := e.Networks(c.Context)
				if err != nil {
					return err
				}
				var rows []any
				for _, n := range all {
					if match(n) {
						if c.Bool("no-trunc") {
							rows = append(rows, noTruncRow{networkRow{n}})
						} else {
							rows = append(rows, networkRow{n})
						}
					}
				}
				format := c.String("format")
				switch {
				case c.Bool("quiet"):
					format = "{{.ID}}"
				case format == "":
					format = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
				}
				return writeFormatted(c.App.Writer, format, rows, networkHeaders)
			})
		},
	}
}

type noTruncRow struct{ networkRow }

func (r noTruncRow) ID() string { return r.n.ID }

// networkFilter is docker's `network ls -f`: name (substring), id
// (prefix), driver, label (key or key=value), type (custom, builtin).
// Several values of one key match any of them; different keys all.
func networkFilter(list []string) (func(engine.NetworkInfo) bool, error) {
	byKey := map[string][]string{}
	for _, f := range list {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, usagef("invalid filter %q: want key=value", f)
		}
		switch k {
		case "name", "id", "driver", "label", "type", "scope":
		default:
			return nil, usagef("invalid filter %q", k)
		}
		byKey[k] = append(byKey[k], v)
	}
	one := func(k, v string, n engine.NetworkInfo) bool {
		switch k {
		case "name":
			return strings.Contains(n.Name, v)
		case "id":
			return strings.HasPrefix(n.ID, v)
		case "driver":
			return n.Driver == v
		case "scope":
			return v == "local"
		case "type":
			custom := n.Net != nil && !n.Net.IsDefault()
			return (v == "custom") == custom
		case "label":
			if n.Net == nil {
				return false
			}
			lk, lv, hasVal := strings.Cut(v, "=")
			got, ok := n.Net.Labels[lk]
			return ok && (!hasVal || got == lv)
		}
		return false
	}
	return func(n engine.NetworkInfo) bool {
		for k, vals := range byKey {
			any := false
			for _, v := range vals {
				any = any || one(k, v, n)
			}
			if !any {
				return false
			}
		}
		return true
	}, nil
}

func networkInspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "display detailed information on one or more networks",
		ArgsUsage: "NETWORK [NETWORK...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "format output using a Go template"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] NETWORK [NETWORK...]"); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				return printInspected(c, func(ref string) (any, error) { return e.NetworkInspect(c.Context, ref) })
			})
		},
	}
}

func networkRmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Aliases:   []string{"remove"},
		Usage:     "remove one or more networks",
		ArgsUsage: "NETWORK [NETWORK...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not error if the network does not exist"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] NETWORK [NETWORK...]"); err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				var lastErr error
				for _, ref := range c.Args().Slice() {
					err := e.NetworkRemove(c.Context, ref)
					if err != nil && c.Bool("force") && errorsIsNoNetwork(err) {
						continue
					}
					if err != nil {
						if lastErr != nil {
							fmt.Fprintf(c.App.ErrWriter, "Error: %v\n", lastErr)
						}
						lastErr = err
						continue
					}
					fmt.Fprintln(c.App.Writer, ref)
				}
				return lastErr
			})
		},
	}
}

func errorsIsNoNetwork(err error) bool {
	return err != nil && strings.Contains(err.Error(), engine.ErrNoSuchNetwork.Error())
}

func networkPruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove all unused networks (without asking)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not prompt for confirmation (berth never prompts)"},
			&cli.StringSliceFlag{Name: "filter", Usage: "accepted for compatibility; label filters only"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("\"berth network prune\" accepts no arguments\nUsage: berth network prune [OPTIONS]")
			}
			return withEngine(c, func(e *engine.Engine) error {
				removed, err := e.NetworkPrune(c.Context)
				if err != nil {
					return err
				}
				if len(removed) > 0 {
					fmt.Fprintln(c.App.Writer, "Deleted Networks:")
					for _, n := range removed {
						fmt.Fprintln(c.App.Writer, n)
					}
				}
				return nil
			})
		},
	}
}

func networkConnectCommand() *cli.Command {
	return &cli.Command{
		Name:      "connect",
		Usage:     "connect a container to a network",
		ArgsUsage: "NETWORK CONTAINER",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "alias", Usage: "add a network-scoped alias for the container"},
			&cli.StringFlag{Name: "ip", Usage: "IPv4 address (e.g. 172.30.100.104)"},
			&cli.StringFlag{Name: "mac-address", Usage: "MAC address of the interface"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("\"berth network connect\" requires exactly 2 arguments\nUsage: berth network connect [OPTIONS] NETWORK CONTAINER")
			}
			ep := &network.EndpointSettings{Aliases: c.StringSlice("alias")}
			if s := c.String("ip"); s != "" {
				a, err := netip.ParseAddr(s)
				if err != nil || !a.Is4() {
					return usagef("invalid --ip %q: not an IPv4 address", s)
				}
				ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a}
			}
			if s := c.String("mac-address"); s != "" {
				m, err := net.ParseMAC(s)
				if err != nil || len(m) != 6 {
					return usagef("invalid --mac-address %q", s)
				}
				ep.MacAddress = network.HardwareAddr(m)
			}
			return withEngine(c, func(e *engine.Engine) error {
				return e.NetworkConnect(c.Context, c.Args().Get(0), c.Args().Get(1), ep)
			})
		},
	}
}

func networkDisconnectCommand() *cli.Command {
	return &cli.Command{
		Name:      "disconnect",
		Usage:     "disconnect a container from a network",
		ArgsUsage: "NETWORK CONTAINER",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "force the container to disconnect from a network"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("\"berth network disconnect\" requires exactly 2 arguments\nUsage: berth network disconnect [OPTIONS] NETWORK CONTAINER")
			}
			return withEngine(c, func(e *engine.Engine) error {
				return e.NetworkDisconnect(c.Context, c.Args().Get(0), c.Args().Get(1), c.Bool("force"))
			})
		},
	}
}
