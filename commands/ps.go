package commands

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/state"
	"github.com/berth-dev/berth/storage"
)

const psDefaultFormat = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

var psHeaders = map[string]string{
	"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
	"RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
	"Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
}

func psCommand() *cli.Command {
	return &cli.Command{
		Name:    "ps",
		Aliases: []string{"list"},
		Usage:   "list containers",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show all containers (default shows just running)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only display container IDs"},
			&cli.IntFlag{Name: "last", Aliases: []string{"n"}, Value: -1, Usage: "show n last created containers (includes all states)"},
			&cli.BoolFlag{Name: "latest", Aliases: []string{"l"}, Usage: "show the latest created container (includes all states)"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "don't truncate output"},
			&cli.BoolFlag{Name: "size", Aliases: []string{"s"}, Usage: "display total file sizes"},
			&cli.StringFlag{Name: "format", Usage: "format output using a Go template"},
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "filter output (status, name, id, label, ancestor, exited, volume, publish, expose, health, restart-policy)"},
		},
		Action: func(c *cli.Context) error {
			filters, err := parsePsFilters(c.StringSlice("filter"))
			if err != nil {
				return err
			}
			last := c.Int("last")
			if c.Bool("latest") {
				last = 1
			}
			all := c.Bool("all") || last > 0 || filters.needsAll()
			return withEngine(c, func(e *engine.Engine) error {
				list, err := e.List(c.Context, engine.ListOptions{All: all, Size: c.Bool("size")})
				if err != nil {
					return err
				}
				var rows []any
				for i := range list {
					ok, err := filters.match(e, &list[i])
					if err != nil {
						return err
					}
					if ok {
						rows = append(rows, &psRow{c: &list[i], noTrunc: c.Bool("no-trunc")})
					}
				}
				if last > 0 && len(rows) > last {
					rows = rows[:last]
				}
				format := c.String("format")
				switch {
				case c.Bool("quiet"):
					format = "{{.ID}}"
				case format == "":
					format = psDefaultFormat
					if c.Bool("size") {
						format += "\t{{.Size}}"
					}
				}
				return writeFormatted(c.App.Writer, format, rows, psHeaders)
			})
		},
	}
}

// psRow gives a container the field names of docker ps --format.
type psRow struct {
	c       *engine.Container
	noTrunc bool
}

func (r *psRow) ID() string {
	if r.noTrunc {
		return r.c.Record.ID
	}
	return r.c.Record.ID[:12]
}

func (r *psRow) Image() string {
	img := r.c.Record.Image
	if len(img) == 64 && !strings.Contains(img, ":") && !r.noTrunc {
		return img[:12]
	}
	return img
}

func (r *psRow) Command() string {
	cmd := strings.Join(append([]string{r.c.Record.Path}, r.c.Record.Args...), " ")
	if !r.noTrunc && len([]rune(cmd)) > 20 {
		cmd = string([]rune(cmd)[:19]) + "…"
	}
	return strconv.Quote(cmd)
}

func (r *psRow) CreatedAt() string {
	return r.c.Record.Created.Local().Format("2006-01-02 15:04:05 -0700 MST")
}

func (r *psRow) RunningFor() string {
	return humanDuration(time.Since(r.c.Record.Created)) + " ago"
}

func (r *psRow) Ports() string    { return displayPorts(r.c.PortSummaries()) }
func (r *psRow) Networks() string { return strings.Join(engine.ContainerNetworks(r.c.Record), ",") }

// Mounts lists volume names and bind sources, as docker's ps does
// (volume names cut to 15 characters unless --no-trunc).
func (r *psRow) Mounts() string {
	var out []string
	for _, m := range r.c.Record.Mounts {
		switch m.Type {
		case "volume":
			n := m.Name
			if !r.noTrunc && len(n) > 15 {
				n = n[:15] + "…"
			}
			out = append(out, n)
		case "bind":
			out = append(out, m.Source)
		}
	}
	return strings.Join(out, ",")
}
func (r *psRow) Names() string { return r.c.Record.Name }
func (r *psRow) State() string { return r.c.State.Status }
func (r *psRow) Size() string {
	return humanSize(r.c.SizeRw)
}

func (r *psRow) Labels() string {
	var kv []string
	for k, v := range r.c.Record.Config.Labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func (r *psRow) Label(name string) string { return r.c.Record.Config.Labels[name] }

func (r *psRow) Status() string { return statusText(r.c.State) }

// statusText is docker's STATUS column: "Up 3 seconds", "Exited (0) 2
// minutes ago", "Created".
func statusText(st *state.State) string {
	switch st.Status {
	case state.StatusRunning:
		up := "Up " + humanDuration(time.Since(st.StartedAt))
		if h := st.Health; h != nil && h.Status != "" && h.Status != container.NoHealthcheck {
			if h.Status == container.Starting {
				return up + " (health: starting)"
			}
			return up + " (" + string(h.Status) + ")"
		}
		return up
	case state.StatusPaused:
		return "Up " + humanDuration(time.Since(st.StartedAt)) + " (Paused)"
	case state.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, humanDuration(time.Since(st.FinishedAt)))
	case state.StatusExited:
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, humanDuration(time.Since(st.FinishedAt)))
	case state.StatusCreated:
		return "Created"
	case state.StatusDead:
		return "Dead"
	}
	return st.Status
}

