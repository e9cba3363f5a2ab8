// Package build runs a Dockerfile the way docker's classic builder does:
// one image per instruction, RUN and COPY/ADD in build containers of
// berth's own runtime (engine.BuildRun, engine.BuildCopy), metadata-only
// instructions as images without a new layer, and a step cache.
package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/storage"
)

// Options is `build`.
type Options struct {
	// ContextDir is the build context; with ContextStdin the context (a
	// tar, or a Dockerfile alone) is read from Stdin instead.
	ContextDir   string
	ContextStdin bool
	// Dockerfile is the -f path ("" is ContextDir/Dockerfile); with
	// DockerfileStdin the Dockerfile is read from Stdin.
	Dockerfile      string
	DockerfileStdin bool
	Stdin           io.Reader

	Tags      []string
	BuildArgs map[string]string
	Target    string
	NoCache   bool
	Labels    map[string]string
	Network   string // none (default) or host
	Quiet     bool
	Pull      bool
	// Platform ("os/arch[/variant]", --platform) is the target platform:
	// what FROM picks and what `FROM scratch` is made for; "" is this
	// machine's. Only stages for this machine's platform can RUN.
	Platform string
	// Timestamp, when set (--timestamp), does what SOURCE_DATE_EPOCH does
	// and wins over it.
	Timestamp time.Time

	Stdout, Stderr io.Writer
}

// Result is a finished build.
type Result struct {
	ID string // hex image ID
}

type stage struct {
	name  string
	index int
	from  *parser.Node
	// platformFlag is FROM's --platform, unexpanded; platform is the
	// stage's platform once it runs.
	platformFlag string
	platform     v1.Platform
	commands     []*parser.Node
	image        *storage.Image
	isTarget     bool
}

type builder struct {
	e      *engine.Engine
	o      Options
	out    io.Writer
	bctx   *buildContext
	lex    *shell.Lex
	meta   map[string]*string // ARGs declared before the first FROM
	stages []*stage
	step   int
	steps  int
	cached bool // every step so far came from the cache
	time   time.Time
	// buildPlatform is this machine's; targetPlatform is --platform's
	// (explicit tells whether one was given).
	buildPlatform, targetPlatform v1.Platform
	explicitPlatform              bool
	start                         time.Time // when the build began, by the file clock (see layerTimes)
}

// Build runs the build and tags the result.
func Build(ctx context.Context, e *engine.Engine, o Options) (*Result, error) {
	b := &builder{e: e, o: o, out: o.Stdout, cached: !o.NoCache, start: fileClock()}
	if o.Quiet || b.out == nil {
		b.out = io.Discard
	}
	if o.Stderr == nil {
		b.o.Stderr = io.Discard
	}
	if o.Network == "" {
		b.o.Network = "none"
	}
	if b.o.Network != "none" && b.o.Network != "host" {
		return nil, fmt.Errorf("--network %s: only none and host are supported", o.Network)
	}
	for _, t := range o.Tags {
		if _, err := storage.NormalizeName(t); err != nil {
			return nil, fmt.Errorf("invalid tag %q: %w", t, err)
		}
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q", s)
		}
		b.time = time.Unix(sec, 0).UTC()
	}
	if !o.Timestamp.IsZero() {
		b.time = o.Timestamp.UTC()
	}
	b.buildPlatform, _ = storage.ParsePlatform("")
	b.targetPlatform = b.buildPlatform
	if o.Platform != "" {
		p, err := storage.ParsePlatform(o.Platform)
		if err != nil {
			return nil, fmt.Errorf("--platform: %w", err)
		}
		b.targetPlatform, b.explicitPlatform = p, true
	}

	var dockerfile []byte
	var err error
	switch {
	case o.ContextStdin:
		b.bctx, dockerfile, err = readStdinContext(o.Stdin, os.TempDir())
		if err != nil {
			return nil, err
		}
		defer b.bctx.cleanup()
	default:
		st, err := os.Stat(o.ContextDir)
		if err != nil {
			return nil, fmt.Errorf("unable to prepare context: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("unable to prepare context: %s is not a directory", o.ContextDir)
		}
		abs, err := filepath.Abs(o.ContextDir)
		if err != nil {
			return nil, err
		}
		b.bctx = &buildContext{dir: abs, cleanup: func() {}}
	}
	if err := b.bctx.loadIgnore(); err != nil {
		return nil, err
	}
	if o.DockerfileStdin {
		if dockerfile, err = io.ReadAll(o.Stdin); err != nil {
			return nil, err
		}
	} else if dockerfile == nil {
		name := o.Dockerfile
		if name == "" {
			name = filepath.Join(b.bctx.dir, "Dockerfile")
		} else if !filepath.IsAbs(name) {
			if _, err := os.Stat(name); err != nil {
				name = filepath.Join(b.bctx.dir, name)
			}
		}
		if dockerfile, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("unable to read the Dockerfile: %w", err)
		}
	}
	if err := b.parse(dockerfile); err != nil {
		return nil, err
	}
	target, err := b.targetStage()
	if err != nil {
		return nil, err
	}
	target.isTarget = true
	needed := b.neededStages(target)
	for _, s := range b.stages {
		if needed[s.index] {
			b.steps += 1 + len(s.commands)
		}
	}
	for _, s := range b.stages {
		if !needed[s.index] {
			continue
		}
		if err := b.runStage(ctx, s); err != nil {
			return nil, err
		}
		if s == target {
			break
		}
	}
	id := target.image.ID
	fmt.Fprintf(b.out, "Successfully built %s\n", id[:12])
	for _, t := range o.Tags {
		if err := b.e.TagImage(id, t); err != nil {
			return nil, err
		}
		fmt.Fprintf(b.out, "Successfully tagged %s\n", familiarWithTag(t))
	}
	return &Result{ID: id}, nil
}

