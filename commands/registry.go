package commands

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/storage"
)

// registryFlags are shared by pull, push, login, logout and search.
func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "require HTTPS and verify certificates (false also allows plain HTTP)"},
		&cli.StringFlag{Name: "authfile", Usage: "credentials file (default: $XDG_RUNTIME_DIR/containers/auth.json, else ~/.docker/config.json; env REGISTRY_AUTH_FILE)"},
	}
}

func registryOptions(c *cli.Context) engine.RegistryOptions {
	o := engine.RegistryOptions{AuthFile: c.String("authfile")}
	if c.IsSet("tls-verify") {
		v := c.Bool("tls-verify")
		o.TLSVerify = &v
	}
	return o
}

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "download an image from a registry",
		ArgsUsage: "NAME[:TAG|@DIGEST]",
		Flags: append(registryFlags(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "suppress verbose output"},
			&cli.BoolFlag{Name: "all-tags", Aliases: []string{"a"}, Usage: "download all tagged images in the repository"},
			&cli.StringFlag{Name: "platform", Usage: "pull for this platform (os/arch[/variant]) from a multi-platform image"},
			&cli.BoolFlag{Name: "disable-content-trust", Value: true, Usage: "ignored (docker compatibility)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("\"pull\" requires exactly 1 argument\nUsage: berth pull [OPTIONS] NAME[:TAG|@DIGEST]")
			}
			ref := c.Args().First()
			return withEngine(c, func(e *engine.Engine) error {
				refs := []string{ref}
				if c.Bool("all-tags") {
					if strings.Contains(ref, "@") || strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") {
						return usagef("tag can't be used with --all-tags/-a")
					}
					tags, err := e.ListTags(c.Context, ref, registryOptions(c))
					if err != nil {
						return err
					}
					refs = refs[:0]
					for _, t := range tags {
						refs = append(refs, ref+":"+t)
					}
				}
				for _, r := range refs {
					if err := pullOne(c, e, r); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}

func pullOne(c *cli.Context, e *engine.Engine, ref string) error {
	out := c.App.Writer
	quiet := c.Bool("quiet")
	var bars *barProgress
	o := engine.PullOptions{RegistryOptions: registryOptions(c), Platform: c.String("platform")}
	switch {
	case quiet:
	case drawsBars(out):
		bars = newBarProgress(out)
		o.Progress = bars.event
	default:
		o.Progress = engine.LineProgress(out)
	}
	res, err := e.Pull(c.Context, ref, o)
	if bars != nil {
		bars.finish(err == nil)
	}
	if err != nil {
		return err
	}
	if !quiet {
		fmt.Fprintln(out, "Digest: "+res.Digest)
		fmt.Fprintln(out, engine.PullStatus(res))
	}
	fmt.Fprintln(out, res.Ref)
	return nil
}

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "upload an image to a registry",
		ArgsUsage: "NAME[:TAG] [DESTINATION]",
		Flags: append(registryFlags(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "suppress verbose output"},
			&cli.BoolFlag{Name: "disable-content-trust", Value: true, Usage: "ignored (docker compatibility)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usagef("\"push\" requires 1 or 2 arguments\nUsage: berth push [OPTIONS] NAME[:TAG] [DESTINATION]")
			}
			out := c.App.Writer
			quiet := c.Bool("quiet")
			var bars *barProgress
			o := engine.PushOptions{RegistryOptions: registryOptions(c)}
			switch {
			case quiet:
			case drawsBars(out):
				bars = newBarProgress(out)
				o.Progress = bars.event
			default:
				o.Progress = engine.LineProgress(out)
			}
			return withEngine(c, func(e *engine.Engine) error {
				res, err := e.Push(c.Context, c.Args().Get(0), c.Args().Get(1), o)
				if bars != nil {
					bars.finish(err == nil)
				}
				if err != nil {
					return err
				}
				if quiet {
					fmt.Fprintln(out, res.Ref)
					return nil
				}
				fmt.Fprintf(out, "%s: digest: %s size: %d\n", res.Tag, res.Digest, res.Size)
				return nil
			})
		},
	}
}

