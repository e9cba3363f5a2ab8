package commands

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berth-dev/berth/engine"
)

// createFlags are shared by run and create.
func createFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep STDIN open"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-TTY"},
		&cli.BoolFlag{Name: "rm", Usage: "remove the container when it exits"},
		&cli.StringFlag{Name: "restart", Usage: "restart policy when the container exits: no, always, unless-stopped, on-failure[:max-retries]"},
		&cli.StringFlag{Name: "name", Usage: "assign a name to the container"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set environment variables (KEY=VALUE, or KEY to copy it)"},
		&cli.StringSliceFlag{Name: "env-file", Usage: "read environment variables from a file"},
		&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory inside the container"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "user[:group] to run as (name or id)"},
		&cli.StringFlag{Name: "entrypoint", Usage: "overwrite the image's ENTRYPOINT"},
		&cli.StringFlag{Name: "hostname", Aliases: []string{"h"}, Usage: "container host name"},
		&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "set metadata (key=value)"},
		&cli.BoolFlag{Name: "init", Usage: "run an init inside the container that forwards signals and reaps processes"},
		&cli.StringFlag{Name: "stop-signal", Usage: "signal to stop the container"},
		&cli.StringFlag{Name: "stop-timeout", Usage: "seconds to wait before killing the container on stop"},
		&cli.StringFlag{Name: "network", Aliases: []string{"net"}, Usage: "connect the container to a network: bridge (default), none, host, container:NAME or a network's name"},
		&cli.StringFlag{Name: "userns", Usage: "user namespace: host (the default), or keep-id (rootless: your own uid and gid inside)"},
		&cli.StringSliceFlag{Name: "network-alias", Aliases: []string{"net-alias"}, Usage: "add a network-scoped alias for the container"},
		&cli.StringFlag{Name: "ip", Usage: "IPv4 address (e.g. 172.30.100.104)"},
		&cli.StringFlag{Name: "mac-address", Usage: "container MAC address (e.g. 92:d0:c6:0a:29:33)"},
		&cli.StringSliceFlag{Name: "link", Usage: "add link to another container (NAME[:ALIAS])"},
		&cli.StringSliceFlag{Name: "dns", Usage: "set custom DNS servers"},
		&cli.StringSliceFlag{Name: "dns-search", Usage: "set custom DNS search domains"},
		&cli.StringSliceFlag{Name: "dns-option", Aliases: []string{"dns-opt"}, Usage: "set DNS options"},
		&cli.StringFlag{Name: "pull", Value: "missing", Usage: "pull image before running: missing, always or never"},
		&cli.StringSliceFlag{Name: "add-host", Usage: "add a custom host-to-IP mapping (host:ip)"},
		&cli.StringFlag{Name: "shm-size", Usage: "size of /dev/shm (e.g. 64m)"},
		// Security.
		&cli.BoolFlag{Name: "privileged", Usage: "give extended privileges to this container"},
		&cli.StringSliceFlag{Name: "cap-add", Usage: "add Linux capabilities (or ALL)"},
		&cli.StringSliceFlag{Name: "cap-drop", Usage: "drop Linux capabilities (or ALL)"},
		&cli.StringSliceFlag{Name: "security-opt", Usage: "security options: no-new-privileges, seccomp=unconfined|PROFILE.json"},
		&cli.BoolFlag{Name: "read-only", Usage: "mount the container's root filesystem as read only"},
		&cli.StringSliceFlag{Name: "tmpfs", Usage: "mount a tmpfs directory (PATH[:OPTIONS])"},
		// Volumes.
		&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "bind mount a host path or mount a volume ([/HOST|NAME:]/CONTAINER[:ro|rw,z|Z,PROPAGATION,nocopy])"},
		&cli.StringSliceFlag{Name: "mount", Usage: "attach a filesystem mount (type=bind|volume|tmpfs,source=,target=,readonly,…)"},
		&cli.StringSliceFlag{Name: "volumes-from", Usage: "mount the volumes of another container (CONTAINER[:ro|rw])"},
		&cli.StringSliceFlag{Name: "sysctl", Usage: "namespaced kernel parameters (KEY=VALUE)"},
		&cli.StringSliceFlag{Name: "group-add", Usage: "additional groups to join (name or id)"},
		&cli.StringSliceFlag{Name: "ulimit", Usage: "ulimit options (NAME=SOFT[:HARD])"},
		&cli.StringSliceFlag{Name: "device", Usage: "add a host device to the container (HOST[:CONTAINER[:PERMISSIONS]])"},
		// Resources.
		&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Usage: "memory limit (e.g. 64m)"},
		&cli.StringFlag{Name: "memory-swap", Usage: "memory plus swap limit; -1 for unlimited swap"},
		&cli.StringFlag{Name: "memory-reservation", Usage: "memory soft limit"},
		&cli.StringFlag{Name: "cpus", Usage: "number of CPUs (e.g. 0.5)"},
		&cli.StringFlag{Name: "cpu-shares", Aliases: []string{"c"}, Usage: "CPU shares (relative weight)"},
		&cli.StringFlag{Name: "cpu-quota", Usage: "CPU CFS quota in microseconds"},
		&cli.StringFlag{Name: "cpu-period", Usage: "CPU CFS period in microseconds"},
		&cli.StringFlag{Name: "cpuset-cpus", Usage: "CPUs in which to allow execution (0-3, 0,1)"},
		&cli.StringFlag{Name: "cpuset-mems", Usage: "memory nodes in which to allow execution (0-3, 0,1)"},
		&cli.StringFlag{Name: "pids-limit", Usage: "tune the container's pids limit (-1 for unlimited)"},
		&cli.StringFlag{Name: "blkio-weight", Usage: "block IO weight (10 to 1000, or 0 to disable)"},
		&cli.BoolFlag{Name: "oom-kill-disable", Usage: "disable the OOM killer"},
		// Logging and systemd: engine/systemd.go, docs/systemd.md.
		&cli.StringFlag{Name: "log-driver", Value: "json-file", Usage: "logging driver: json-file, k8s-file, passthrough (the container's output goes to berth's own stdout/stderr) or none"},
		&cli.StringSliceFlag{Name: "log-opt", Usage: "logging driver options (KEY=VALUE)"},
		&cli.StringFlag{Name: "sdnotify", Usage: "how to use $NOTIFY_SOCKET: conmon (berth sends READY=1 once the container runs; the default), container (the container's service sends it) or ignore"},
		&cli.BoolFlag{Name: "replace", Usage: "if a container of the same name exists, stop and remove it first"},
	}, healthFlags()...) // commands/health.go
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "create and start a container",
		ArgsUsage: "IMAGE [COMMAND] [ARG...]",
		Flags: append(append(createFlags(), portFlags()...), // -p, -P, --expose: commands/ports.go
			&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run in the background and print the container ID"},
			&cli.StringFlag{Name: "detach-keys", Usage: "key sequence for detaching from a terminal session (default ctrl-p,ctrl-q)"},
		),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] IMAGE [COMMAND] [ARG...]"); err != nil {
				return err
			}
			opts, err := createOptions(c)
			if err != nil {
				return err
			}
			detach := c.Bool("detach")
			return withEngine(c, func(e *engine.Engine) error {
				var streams *engine.Streams
				var restore func()
				if !detach {
					streams, restore, err = foregroundStreams(opts.Config.Tty, opts.Config.OpenStdin)
					if err != nil {
						return err
					}
					defer restore()
				}
				if !detach && opts.Config.OpenStdin {
					opts.Config.StdinOnce = true // as docker: the caller's EOF ends the input
				}
				res, err := e.Run(c.Context, engine.RunOptions{Create: *opts, Detach: detach, Streams: streams, DetachKeys: c.String("detach-keys")})
				if err == nil && detach {
					fmt.Fprintln(c.App.Writer, res.ID)
					return nil
				}
				code := 0
				if res != nil {
					code = res.ExitCode
				}
				return containerExit(code, err)
			})
		},
	}
}

func createCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a container without starting it",
		ArgsUsage: "IMAGE [COMMAND] [ARG...]",
		Flags:     append(createFlags(), portFlags()...),
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] IMAGE [COMMAND] [ARG...]"); err != nil {
				return err
			}
			opts, err := createOptions(c)
			if err != nil {
				return err
			}
			return withEngine(c, func(e *engine.Engine) error {
				rec, err := e.Create(c.Context, *opts)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, rec.ID)
				return nil
			})
		},
	}
}

// createOptions turns run/create flags into Docker's container config.
func createOptions(c *cli.Context) (*engine.CreateOptions, error) {
	args := c.Args().Slice()
	cfg := &container.Config{
		Image:      args[0],
		Cmd:        args[1:],
		Tty:        c.Bool("tty"),
		OpenStdin:  c.Bool("interactive"),
		WorkingDir: c.String("workdir"),
		User:       c.String("user"),
		Hostname:   c.String("hostname"),
		StopSignal: c.String("stop-signal"),
	}
	if len(cfg.Cmd) == 0 {
		cfg.Cmd = nil
	}
	cfg.AttachStdin = cfg.OpenStdin
	cfg.AttachStdout, cfg.AttachStderr = true, true
	if c.IsSet("entrypoint") {
		cfg.Entrypoint = []string{c.String("entrypoint")}
	}
	if cfg.WorkingDir != "" && !strings.HasPrefix(cfg.WorkingDir, "/") {
		return nil, usagef("invalid --workdir %q: the working directory must be an absolute path", cfg.WorkingDir)
	}
	if c.IsSet("stop-timeout") {
		n, err := strconv.Atoi(c.String("stop-timeout"))
		if err != nil {
			return nil, usagef("invalid --stop-timeout %q: not a number of seconds", c.String("stop-timeout"))
		}
		cfg.StopTimeout = &n
	}
	if cfg.StopSignal != "" {
		if _, err := parseSignal(cfg.StopSignal); err != nil {
			return nil, usagef("invalid --stop-signal %q: %v", cfg.StopSignal, err)
		}
	}
	env, err := parseEnv(c.StringSlice("env-file"), c.StringSlice("env"))
	if err != nil {
		return nil, err
	}
	cfg.Env = env
	labels, err := parseLabels(c.StringSlice("label"))
	if err != nil {
		return nil, err
	}
	cfg.Labels = labels

	hc := &container.HostConfig{
		AutoRemove:  c.Bool("rm"),
		NetworkMode: container.NetworkMode(c.String("network")),
		UsernsMode:  container.UsernsMode(c.String("userns")),
		LogConfig:   container.LogConfig{Type: c.String("log-driver")},
	}
	for _, o := range c.StringSlice("log-opt") {
		k, v, ok := strings.Cut(o, "=")
		if !ok || k == "" {
			return nil, usagef("invalid --log-opt %q: want KEY=VALUE", o)
		}
		if hc.LogConfig.Config == nil {
			hc.LogConfig.Config = map[string]string{}
		}
		hc.LogConfig.Config[k] = v
	}
	if c.Bool("replace") && c.String("name") == "" {
		return nil, usagef("cannot replace a container without --name being set")
	}
	if c.IsSet("init") {
		v := c.Bool("init")
		hc.Init = &v
	}
	if err := restartFlag(c, hc); err != nil {
		return nil, err
	}
	for _, h := range c.StringSlice("add-host") {
		name, ip, ok := strings.Cut(h, ":")
		if !ok || name == "" || ip == "" {
			return nil, usagef("invalid --add-host %q: want host:ip", h)
		}
		hc.ExtraHosts = append(hc.ExtraHosts, h)
	}
	if s := c.String("shm-size"); s != "" {
		n, err := parseSize(s)
		if err != nil || n <= 0 {
			return nil, usagef("invalid --shm-size %q: want a size such as 64m", s)
		}
		hc.ShmSize = n
	}
	for _, v := range c.StringSlice("volume") {
		if !strings.Contains(v, ":") {
			// -v /path: an anonymous volume, which docker's CLI puts in
			// Config.Volumes rather than in the binds.
			if _, err := engine.ParseBind(v); err != nil {
				return nil, err
			}
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v] = struct{}{}
			continue
		}
		hc.Binds = append(hc.Binds, parseVolumeFlag(v))
	}
	for _, v := range c.StringSlice("mount") {
		m, err := parseMount(v)
		if err != nil {
			return nil, err
		}
		hc.Mounts = append(hc.Mounts, m)
	}
	hc.VolumesFrom = c.StringSlice("volumes-from")
	if err := parsePortFlags(c, cfg, hc); err != nil {
		return nil, err
	}
	if err := securityFlags(c, hc); err != nil {
		return nil, err
	}
	if err := resourceFlags(c, &hc.Resources); err != nil {
		return nil, err
	}
	switch p := c.String("pull"); p {
	case "missing", "always", "never", "newer":
	default:
		return nil, usagef("invalid --pull %q: want missing, always or never", p)
	}
	networking, err := networkFlags(c, hc)
	if err != nil {
		return nil, err
	}
	if cfg.Healthcheck, err = healthcheckFlags(c); err != nil {
		return nil, err
	}
	onFailure := c.String("health-on-failure")
	if !engine.ValidHealthOnFailure(onFailure) {
		return nil, usagef("invalid --health-on-failure %q: want none, kill, restart or stop", onFailure)
	}
	return &engine.CreateOptions{
		Name: c.String("name"), Config: cfg, HostConfig: hc, Pull: c.String("pull"), Networking: networking,
		HealthOnFailure: onFailure,
		SdNotify:        c.String("sdnotify"), Replace: c.Bool("replace"),
		CreateCommand: append([]string(nil), os.Args...), // for generate systemd --new
		Warn:          func(msg string) { fmt.Fprintln(c.App.ErrWriter, msg) },
	}, nil
}

