package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/rootless"
)

// generateCommand is podman's `generate systemd`: a unit file that runs a
// container with the berth binary itself (docs/systemd.md); run by an
// ordinary user, a unit for the user's own manager (systemctl --user).
func generateCommand() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "generate structured data (systemd units)",
		Subcommands: []*cli.Command{{
			Name:      "systemd",
			Usage:     "generate a systemd unit file for a container",
			ArgsUsage: "CONTAINER",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "name", Aliases: []string{"n"}, Usage: "use the container's name instead of its ID in the unit"},
				&cli.BoolFlag{Name: "files", Aliases: []string{"f"}, Usage: "write the unit to ./container-NAME.service and print its path"},
				&cli.BoolFlag{Name: "new", Usage: "the unit creates the container when it starts and removes it when it stops"},
				&cli.StringFlag{Name: "restart-policy", Value: "on-failure", Usage: "systemd restart policy: no, on-success, on-failure, on-abnormal, on-watchdog, on-abort or always"},
				&cli.StringFlag{Name: "time", Aliases: []string{"t"}, Usage: "stop timeout in seconds (default: the container's, else 10)"},
				&cli.StringFlag{Name: "container-prefix", Value: "container", Usage: "prefix of the unit's name"},
				&cli.StringFlag{Name: "separator", Value: "-", Usage: "separator between the prefix and the name"},
				&cli.BoolFlag{Name: "no-header", Usage: "leave out the header (generator, date)"},
			},
			Action: generateSystemd,
		}},
	}
}

func generateSystemd(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("\"generate systemd\" requires exactly 1 argument\nUsage: berth generate systemd [OPTIONS] CONTAINER")
	}
	o := unitOptions{
		UseName: c.Bool("name"), New: c.Bool("new"), RestartPolicy: c.String("restart-policy"),
		Prefix: c.String("container-prefix"), Separator: c.String("separator"), Header: !c.Bool("no-header"),
		Now: time.Now(),
	}
	if !validRestartPolicy[o.RestartPolicy] {
		return usagef("invalid --restart-policy %q: want no, on-success, on-failure, on-abnormal, on-watchdog, on-abort or always", o.RestartPolicy)
	}
	if c.IsSet("time") {
		n, err := strconv.Atoi(c.String("time"))
		if err != nil || n < 0 {
			return usagef("invalid --time %q: not a number of seconds", c.String("time"))
		}
		o.StopTimeout = &n
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the berth binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("finding the berth binary: %w", err)
	}
	o.Exe = exe
	return withEngine(c, func(e *engine.Engine) error {
		info, err := e.UnitInfo(c.Args().First())
		if err != nil {
			return err
		}
		if info.Config.Rootless {
			// A unit for the user's own systemd manager (systemctl --user).
			o.User = true
			o.DefaultRoot, o.DefaultRunRoot, _ = rootless.ManagerPaths(rootless.UID())
		}
		name, text, err := renderUnit(info, o, c.App)
		if err != nil {
			return err
		}
		if !c.Bool("files") {
			fmt.Fprint(c.App.Writer, text)
			return nil
		}
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		path := filepath.Join(wd, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, path)
		return nil
	})
}

var validRestartPolicy = map[string]bool{
	"no": true, "on-success": true, "on-failure": true, "on-abnormal": true,
	"on-watchdog": true, "on-abort": true, "always": true,
}

type unitOptions struct {
	Exe               string // absolute path of the berth binary
	UseName, New      bool
	RestartPolicy     string
	StopTimeout       *int
	Prefix, Separator string
	Header            bool
	Now               time.Time

	// User: a unit for the user's systemd manager (systemctl --user), made
	// by a rootless berth: no system targets (docs/systemd.md, Rootless).
	User bool
	// DefaultRoot, DefaultRunRoot: the store berth uses where the unit
	// runs when nothing names one ("": root's /var/lib/berth, /run/berth).
	// A unit for another store sets BERTH_ROOT and BERTH_RUNROOT.
	DefaultRoot, DefaultRunRoot string
}