func loginCommand() *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "log in to a registry",
		ArgsUsage: "[SERVER]",
		Flags: append(registryFlags(),
			&cli.StringFlag{Name: "username", Aliases: []string{"u"}, Usage: "username"},
			&cli.StringFlag{Name: "password", Aliases: []string{"p"}, Usage: "password"},
			&cli.BoolFlag{Name: "password-stdin", Usage: "take the password from stdin"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usagef("\"login\" requires at most 1 argument\nUsage: berth login [OPTIONS] [SERVER]")
			}
			password := c.String("password")
			if c.Bool("password-stdin") {
				if password != "" {
					return usagef("--password and --password-stdin are mutually exclusive")
				}
				if c.String("username") == "" {
					return usagef("must provide --username with --password-stdin")
				}
				data, err := io.ReadAll(bufio.NewReader(os.Stdin))
				if err != nil {
					return fmt.Errorf("reading password from stdin: %w", err)
				}
				password = strings.TrimRight(string(data), "\r\n")
			} else if password != "" {
				fmt.Fprintln(c.App.ErrWriter, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
			}
			if (c.String("username") == "") != (password == "") {
				return usagef("both a username and a password are needed (-u and -p or --password-stdin); berth never prompts")
			}
			return withEngine(c, func(e *engine.Engine) error {
				_, err := e.Login(c.Context, engine.LoginOptions{
					RegistryOptions: registryOptions(c),
					Server:          c.Args().First(),
					Username:        c.String("username"),
					Password:        password,
				})
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, "Login Succeeded")
				return nil
			})
		},
	}
}

func logoutCommand() *cli.Command {
	return &cli.Command{
		Name:      "logout",
		Usage:     "log out from a registry",
		ArgsUsage: "[SERVER]",
		Flags:     registryFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usagef("\"logout\" requires at most 1 argument\nUsage: berth logout [SERVER]")
			}
			return withEngine(c, func(e *engine.Engine) error {
				registry, removed, err := e.Logout(c.Args().First(), registryOptions(c))
				if err != nil {
					return err
				}
				if !removed {
					fmt.Fprintf(c.App.Writer, "Not logged in to %s\n", registry)
					return nil
				}
				fmt.Fprintf(c.App.Writer, "Removed login credentials for %s\n", registry)
				return nil
			})
		},
	}
}

const searchDefaultFormat = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"

var searchHeaders = map[string]string{
	"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED",
}

func searchCommand() *cli.Command {
	return &cli.Command{
		Name:      "search",
		Usage:     "search a registry for images",
		ArgsUsage: "TERM",
		Flags: append(registryFlags(),
			&cli.IntFlag{Name: "limit", Value: 25, Usage: "max number of search results"},
			&cli.StringFlag{Name: "format", Usage: "pretty-print search using a Go template"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "don't truncate output"},
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "filter output: stars=N, is-official=true|false"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("\"search\" requires exactly 1 argument\nUsage: berth search [OPTIONS] TERM")
			}
			if l := c.Int("limit"); l < 1 || l > 100 {
				return usagef("invalid --limit %d: must be between 1 and 100", l)
			}
			minStars, official := 0, ""
			for _, f := range c.StringSlice("filter") {
				k, v, _ := strings.Cut(f, "=")
				switch k {
				case "stars":
					if _, err := fmt.Sscanf(v, "%d", &minStars); err != nil {
						return usagef("invalid filter %q", f)
					}
				case "is-official":
					if v != "true" && v != "false" {
						return usagef("invalid filter %q", f)
					}
					official = v
				default:
					return usagef("invalid filter %q", f)
				}
			}
			return withEngine(c, func(e *engine.Engine) error {
				results, err := e.Search(c.Context, c.Args().First(), engine.SearchOptions{RegistryOptions: registryOptions(c), Limit: c.Int("limit")})
				if err != nil {
					return err
				}
				var rows []any
				for i := range results {
					r := results[i]
					if r.StarCount < minStars || (official != "" && fmt.Sprint(r.IsOfficial) != official) {
						continue
					}
					rows = append(rows, &searchRow{r: r, noTrunc: c.Bool("no-trunc")})
				}
				format := c.String("format")
				if format == "" {
					format = searchDefaultFormat
				}
				return writeFormatted(c.App.Writer, format, rows, searchHeaders)
			})
		},
	}
}