// networkFlags reads --dns*, --link, --ip, --mac-address and
// --network-alias.
func networkFlags(c *cli.Context, hc *container.HostConfig) (*network.NetworkingConfig, error) {
	for _, d := range c.StringSlice("dns") {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, usagef("invalid --dns %q: not an IP address", d)
		}
		hc.DNS = append(hc.DNS, a)
	}
	hc.DNSSearch = c.StringSlice("dns-search")
	hc.DNSOptions = c.StringSlice("dns-option")
	hc.Links = c.StringSlice("link")
	ep := &network.EndpointSettings{Aliases: c.StringSlice("network-alias")}
	set := len(ep.Aliases) > 0
	if s := c.String("ip"); s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, usagef("invalid --ip %q: not an IPv4 address", s)
		}
		ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a}
		set = true
	}
	if s := c.String("mac-address"); s != "" {
		m, err := net.ParseMAC(s)
		if err != nil || len(m) != 6 {
			return nil, usagef("invalid --mac-address %q", s)
		}
		ep.MacAddress = network.HardwareAddr(m)
		set = true
	}
	if !set {
		return nil, nil
	}
	name := string(hc.NetworkMode)
	if name == "" {
		name = "bridge"
	}
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: ep}}, nil
}

// parseEnv reads --env-file files, then -e values. "KEY" alone takes the
// value from berth's own environment and is dropped when that is unset.
func parseEnv(files, vars []string) ([]string, error) {
	var out []string
	add := func(kv string) {
		if strings.Contains(kv, "=") {
			out = append(out, kv)
		} else if v, ok := os.LookupEnv(kv); ok {
			out = append(out, kv+"="+v)
		}
	}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("invalid --env-file: %v", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimLeft(sc.Text(), " \t")
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasPrefix(line, "=") {
				f.Close()
				return nil, usagef("invalid --env-file %s: variable without a name: %q", path, line)
			}
			add(line)
		}
		f.Close()
	}
	for _, kv := range vars {
		if kv == "" || strings.HasPrefix(kv, "=") {
			return nil, usagef("invalid environment variable %q", kv)
		}
		add(kv)
	}
	return out, nil
}