func familiarWithTag(ref string) string {
	full, err := storage.NormalizeName(ref)
	if err != nil {
		return ref
	}
	return storage.FamiliarName(full)
}

// parse splits the Dockerfile into stages.
func (b *builder) parse(dockerfile []byte) error {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return fmt.Errorf("failed to parse Dockerfile: %w", err)
	}
	b.lex = shell.NewLex(res.EscapeToken)
	b.meta = map[string]*string{}
	var cur *stage
	for _, n := range res.AST.Children {
		lowerCommand(n)
		switch n.Value {
		case "from":
			words := nodeWords(n)
			if len(words) != 1 && !(len(words) == 3 && strings.EqualFold(words[1], "as")) {
				return fmt.Errorf("Dockerfile line %d: FROM requires either one or three arguments", n.StartLine)
			}
			cur = &stage{index: len(b.stages), from: n}
			for _, f := range n.Flags {
				v, ok := strings.CutPrefix(f, "--platform=")
				if !ok {
					return fmt.Errorf("Dockerfile line %d: FROM: unknown flag %s", n.StartLine, strings.SplitN(f, "=", 2)[0])
				}
				cur.platformFlag = v
			}
			if len(words) == 3 {
				cur.name = strings.ToLower(words[2])
			}
			b.stages = append(b.stages, cur)
		case "arg":
			if cur == nil {
				for _, w := range nodeWords(n) {
					k, v, ok := strings.Cut(w, "=")
					if ok {
						val, err := b.expand(v, nil)
						if err != nil {
							return err
						}
						b.meta[k] = &val
					} else {
						b.meta[k] = nil
					}
				}
				continue
			}
			cur.commands = append(cur.commands, n)
		default:
			if cur == nil {
				return fmt.Errorf("Dockerfile line %d: no build stage in current context (%s before FROM)", n.StartLine, strings.ToUpper(n.Value))
			}
			cur.commands = append(cur.commands, n)
		}
	}
	if len(b.stages) == 0 {
		return errors.New("Dockerfile has no FROM instruction")
	}
	return nil
}

// lowerCommand lower-cases an instruction's name (and that of an
// ONBUILD's trigger).
func lowerCommand(n *parser.Node) {
	n.Value = strings.ToLower(n.Value)
	if n.Value == "onbuild" && n.Next != nil {
		for _, c := range n.Next.Children {
			c.Value = strings.ToLower(c.Value)
		}
	}
}

func nodeWords(n *parser.Node) []string {
	var out []string
	for x := n.Next; x != nil; x = x.Next {
		out = append(out, x.Value)
	}
	return out
}