// searchRow gives a search result docker's field names.
type searchRow struct {
	r       storage.SearchResult
	noTrunc bool
}

func (s *searchRow) Name() string { return s.r.Name }
func (s *searchRow) Description() string {
	d := strings.Join(strings.Fields(s.r.Description), " ")
	if !s.noTrunc && len([]rune(d)) > 45 {
		d = string([]rune(d)[:44]) + "…"
	}
	return d
}
func (s *searchRow) StarCount() int { return s.r.StarCount }
func (s *searchRow) IsOfficial() string {
	if s.r.IsOfficial {
		return "[OK]"
	}
	return ""
}
func (s *searchRow) IsAutomated() string {
	if s.r.IsAutomated {
		return "[OK]"
	}
	return ""
}

// drawsBars tells whether out is a terminal with a size (a pty nobody
// sized, as under script(1), gets plain lines).
func drawsBars(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok || !isTerminal(out) {
		return false
	}
	width, height, err := term.GetSize(int(f.Fd()))
	return err == nil && width > 0 && height > 0
}

// barProgress draws a progress bar per layer on a terminal.
type barProgress struct {
	out  io.Writer
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string]*layerBar
	ids  []string
}

type layerBar struct {
	bar    *mpb.Bar
	status atomic.Value // string
}

func newBarProgress(out io.Writer) *barProgress {
	return &barProgress{out: out, bars: map[string]*layerBar{}}
}

func (b *barProgress) event(ev storage.ProgressEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ev.ID == "" || strings.HasPrefix(ev.Status, "Pulling from") {
		if b.p == nil {
			if ev.ID != "" {
				fmt.Fprintf(b.out, "%s: %s\n", ev.ID, ev.Status)
			} else {
				fmt.Fprintln(b.out, ev.Status)
			}
		}
		return
	}
	if b.p == nil {
		b.p = mpb.New(mpb.WithOutput(b.out), mpb.WithWidth(50))
	}
	lb := b.bars[ev.ID]
	if lb == nil {
		lb = &layerBar{}
		lb.status.Store(ev.Status)
		lb.bar = b.p.New(0, mpb.BarStyle(),
			mpb.PrependDecorators(decor.Name(ev.ID+": "), decor.Any(func(decor.Statistics) string { return fmt.Sprintf("%-22s", lb.status.Load().(string)) })),
			mpb.AppendDecorators(decor.OnComplete(decor.Counters(decor.SizeB1000(0), "% .1f / % .1f"), "")),
		)
		b.bars[ev.ID] = lb
		b.ids = append(b.ids, ev.ID)
	}
	lb.status.Store(ev.Status)
	switch ev.Status {
	case "Downloading", "Pushing":
		if ev.Total > 0 {
			lb.bar.SetTotal(ev.Total, false)
		}
		lb.bar.SetCurrent(ev.Current)
	case "Download complete":
		if ev.Total > 0 {
			lb.bar.SetTotal(ev.Total, false)
			lb.bar.SetCurrent(ev.Total)
		}
	case "Pull complete", "Already exists", "Pushed", "Layer already exists":
		lb.complete()
	default:
		if strings.HasPrefix(ev.Status, "Mounted from") {
			lb.complete()
		}
	}
}

// complete fills the bar, also for a layer that needed no transfer.
func (lb *layerBar) complete() {
	if lb.bar.Current() == 0 {
		lb.bar.SetCurrent(1)
	}
	lb.bar.SetTotal(-1, true)
}

// finish completes (or, after an error, aborts) every bar and waits for
// the last frame to be drawn.
func (b *barProgress) finish(ok bool) {
	b.mu.Lock()
	p := b.p
	for _, id := range b.ids {
		lb := b.bars[id]
		if lb.bar.AbortedOrCompleted() {
			continue
		}
		if ok {
			lb.complete()
		} else {
			lb.bar.Abort(false)
		}
	}
	b.mu.Unlock()
	if p != nil {
		p.Wait()
	}
}