func parseLabels(list []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, l := range list {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, usagef("invalid label %q: empty key", l)
		}
		labels[k] = v
	}
	return labels, nil
}

// parseSize reads sizes as docker does: 512, 64k, 64m, 1g (binary units).
func parseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for suffix, m := range map[string]int64{"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "b": 1} {
		if strings.HasSuffix(s, suffix) && len(s) > len(suffix) {
			if _, err := strconv.ParseFloat(strings.TrimSuffix(s, suffix), 64); err == nil {
				s, mult = strings.TrimSuffix(s, suffix), m
				break
			}
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return int64(f * float64(mult)), nil
}

// foregroundStreams connects the container to this process's terminal or
// pipes, and returns a function that restores the terminal.
func foregroundStreams(tty, stdin bool) (*engine.Streams, func(), error) {
	s := &engine.Streams{Stdout: os.Stdout, Stderr: os.Stderr}
	if stdin {
		s.Stdin = os.Stdin
	}
	restore := func() {}
	sigs := make(chan os.Signal, 16)
	// With a terminal, ^C reaches the container through the pty.
	forward := []os.Signal{unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}
	if !tty || !stdin {
		forward = append(forward, unix.SIGINT)
	}
	signal.Notify(sigs, forward...)
	s.Signals = sigs
	if tty {
		fd := int(os.Stdout.Fd())
		if term.IsTerminal(int(os.Stdin.Fd())) {
			fd = int(os.Stdin.Fd())
		}
		s.TerminalSize = func() (uint16, uint16, bool) {
			w, h, err := term.GetSize(fd)
			return uint16(h), uint16(w), err == nil
		}
		resize := make(chan os.Signal, 1)
		signal.Notify(resize, unix.SIGWINCH)
		s.Resize = resize
		if stdin && term.IsTerminal(int(os.Stdin.Fd())) {
			old, err := term.MakeRaw(int(os.Stdin.Fd()))
			if err != nil {
				return nil, nil, fmt.Errorf("setting terminal to raw mode: %w", err)
			}
			restore = func() { term.Restore(int(os.Stdin.Fd()), old) }
		}
	}
	return s, restore, nil
}

// restartFlag reads --restart (engine/restart.go has the rules).
func restartFlag(c *cli.Context, hc *container.HostConfig) error {
	p, err := engine.ParseRestartPolicy(c.String("restart"))
	if err != nil {
		return &UsageError{Err: err}
	}
	if hc.AutoRemove && !p.IsNone() {
		return usagef("conflicting options: cannot specify both --restart and --rm")
	}
	hc.RestartPolicy = p
	return nil
}