// psFilters are docker ps's -f filters: the same key ORs, different keys AND.
type psFilters map[string][]string

var psFilterKeys = map[string]bool{"status": true, "name": true, "id": true, "label": true, "ancestor": true, "exited": true,
	"volume": true, "publish": true, "expose": true, "health": true, "restart-policy": true}

var validStatus = map[string]bool{"created": true, "restarting": true, "running": true, "removing": true, "paused": true, "exited": true, "dead": true}

func parsePsFilters(list []string) (psFilters, error) {
	f := psFilters{}
	for _, item := range list {
		k, v, ok := strings.Cut(item, "=")
		if !ok || !psFilterKeys[k] {
			return nil, usagef("invalid filter %q (supported: status, name, id, label, ancestor, exited, volume, publish, expose, health, restart-policy)", item)
		}
		switch k {
		case "status":
			if !validStatus[v] {
				return nil, usagef("invalid filter 'status=%s'", v)
			}
		case "health":
			if container.ValidateHealthStatus(container.HealthStatus(v)) != nil {
				return nil, usagef("invalid filter 'health=%s' (want starting, healthy, unhealthy or none)", v)
			}
		case "exited":
			if _, err := strconv.Atoi(v); err != nil {
				return nil, usagef("invalid filter 'exited=%s'", v)
			}
		case "publish", "expose":
			if _, err := parseExpose(v); err != nil {
				return nil, usagef("invalid filter '%s=%s': %v", k, v, err)
			}
		case "restart-policy":
			switch container.RestartPolicyMode(v) {
			case container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped, container.RestartPolicyOnFailure:
			default:
				return nil, usagef("invalid filter 'restart-policy=%s' (want no, always, unless-stopped or on-failure)", v)
			}
		case "name":
			if _, err := regexp.Compile(v); err != nil {
				return nil, usagef("invalid filter 'name=%s': %v", v, err)
			}
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

// needsAll: filters on stopped states look at all containers.
func (f psFilters) needsAll() bool {
	if len(f["exited"]) > 0 {
		return true
	}
	for _, s := range f["status"] {
		if s != "running" && s != "paused" && s != "restarting" {
			return true
		}
	}
	return false
}

func (f psFilters) match(e *engine.Engine, c *engine.Container) (bool, error) {
	any := func(key string, pred func(string) bool) bool {
		vals := f[key]
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			if pred(v) {
				return true
			}
		}
		return false
	}
	rec, st := c.Record, c.State
	ok := any("status", func(v string) bool { return st.Status == v }) &&
		any("name", func(v string) bool { m, _ := regexp.MatchString(v, rec.Name); return m }) &&
		any("id", func(v string) bool { return strings.HasPrefix(rec.ID, v) }) &&
		any("exited", func(v string) bool {
			n, _ := strconv.Atoi(v)
			return st.Status == state.StatusExited && st.ExitCode == n
		}) &&
		any("label", func(v string) bool {
			k, want, hasValue := strings.Cut(v, "=")
			got, has := rec.Config.Labels[k]
			return has && (!hasValue || got == want)
		}) &&
		any("volume", func(v string) bool { // a volume name, or a mount's destination
			for _, m := range rec.Mounts {
				if (m.Type == "volume" && m.Name == v) || m.Destination == v {
					return true
				}
			}
			return false
		}) &&
		any("health", func(v string) bool { return healthStatus(c) == v }) &&
		any("publish", func(v string) bool { return portFilterMatch(v, c, true) }) &&
		any("expose", func(v string) bool { return portFilterMatch(v, c, false) }) &&
		any("restart-policy", func(v string) bool { return restartPolicyName(rec) == v })
	if !ok || len(f["ancestor"]) == 0 {
		return ok, nil
	}
	return any("ancestor", func(v string) bool {
		if rec.Image == v || strings.HasPrefix(rec.ImageID, strings.TrimPrefix(v, "sha256:")) {
			return true
		}
		img, err := e.ImageGet(nil, v)
		if err != nil {
			return false
		}
		if img.ID == rec.ImageID {
			return true
		}
		for _, n := range img.Names {
			if storage.FamiliarName(n) == rec.Image || n == rec.Image {
				return true
			}
		}
		return false
	}), nil
}

// healthStatus is what ps -f health= matches, as docker's: the recorded
// status of a container with a healthcheck, else "none".
func healthStatus(c *engine.Container) string {
	if c.Record.Config.Healthcheck == nil || len(c.Record.Config.Healthcheck.Test) == 0 ||
		c.Record.Config.Healthcheck.Test[0] == "NONE" || c.State.Health == nil {
		return string(container.NoHealthcheck)
	}
	return string(c.State.Health.Status)
}

// restartPolicyName is a container's restart policy without its count.
func restartPolicyName(rec *state.Record) string {
	if rec.HostConfig == nil || rec.HostConfig.RestartPolicy.IsNone() {
		return string(container.RestartPolicyDisabled)
	}
	return string(rec.HostConfig.RestartPolicy.Name)
}