func (b *builder) targetStage() (*stage, error) {
	if b.o.Target == "" {
		return b.stages[len(b.stages)-1], nil
	}
	for _, s := range b.stages {
		if s.name == strings.ToLower(b.o.Target) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("failed to reach build target %s in Dockerfile", b.o.Target)
}

// stageByRef finds a stage by name or index among those before limit.
func (b *builder) stageByRef(ref string, limit int) *stage {
	for _, s := range b.stages[:limit] {
		if s.name != "" && s.name == strings.ToLower(ref) {
			return s
		}
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < limit {
		return b.stages[i]
	}
	return nil
}

// neededStages lists the stages target depends on (FROM stage, COPY
// --from=stage), target included.
func (b *builder) neededStages(target *stage) map[int]bool {
	need := map[int]bool{}
	var visit func(s *stage)
	visit = func(s *stage) {
		if need[s.index] {
			return
		}
		need[s.index] = true
		words := nodeWords(s.from)
		if len(words) > 0 {
			if base, err := b.expand(words[0], b.metaEnv()); err == nil {
				if d := b.stageByRef(base, s.index); d != nil && d.name != "" {
					visit(d)
				}
			}
		}
		for _, n := range s.commands {
			if n.Value != "copy" && n.Value != "add" {
				continue
			}
			if from, ok := flagValue(n.Flags, "from"); ok {
				if d := b.stageByRef(from, s.index); d != nil {
					visit(d)
				}
			}
		}
	}
	visit(target)
	return need
}

func flagValue(flags []string, name string) (string, bool) {
	for _, f := range flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// platformArgs are the ARGs docker predefines for platforms: in scope for
// FROM lines, and in a stage that declares them with ARG.
func (b *builder) platformArgs() map[string]string {
	args := map[string]string{}
	for prefix, p := range map[string]v1.Platform{"BUILD": b.buildPlatform, "TARGET": b.targetPlatform} {
		args[prefix+"PLATFORM"] = storage.FormatPlatform(p)
		args[prefix+"OS"] = p.OS
		args[prefix+"ARCH"] = p.Architecture
		args[prefix+"VARIANT"] = p.Variant
	}
	return args
}

// metaEnv is the environment FROM lines are expanded with: the ARGs
// before the first FROM, with --build-arg values, and the platform ARGs.
func (b *builder) metaEnv() []string {
	var env []string
	for k, v := range b.platformArgs() {
		if _, declared := b.meta[k]; !declared {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range b.meta {
		if ba, ok := b.o.BuildArgs[k]; ok {
			env = append(env, k+"="+ba)
		} else if v != nil {
			env = append(env, k+"="+*v)
		}
	}
	sort.Strings(env)
	return env
}

func (b *builder) expand(word string, env []string) (string, error) {
	s, _, err := b.lex.ProcessWord(word, shell.EnvsFromSlice(env))
	return s, err
}

// state is a stage being built.
type state struct {
	s      *stage
	image  *storage.Image
	config v1.Config
	args   map[string]string // ARGs in scope with their values
	argSet []string          // their names, in declaration order
	author string
}

// expandEnv is the environment for expanding words: ARGs in scope, then
// ENV (which wins).
func (st *state) expandEnv() []string {
	env := []string{}
	for _, k := range st.argSet {
		env = append(env, k+"="+st.args[k])
	}
	return append(env, st.config.Env...)
}

// stagePlatform is the platform a stage is built for: its FROM
// --platform (expanded with the ARGs before FROM), else --platform's.
func (b *builder) stagePlatform(s *stage) (v1.Platform, error) {
	if s.platformFlag == "" {
		return b.targetPlatform, nil
	}
	v, err := b.expand(s.platformFlag, b.metaEnv())
	if err != nil {
		return v1.Platform{}, err
	}
	p, err := storage.ParsePlatform(v)
	if err != nil || v == "" {
		return v1.Platform{}, fmt.Errorf("Dockerfile line %d: FROM --platform=%s: invalid platform: want os/arch[/variant]", s.from.StartLine, s.platformFlag)
	}
	return p, nil
}

// checkPlatform compares a base image's platform with the stage's: a
// mismatch is an error when a platform was asked for (FROM --platform or
// --platform), else a warning, as docker gives.
func (b *builder) checkPlatform(ref string, img *storage.Image, s *stage) error {
	if img.Config == nil || img.Config.Architecture == "" {
		return nil
	}
	have := v1.Platform{OS: img.Config.OS, Architecture: img.Config.Architecture, Variant: img.Config.Variant}
	if storage.PlatformMatches(have, s.platform) {
		return nil
	}
	msg := fmt.Sprintf("image %s is for %s, not %s", ref, storage.FormatPlatform(have), storage.FormatPlatform(s.platform))
	if s.platformFlag != "" || b.explicitPlatform {
		return fmt.Errorf("Dockerfile line %d: FROM: %s", s.from.StartLine, msg)
	}
	fmt.Fprintf(b.o.Stderr, "WARNING: %s\n", msg)
	s.platform = have
	return nil
}

func (b *builder) printStep(n *parser.Node) {
	b.step++
	fmt.Fprintf(b.out, "STEP %d/%d: %s\n", b.step, b.steps, strings.TrimSpace(n.Original))
}

func (b *builder) runStage(ctx context.Context, s *stage) error {
	b.printStep(s.from)
	words := nodeWords(s.from)
	base, err := b.expand(words[0], b.metaEnv())
	if err != nil {
		return err
	}
	st := &state{s: s, args: map[string]string{}}
	s.platform, err = b.stagePlatform(s)
	if err != nil {
		return err
	}
	switch {
	case strings.EqualFold(base, "scratch"):
		if st.image, err = b.e.BuildScratch(s.platform); err != nil {
			return err
		}
	case b.stageByRef(base, s.index) != nil && b.stageByRef(base, s.index).name != "":
		from := b.stageByRef(base, s.index)
		st.image = from.image
		if s.platformFlag == "" {
			s.platform = from.platform
		}
	default:
		pull := ""
		if b.o.Pull {
			pull = "missing"
		}
		want := ""
		if s.platformFlag != "" || b.explicitPlatform {
			want = storage.FormatPlatform(s.platform)
		}
		if st.image, err = b.e.BuildImage(ctx, base, pull, want); err != nil {
			return err
		}
		if err := b.checkPlatform(base, st.image, s); err != nil {
			return err
		}
	}
	if st.image.Config != nil {
		st.config = st.image.Config.Config
	}
	fmt.Fprintf(b.out, " ---> %s\n", st.image.ID[:12])
	// ONBUILD triggers of the base image run first, then are dropped.
	if triggers := st.config.OnBuild; len(triggers) > 0 {
		fmt.Fprintf(b.out, "# Executing %d build trigger", len(triggers))
		if len(triggers) > 1 {
			fmt.Fprint(b.out, "s")
		}
		fmt.Fprintln(b.out)
		st.config.OnBuild = nil
		for _, t := range triggers {
			res, err := parser.Parse(strings.NewReader(t))
			if err != nil {
				return fmt.Errorf("parsing ONBUILD trigger %q: %w", t, err)
			}
			for _, n := range res.AST.Children {
				lowerCommand(n)
				switch n.Value {
				case "onbuild", "from", "maintainer":
					return fmt.Errorf("%s isn't allowed as an ONBUILD trigger", strings.ToUpper(n.Value))
				}
				if err := b.dispatch(ctx, st, n, true); err != nil {
					return err
				}
			}
		}
	}
	for _, n := range s.commands {
		b.printStep(n)
		if err := b.dispatch(ctx, st, n, false); err != nil {
			// Name the line and the instruction, as for parse errors.
			if strings.HasPrefix(err.Error(), "Dockerfile line ") {
				return err
			}
			return fmt.Errorf("Dockerfile line %d: %s: %w", n.StartLine, strings.ToUpper(n.Value), err)
		}
	}
	if s.isTarget && len(b.o.Labels) > 0 {
		cfg := cloneConfig(st.config)
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(b.o.Labels)) {
			cfg.Labels[k] = b.o.Labels[k]
			parts = append(parts, strconv.Quote(k)+"="+strconv.Quote(b.o.Labels[k]))
		}
		if err := b.metaStep(st, "LABEL "+strings.Join(parts, " "), cfg); err != nil {
			return err
		}
	}
	s.image = st.image
	return nil
}

func (b *builder) createdTime() time.Time { return b.time }

// layerTimes dates what a step adds: clamped to SOURCE_DATE_EPOCH (or
// --timestamp) when given, else every time the build itself made becomes
// storage.DefaultLayerTime, so that layer digests do not depend on when
// the build ran.
func (b *builder) layerTimes() storage.LayerTimes {
	if !b.time.IsZero() {
		return storage.LayerTimes{Clamp: b.time}
	}
	return storage.LayerTimes{MadeSince: b.start}
}

// fileTime is the modification time of files a step makes up (heredocs,
// downloads without Last-Modified): SOURCE_DATE_EPOCH when set, else
// storage.DefaultLayerTime, as for everything else the build makes.
func (b *builder) fileTime() time.Time {
	if !b.time.IsZero() {
		return b.time
	}
	return storage.DefaultLayerTime
}

// cacheKey is the key of a step: parent image, instruction after
// expansion, and whatever else the step depends on.
func cacheKey(parent string, parts ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "berth-build-v1\x00%s", parent)
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fromCache looks the step up; on a hit it becomes the current image.
func (b *builder) fromCache(st *state, key string) bool {
	if b.o.NoCache || !b.cached {
		return false
	}
	img, ok := b.e.BuildCacheGet(key)
	if !ok {
		b.cached = false
		return false
	}
	fmt.Fprintln(b.out, " ---> Using cache")
	b.setImage(st, img)
	return true
}

func (b *builder) setImage(st *state, img *storage.Image) {
	st.image = img
	if img.Config != nil {
		st.config = img.Config.Config
	}
	fmt.Fprintf(b.out, " ---> %s\n", img.ID[:12])
}

func (b *builder) store(key string, img *storage.Image) error {
	return b.e.BuildCachePut(key, img.ID)
}

// meta commits a metadata-only step whose new config is cfg.
func (b *builder) metaStep(st *state, createdBy string, cfg v1.Config, extra ...string) error {
	key := cacheKey(st.image.ID, append([]string{"meta", createdBy, st.author}, extra...)...)
	if b.fromCache(st, key) {
		return nil
	}
	img, err := b.e.BuildMeta(engine.BuildStep{Parent: st.image.ID, Config: cfg, CreatedBy: "/bin/sh -c #(nop) " + createdBy, Created: b.createdTime(), Author: st.author, Times: b.layerTimes()})
	if err != nil {
		return err
	}
	b.setImage(st, img)
	return b.store(key, img)
}

func cloneConfig(c v1.Config) v1.Config {
	out := c
	out.Env = slices.Clone(c.Env)
	out.Cmd = slices.Clone(c.Cmd)
	out.Entrypoint = slices.Clone(c.Entrypoint)
	out.Shell = slices.Clone(c.Shell)
	out.OnBuild = slices.Clone(c.OnBuild)
	out.Labels = maps.Clone(c.Labels)
	out.ExposedPorts = maps.Clone(c.ExposedPorts)
	out.Volumes = maps.Clone(c.Volumes)
	return out
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if key, _, _ := strings.Cut(kv, "="); key == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// command turns a RUN/CMD/ENTRYPOINT node into argv: the JSON form as is,
// the shell form after the image's SHELL (default /bin/sh -c).
func command(st *state, n *parser.Node) []string {
	if n.Attributes["json"] {
		return nodeWords(n)
	}
	sh := st.config.Shell
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	words := nodeWords(n)
	return append(slices.Clone(sh), strings.Join(words, " "))
}

// pairs expands the key/value words of ENV and LABEL.
func (b *builder) pairs(st *state, n *parser.Node) ([][2]string, error) {
	words := nodeWords(n)
	// The parser gives triples: key, value, separator.
	if len(words)%3 != 0 || len(words) == 0 {
		return nil, fmt.Errorf("%s requires at least one argument", strings.ToUpper(n.Value))
	}
	env := st.expandEnv()
	var out [][2]string
	for i := 0; i < len(words); i += 3 {
		k, err := b.expand(words[i], env)
		if err != nil {
			return nil, err
		}
		v, err := b.expand(words[i+1], env)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func (b *builder) dispatch(ctx context.Context, st *state, n *parser.Node, trigger bool) error {
	name := strings.ToUpper(n.Value)
	cfg := cloneConfig(st.config)
	env := st.expandEnv()
	wordsExpanded := func() ([]string, error) {
		var out []string
		for _, w := range nodeWords(n) {
			x, err := b.expand(w, env)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	}
	switch n.Value {
	case "env":
		kv, err := b.pairs(st, n)
		if err != nil {
			return err
		}
		var parts []string
		for _, p := range kv {
			cfg.Env = setEnv(cfg.Env, p[0], p[1])
			parts = append(parts, p[0]+"="+p[1])
		}
		return b.metaStep(st, "ENV "+strings.Join(parts, " "), cfg)
	case "label":
		kv, err := b.pairs(st, n)
		if err != nil {
			return err
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		var parts []string
		for _, p := range kv {
			cfg.Labels[p[0]] = p[1]
			parts = append(parts, strconv.Quote(p[0])+"="+strconv.Quote(p[1]))
		}
		return b.metaStep(st, "LABEL "+strings.Join(parts, " "), cfg)
	case "arg":
		var parts, extra []string
		for _, w := range nodeWords(n) {
			k, v, hasDefault := strings.Cut(w, "=")
			val, known := "", false
			if ba, ok := b.o.BuildArgs[k]; ok {
				val, known = ba, true
			} else if hasDefault {
				x, err := b.expand(v, env)
				if err != nil {
					return err
				}
				val, known = x, true
			} else if mv, ok := b.meta[k]; ok && mv != nil {
				val, known = *mv, true
			} else if pv, ok := b.platformArgs()[k]; ok {
				val, known = pv, true
			}
			if _, ok := st.args[k]; !ok {
				st.argSet = append(st.argSet, k)
			}
			st.args[k] = val
			_ = known
			parts = append(parts, w)
			extra = append(extra, k+"="+val)
		}
		return b.metaStep(st, "ARG "+strings.Join(parts, " "), cfg, extra...)
	case "workdir":
		words, err := wordsExpanded()
		if err != nil || len(words) != 1 {
			return fmt.Errorf("WORKDIR requires exactly one argument")
		}
		dir := words[0]
		if !path.IsAbs(dir) {
			dir = path.Join("/", cfg.WorkingDir, dir)
		}
		cfg.WorkingDir = path.Clean(dir)
		return b.metaStep(st, "WORKDIR "+cfg.WorkingDir, cfg)
	case "user":
		words, err := wordsExpanded()
		if err != nil || len(words) != 1 {
			return fmt.Errorf("USER requires exactly one argument")
		}
		cfg.User = words[0]
		return b.metaStep(st, "USER "+cfg.User, cfg)
	case "cmd":
		cfg.Cmd = command(st, n)
		return b.metaStep(st, "CMD "+jsonList(cfg.Cmd), cfg)
	case "entrypoint":
		cfg.Entrypoint = command(st, n)
		if len(nodeWords(n)) == 0 {
			cfg.Entrypoint = nil
		}
		cfg.Cmd = nil // docker: ENTRYPOINT resets an inherited CMD
		return b.metaStep(st, "ENTRYPOINT "+jsonList(cfg.Entrypoint), cfg)
	case "shell":
		if !n.Attributes["json"] {
			return fmt.Errorf("SHELL requires the arguments to be in JSON form")
		}
		cfg.Shell = nodeWords(n)
		return b.metaStep(st, "SHELL "+jsonList(cfg.Shell), cfg)
	case "stopsignal":
		words, err := wordsExpanded()
		if err != nil || len(words) != 1 {
			return fmt.Errorf("STOPSIGNAL requires exactly one argument")
		}
		cfg.StopSignal = words[0]
		return b.metaStep(st, "STOPSIGNAL "+cfg.StopSignal, cfg)
	case "expose":
		words, err := wordsExpanded()
		if err != nil {
			return err
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		var ports []string
		for _, p := range words {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
			ports = append(ports, p)
		}
		return b.metaStep(st, "EXPOSE "+strings.Join(ports, " "), cfg)
	case "volume":
		words, err := wordsExpanded()
		if err != nil {
			return err
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range words {
			cfg.Volumes[v] = struct{}{}
		}
		return b.metaStep(st, "VOLUME "+jsonList(words), cfg)
	case "maintainer":
		words, err := wordsExpanded()
		if err != nil {
			return err
		}
		st.author = strings.Join(words, " ")
		return b.metaStep(st, "MAINTAINER "+st.author, cfg)
	case "onbuild":
		if n.Next == nil || len(n.Next.Children) == 0 {
			return fmt.Errorf("ONBUILD requires an instruction")
		}
		inner := n.Next.Children[0]
		switch inner.Value {
		case "onbuild", "from", "maintainer":
			return fmt.Errorf("%s isn't allowed as an ONBUILD trigger", strings.ToUpper(inner.Value))
		}
		orig := strings.TrimSpace(n.Original)
		trig := strings.TrimSpace(orig[len("ONBUILD"):])
		cfg.OnBuild = append(cfg.OnBuild, trig)
		return b.metaStep(st, "ONBUILD "+trig, cfg)
	case "healthcheck":
		hc, err := healthcheck(n)
		if err != nil {
			return err
		}
		cfg.Healthcheck = hc
		return b.metaStep(st, "HEALTHCHECK "+strings.TrimSpace(n.Original[len("HEALTHCHECK"):]), cfg)
	case "run":
		if p := st.s.platform; !storage.PlatformMatches(b.buildPlatform, p) {
			return fmt.Errorf("cannot run a command for %s on this %s machine (berth has no emulation)", storage.FormatPlatform(p), storage.FormatPlatform(b.buildPlatform))
		}
		return b.run(ctx, st, n, cfg)
	case "copy", "add":
		return b.copy(ctx, st, n, cfg)
	default:
		return fmt.Errorf("Dockerfile line %d: unknown instruction: %s", n.StartLine, name)
	}
}

func jsonList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

func healthcheck(n *parser.Node) (*v1.HealthConfig, error) {
	if n.Next == nil {
		return nil, fmt.Errorf("HEALTHCHECK requires an argument")
	}
	kind := strings.ToUpper(n.Next.Value)
	hc := &v1.HealthConfig{}
	if kind == "NONE" {
		hc.Test = []string{"NONE"}
		return hc, nil
	}
	if kind != "CMD" || n.Next.Next == nil {
		return nil, fmt.Errorf("HEALTHCHECK: unknown type %q", n.Next.Value)
	}
	rest := n.Next.Next
	if n.Attributes["json"] {
		hc.Test = append([]string{"CMD"}, nodeWords(&parser.Node{Next: rest})...)
	} else {
		hc.Test = []string{"CMD-SHELL", rest.Value}
	}
	for _, f := range n.Flags {
		k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if k == "retries" {
			r, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("HEALTHCHECK --retries: %w", err)
			}
			hc.Retries = r
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("HEALTHCHECK --%s: %w", k, err)
		}
		switch k {
		case "interval":
			hc.Interval = d
		case "timeout":
			hc.Timeout = d
		case "start-period":
			hc.StartPeriod = d
		default:
			return nil, fmt.Errorf("HEALTHCHECK: unknown flag --%s", k)
		}
	}
	return hc, nil
}

func (b *builder) run(ctx context.Context, st *state, n *parser.Node, cfg v1.Config) error {
	argv := command(st, n)
	if args, _, ok := runHeredocArgs(n, strings.Join(nodeWords(n), " ")); ok {
		argv = append(argv[:len(argv)-1], args...)
	}
	// Build args in scope are in the step's environment (not the image's);
	// ENV of the same name wins.
	var argEnv []string
	for _, k := range st.argSet {
		argEnv = append(argEnv, k+"="+st.args[k])
	}
	runEnv := slices.Clone(argEnv)
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		runEnv = setEnv(runEnv, k, v)
	}
	createdBy := strings.Join(argv, " ")
	if len(argEnv) > 0 {
		createdBy = fmt.Sprintf("|%d %s %s", len(argEnv), strings.Join(argEnv, " "), createdBy)
	}
	key := cacheKey(st.image.ID, "run", jsonList(argv), strings.Join(argEnv, "\x00"), b.o.Network, st.author)
	if b.fromCache(st, key) {
		return nil
	}
	img, err := b.e.BuildRun(ctx, engine.BuildStep{Parent: st.image.ID, Config: cfg, CreatedBy: createdBy, Created: b.createdTime(), Author: st.author, Times: b.layerTimes()},
		engine.BuildRunOptions{Argv: argv, Env: runEnv, User: cfg.User, WorkingDir: cfg.WorkingDir, Network: b.o.Network, Stdout: b.out, Stderr: b.errOut()})
	if err != nil {
		return err
	}
	b.setImage(st, img)
	return b.store(key, img)
}

func (b *builder) errOut() io.Writer {
	if b.o.Quiet {
		return io.Discard
	}
	return b.o.Stderr
}

// fileClock is the time the kernel would give a file changed now: it
// dates files with a coarse clock that may lag time.Now by a tick, so a
// file made after a time.Now reading could look older than it.
func fileClock() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &ts); err != nil {
		return time.Now().Add(-time.Second)
	}
	return time.Unix(ts.Unix())
}
