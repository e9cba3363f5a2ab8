package commands

import (
	"fmt"
	"os"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/oci"
)

// APIVersion is the Docker Engine API version berth speaks.
const APIVersion = "1.47"

type versionPart struct {
	Version    string
	APIVersion string
	GoVersion  string
	GitCommit  string
	Os         string
	Arch       string
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "show the berth version information",
		Flags: []cli.Flag{&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "format output using a Go template"}},
		Action: func(c *cli.Context) error {
			part := versionPart{Version: Version, APIVersion: APIVersion, GoVersion: runtime.Version(), GitCommit: GitCommit, Os: runtime.GOOS, Arch: runtime.GOARCH}
			v := struct{ Client, Server versionPart }{part, part}
			if f := c.String("format"); f != "" {
				return writeFormatted(c.App.Writer, f, []any{v}, nil)
			}
			for _, p := range []struct {
				title string
				v     versionPart
			}{{"Client:", v.Client}, {"Engine:", v.Server}} {
				fmt.Fprintf(c.App.Writer, "%s\n Version:\t%s\n API version:\t%s\n Go version:\t%s\n Git commit:\t%s\n OS/Arch:\t%s/%s\n",
					p.title, p.v.Version, p.v.APIVersion, p.v.GoVersion, p.v.GitCommit, p.v.Os, p.v.Arch)
				if p.title == "Client:" {
					fmt.Fprintln(c.App.Writer)
				}
			}
			return nil
		},
	}
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "display system-wide information",
		Flags: []cli.Flag{&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "format output using a Go template"}},
		Action: func(c *cli.Context) error {
			return withEngine(c, func(e *engine.Engine) error {
				info, err := e.Info(c.Context)
				if err != nil {
					return err
				}
				if f := c.String("format"); f != "" {
					return writeFormatted(c.App.Writer, f, []any{info}, nil)
				}
				w := c.App.Writer
				fmt.Fprintf(w, "Containers: %d\n Running: %d\n Paused: %d\n Stopped: %d\nImages: %d\n",
					info.Containers, info.ContainersRunning, info.ContainersPaused, info.ContainersStopped, info.Images)
				fmt.Fprintf(w, "Server Version: %s\nStorage Driver: %s\n", Version, info.Driver)
				for _, kv := range info.DriverStatus {
					fmt.Fprintf(w, " %s: %s\n", kv[0], kv[1])
				}
				if info.StorageNote != "" {
					fmt.Fprintf(w, " Note: %s\n", info.StorageNote)
				}
				fmt.Fprintf(w, "Logging Driver: json-file\nCgroup Driver: cgroupfs\nCgroup Version: %s\n", info.CgroupVersion)
				fmt.Fprintf(w, "Kernel Version: %s\nOperating System: %s\nOSType: linux\nArchitecture: %s\nCPUs: %d\nTotal Memory: %s\n",
					info.KernelVersion, info.OperatingSystem, runtime.GOARCH, runtime.NumCPU(), humanSize(info.MemTotal))
				host, _ := os.Hostname()
				fmt.Fprintf(w, "Name: %s\nBerth Root Dir: %s\nBerth Run Dir: %s\nRootless: %v\n", host, info.Root, info.RunRoot, info.Rootless)
				for _, n := range info.RootlessNotes {
					fmt.Fprintf(w, " Not available: %s\n", n)
				}
				_ = oci.IsCgroup2
				return nil
			})
		},
	}
}