// Paths berth uses when neither flags nor the environment say otherwise;
// a unit names other stores explicitly.
const defaultRoot, defaultRunRoot = "/var/lib/berth", "/run/berth"

// renderUnit returns the unit's file name and text.
func renderUnit(info *engine.UnitInfo, o unitOptions, app *cli.App) (string, string, error) {
	ident := info.ID
	if o.UseName {
		ident = info.Name
	}
	unit := o.Prefix + o.Separator + ident + ".service"
	timeout := 10
	if info.StopTimeout != nil {
		timeout = *info.StopTimeout
	}
	if o.StopTimeout != nil {
		timeout = *o.StopTimeout
	}
	berth := func(args ...string) string { return execLine(append([]string{o.Exe}, args...)) }
	t := strconv.Itoa(timeout)

	var b strings.Builder
	if o.Header {
		fmt.Fprintf(&b, "# %s\n# autogenerated by berth %s\n# %s\n\n", unit, Version, o.Now.UTC().Format(time.UnixDate))
	}
	cfg := info.Config
	defRoot, defRunRoot := defaultRoot, defaultRunRoot
	if o.DefaultRoot != "" {
		defRoot = o.DefaultRoot
	}
	if o.DefaultRunRoot != "" {
		defRunRoot = o.DefaultRunRoot
	}
	fmt.Fprintf(&b, "[Unit]\nDescription=berth %s\n", unit)
	if o.User {
		// network-online.target is the system manager's: a user manager
		// has none (a dependency on it would be silently ignored). The
		// user's berth-restart.service (contrib/systemd/user), if enabled,
		// starts first and so owns the pause process (docs/systemd.md).
		b.WriteString("After=berth-restart.service\n")
	} else {
		b.WriteString("Wants=network-online.target\nAfter=network-online.target\n")
	}
	fmt.Fprintf(&b, "RequiresMountsFor=%s %s\n", unitEscape(cfg.Root), unitEscape(cfg.RunRoot))
	b.WriteString("\n[Service]\n")
	b.WriteString("Environment=BERTH_SYSTEMD_UNIT=%n\n")
	// The store the container lives in, when it is not the default one.
	if cfg.Root != defRoot {
		fmt.Fprintf(&b, "Environment=%s\n", execArg("BERTH_ROOT="+cfg.Root))
	}
	if cfg.RunRoot != defRunRoot {
		fmt.Fprintf(&b, "Environment=%s\n", execArg("BERTH_RUNROOT="+cfg.RunRoot))
	}
	if cfg.StorageDriver != "" {
		fmt.Fprintf(&b, "Environment=%s\n", execArg("BERTH_STORAGE_DRIVER="+cfg.StorageDriver))
	}
	fmt.Fprintf(&b, "Restart=%s\n", o.RestartPolicy)
	fmt.Fprintf(&b, "TimeoutStopSec=%d\n", timeout+60)
	if o.New {
		if len(info.CreateCommand) == 0 {
			return "", "", fmt.Errorf("%w: container %s has no recorded create command (it was created by an older berth): cannot generate a unit with --new", engine.ErrInvalid, info.Name)
		}
		run, err := newRunArgs(info.CreateCommand, info.Name, app)
		if err != nil {
			return "", "", err
		}
		fmt.Fprintf(&b, "ExecStart=%s\n", berth(run...))
		fmt.Fprintf(&b, "ExecStop=%s\n", berth("stop", "--ignore", "-t", t, info.Name))
		fmt.Fprintf(&b, "ExecStopPost=%s\n", berth("rm", "-f", "--ignore", info.Name))
		b.WriteString("Type=notify\nNotifyAccess=all\n")
	} else {
		fmt.Fprintf(&b, "ExecStart=%s\n", berth("start", ident))
		fmt.Fprintf(&b, "ExecStop=%s\n", berth("stop", "-t", t, ident))
		fmt.Fprintf(&b, "ExecStopPost=%s\n", berth("stop", "-t", t, ident))
		fmt.Fprintf(&b, "PIDFile=%s\n", unitEscape(info.PIDFile))
		b.WriteString("Type=forking\n")
	}
	b.WriteString("\n[Install]\nWantedBy=default.target\n")
	return unit, b.String(), nil
}

