// Package commands is berth's command line: each command turns its flags
// into typed options and makes one engine call, then formats the result.
package commands

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
)

// Version information, set at build time with -ldflags -X.
var (
	Version   = "0.1.0-dev"
	GitCommit = "unknown"
)

// UsageError is a problem with the command line itself (exit 125).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// NewApp builds the berth command line.
func NewApp(stdout, stderr io.Writer) *cli.App {
	// -h is --hostname for run and create, as in docker.
	cli.HelpFlag = &cli.BoolFlag{Name: "help", Usage: "show help"}
	def := engine.DefaultConfig()
	app := &cli.App{
		Name:                      "berth",
		Usage:                     "a daemonless container engine",
		Version:                   Version,
		Writer:                    stdout,
		ErrWriter:                 stderr,
		UseShortOptionHandling:    true,
		DisableSliceFlagSeparator: true,
		HideHelpCommand:           true,
		ExitErrHandler:            func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, isSub bool) error {
			return &UsageError{Err: err}
		},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: def.Root, Usage: "persistent storage directory (env BERTH_ROOT)"},
			&cli.StringFlag{Name: "runroot", Value: def.RunRoot, Usage: "runtime state directory (env BERTH_RUNROOT)"},
			&cli.StringFlag{Name: "storage-driver", Value: def.StorageDriver, Usage: "storage driver: overlay or vfs (default: overlay, through fuse-overlayfs if the kernel cannot, else vfs; env BERTH_STORAGE_DRIVER)"},
			&cli.StringSliceFlag{Name: "storage-opt", Usage: "storage driver option DRIVER.KEY=VALUE, repeatable, e.g. overlay.mount_program=/usr/bin/fuse-overlayfs; replaces env BERTH_STORAGE_OPTS; \"\" for none"},
		},
		Commands: []*cli.Command{
			runCommand(), createCommand(), startCommand(), stopCommand(), restartCommand(),
			killCommand(), rmCommand(), waitCommand(), renameCommand(), psCommand(),
			logsCommand(), inspectCommand(), imagesCommand(), importCommand(), loadCommand(),
			versionCommand(), infoCommand(), attachCommand(),
			pauseCommand(), unpauseCommand(), topCommand(), statsCommand(), portCommand(), updateCommand(), execCommand(),
			cpCommand(),
			pullCommand(), pushCommand(), loginCommand(), logoutCommand(), searchCommand(),
			tagCommand(), rmiCommand(), saveCommand(), exportCommand(), imageCommand(),
			commitCommand(), diffCommand(), historyCommand(),
			buildCommand(), volumeCommand(), networkCommand(), healthcheckCommand(), generateCommand(),
			unshareCommand(),
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(stderr, "Error: unknown command %q for \"berth\"\n", name)
			os.Exit(125)
		},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = app.OnUsageError
		cmd.UseShortOptionHandling = true
	}
	return app
}

// newEngine opens the engine with the global flags.
func newEngine(c *cli.Context) (*engine.Engine, error) {
	cfg := engine.DefaultConfig()
	cfg.Root = c.String("root")
	cfg.RunRoot = c.String("runroot")
	cfg.StorageDriver = c.String("storage-driver")
	if c.IsSet("storage-opt") {
		// As podman: the flags replace the environment's options, and
		// --storage-opt "" leaves none.
		cfg.StorageOpts = nil
		for _, o := range c.StringSlice("storage-opt") {
			if o != "" {
				cfg.StorageOpts = append(cfg.StorageOpts, o)
			}
		}
	}
	return engine.New(cfg)
}

// withEngine runs f with an open engine and closes it afterwards.
func withEngine(c *cli.Context, f func(*engine.Engine) error) error {
	e, err := newEngine(c)
	if err != nil {
		return err
	}
	defer e.Close()
	return f(e)
}

// needArgs checks the number of positional arguments.
func needArgs(c *cli.Context, min int, usage string) error {
	if c.NArg() < min {
		return usagef("%q requires at least %d argument(s)\nUsage: berth %s %s", c.Command.Name, min, c.Command.Name, usage)
	}
	return nil
}

// eachArg runs f for every argument and prints each one that succeeded,
// as docker does for stop, kill, rm, …; the first error is returned after
// all were tried.
func eachArg(c *cli.Context, f func(arg string) error) error {
	var first error
	for _, arg := range c.Args().Slice() {
		if err := f(arg); err != nil {
			if first != nil {
				fmt.Fprintf(c.App.ErrWriter, "Error: %v\n", first)
			}
			first = err
			continue
		}
		fmt.Fprintln(c.App.Writer, arg)
	}
	return first
}

// Run runs the command line in args (os.Args form). Flags may follow
// positional arguments, as docker allows, except after the image of run
// and create, where everything belongs to the container's command.
func Run(ctx context.Context, app *cli.App, args []string) error {
	return app.RunContext(ctx, reorderArgs(app, args))
}

// interspersed lists the commands whose arguments end flag parsing.
var notInterspersed = map[string]bool{"run": true, "create": true, "exec": true, "top": true, "unshare": true}

func reorderArgs(app *cli.App, args []string) []string {
	// Skip global flags to find the command.
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if !strings.Contains(args[i], "=") && takesValue(app.Flags, args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil || notInterspersed[cmd.Name] {
		return args
	}
	// A command group ("image ls"): reorder the subcommand's arguments.
	for len(cmd.Subcommands) > 0 && i+1 < len(args) {
		sub := cmd.Command(args[i+1])
		if sub == nil {
			break
		}
		cmd = sub
		i++
	}
	var flags, positional []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			positional = append(positional, rest[j+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && takesValue(cmd.Flags, a) && j+1 < len(rest) {
				j++
				flags = append(flags, rest[j])
			}
			continue
		}
		positional = append(positional, a)
	}
	out := append(append([]string{}, args[:i+1]...), flags...)
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}

// takesValue tells whether the flag named by arg ("-t", "--time") needs a
// value (i.e. is not a bool flag).
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	// Combined short flags (-af): only bools can be combined.
	return false
}
