package commands

import (
	"errors"
	"os"
	"os/exec"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/rootless"
)

// unshareCommand runs a command in the rootless user's namespace (where
// the user is root and the store's files have their container owners):
// to look at or remove files that the user cannot touch outside.
func unshareCommand() *cli.Command {
	return &cli.Command{
		Name:            "unshare",
		Usage:           "run a command (default: $SHELL) in the rootless user namespace",
		ArgsUsage:       "[COMMAND [ARG...]]",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			if !rootless.Joined() {
				return errors.New("berth unshare is for rootless berth: root has no user namespace to enter")
			}
			args := c.Args().Slice()
			if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
				return cli.ShowCommandHelp(c, "unshare")
			}
			if len(args) == 0 {
				shell := os.Getenv("SHELL")
				if shell == "" {
					shell = "/bin/sh"
				}
				args = []string{shell}
			}
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			err := cmd.Run()
			var ee *exec.ExitError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &ee):
				code := ee.ExitCode()
				if code < 0 {
					code = 125
				}
				return &engine.ExitError{Code: code}
			case errors.Is(err, exec.ErrNotFound):
				return &engine.ExitError{Code: 127, Msg: err.Error()}
			default:
				return &engine.ExitError{Code: 126, Msg: err.Error()}
			}
		},
	}
}