// dropOnNew are the run/create flags a --new unit sets itself.
var dropOnNew = map[string]bool{"detach": true, "d": true, "rm": true, "replace": true, "name": true, "sdnotify": true}

// newRunArgs turns the command line that created a container into the
// `run` of a --new unit: global flags kept, `create` becomes `run`, and
// -d, --rm, --replace, --name and --sdnotify are the unit's own (the
// container's --sdnotify mode is kept, conmon by default).
func newRunArgs(argv []string, name string, app *cli.App) ([]string, error) {
	bad := func() error {
		return fmt.Errorf("cannot read the container's create command %q", strings.Join(argv, " "))
	}
	var global []string
	i := 1
	for i < len(argv) && strings.HasPrefix(argv[i], "-") {
		global = append(global, argv[i])
		if !strings.Contains(argv[i], "=") && takesValue(app.Flags, argv[i]) && i+1 < len(argv) {
			i++
			global = append(global, argv[i])
		}
		i++
	}
	if i >= len(argv) || (argv[i] != "run" && argv[i] != "create") {
		return nil, bad()
	}
	cmd := app.Command(argv[i])
	i++
	var kept []string
	sdnotify := "conmon"
	for i < len(argv) {
		a := argv[i]
		if a == "--" {
			i++
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		i++
		flagName, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var names []string // the flags this argument sets
		if !strings.HasPrefix(a, "--") && len(flagName) > 1 && !hasValue && findFlag(cmd.Flags, flagName) == nil {
			for _, ch := range flagName { // combined short flags: -dit
				names = append(names, string(ch))
			}
		} else {
			names = []string{flagName}
		}
		last := names[len(names)-1]
		f := findFlag(cmd.Flags, last)
		if f == nil {
			return nil, bad()
		}
		valueArg := []string(nil)
		if !hasValue && takesValue(cmd.Flags, "-"+last) {
			if i >= len(argv) {
				return nil, bad()
			}
			value, hasValue = argv[i], true
			valueArg = []string{argv[i]}
			i++
		}
		if last == "sdnotify" {
			sdnotify = value
		}
		// Keep what the unit does not set itself.
		var keepShort []string
		for _, n := range names {
			if !dropOnNew[n] {
				keepShort = append(keepShort, n)
			}
		}
		switch {
		case len(keepShort) == 0:
		case len(names) > 1:
			kept = append(kept, "-"+strings.Join(keepShort, ""))
			if dropOnNew[last] {
				break // the value went with the dropped flag
			}
			kept = append(kept, valueArg...)
		default:
			kept = append(kept, a)
			kept = append(kept, valueArg...)
		}
	}
	if i >= len(argv) {
		return nil, bad() // no image
	}
	out := append([]string{}, global...)
	out = append(out, "run", "--rm", "--sdnotify="+sdnotify, "--replace", "-d", "--name", name)
	out = append(out, kept...)
	return append(out, argv[i:]...), nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// execLine quotes a command line for ExecStart= and its kin.
func execLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = execArg(a)
	}
	return strings.Join(q, " ")
}

// execArg quotes one word of a command line the way systemd reads it:
// specifiers (%) and variables ($) are doubled, and a word with spaces,
// quotes, backslashes or nothing in it is double-quoted with C escapes.
func execArg(s string) string {
	e := unitEscape(strings.ReplaceAll(s, "$", "$$"))
	if e != "" && e != ";" && !strings.ContainsAny(e, " \t\n\"'\\") {
		return e
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(e) + `"`
}

// unitEscape doubles specifiers in a value that systemd expands.
func unitEscape(s string) string { return strings.ReplaceAll(s, "%", "%%") }
