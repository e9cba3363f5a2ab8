package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/storage"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "return low-level information on containers or images",
		ArgsUsage: "NAME|ID [NAME|ID...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "format output using a Go template"},
			&cli.StringFlag{Name: "type", Usage: "only inspect objects of this type: container or image"},
			&cli.BoolFlag{Name: "size", Aliases: []string{"s"}, Usage: "display total file sizes"},
		},
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 1, "[OPTIONS] NAME|ID [NAME|ID...]"); err != nil {
				return err
			}
			typ := c.String("type")
			if typ != "" && typ != "container" && typ != "image" {
				return usagef("invalid --type %q: want container or image", typ)
			}
			return withEngine(c, func(e *engine.Engine) error {
				return inspectAll(c, e, typ)
			})
		},
	}
}

func nonNilList(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

func inspectOne(c *cli.Context, e *engine.Engine, ref, typ string) (any, error) {
	if typ != "image" {
		ctr, err := e.Inspect(c.Context, ref)
		if err == nil {
			return ctr, nil
		}
		if typ == "container" || !errors.Is(err, engine.ErrNoSuchContainer) {
			return nil, err
		}
	}
	img, err := e.ImageGet(c.Context, ref)
	if err != nil {
		if typ == "" && errors.Is(err, engine.ErrNoSuchImage) {
			return nil, fmt.Errorf("no such object: %s", ref)
		}
		return nil, err
	}
	return imageInspect(img), nil
}

// imageInspect renders an image in docker's image inspect format.
func imageInspect(img *storage.Image) *image.InspectResponse {
	cf := img.Config
	resp := &image.InspectResponse{
		ID:           "sha256:" + img.ID,
		RepoTags:     []string{},
		RepoDigests:  []string{},
		Created:      img.Created.UTC().Format(time.RFC3339Nano),
		Architecture: cf.Architecture,
		Os:           cf.OS,
		Variant:      cf.Variant,
		Size:         img.Size,
		Author:       cf.Author,
		RootFS:       image.RootFS{Type: "layers"},
	}
	for _, n := range img.Names {
		resp.RepoTags = append(resp.RepoTags, storage.FamiliarName(n))
	}
	for _, d := range img.Digests {
		for _, n := range img.Names {
			repo := storage.FamiliarName(n)
			if i := strings.LastIndex(repo, ":"); i > 0 && !strings.Contains(repo[i:], "/") {
				repo = repo[:i]
			}
			resp.RepoDigests = append(resp.RepoDigests, repo+"@"+d)
		}
	}
	for _, d := range cf.RootFS.DiffIDs {
		resp.RootFS.Layers = append(resp.RootFS.Layers, d.String())
	}
	if len(cf.History) > 0 {
		resp.Comment = cf.History[len(cf.History)-1].Comment
	}
	c := cf.Config
	resp.Config = &dockerspec.DockerOCIImageConfig{
		ImageConfig: ocispec.ImageConfig{
			User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
			WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal,
			Volumes: c.Volumes, ExposedPorts: c.ExposedPorts,
		},
		DockerOCIImageConfigExt: dockerspec.DockerOCIImageConfigExt{OnBuild: c.OnBuild, Shell: c.Shell},
	}
	if h := c.Healthcheck; h != nil {
		resp.Config.Healthcheck = &dockerspec.HealthcheckConfig{
			Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, Retries: h.Retries,
		}
	}
	return resp
}

// writeInspectFormat runs the template on each object; where a field is
// not found on berth's typed value, it retries on the object's JSON form,
// as docker does, so both {{.ID}} and {{.Id}} work.
func writeInspectFormat(w io.Writer, format string, objs []any) error {
	tmpl, _, err := parseTemplate(format)
	if err != nil {
		return err
	}
	for _, obj := range objs {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, obj); err != nil {
			raw, merr := json.Marshal(obj)
			if merr != nil {
				return err
			}
			var generic map[string]any
			json.Unmarshal(raw, &generic)
			buf.Reset()
			if err2 := tmpl.Execute(&buf, generic); err2 != nil {
				return fmt.Errorf("executing --format template: %w", err)
			}
		}
		fmt.Fprintln(w, buf.String())
	}
	return nil
}

// inspectAll prints every argument's container or image (typ: "",
// "container" or "image").
func inspectAll(c *cli.Context, e *engine.Engine, typ string) error {
	return printInspected(c, func(ref string) (any, error) { return inspectOne(c, e, ref, typ) })
}

// printInspected looks up every argument and prints the objects found (as
// JSON, or with --format), going on past errors and returning the last
// one, as docker's inspect commands do.
func printInspected(c *cli.Context, lookup func(ref string) (any, error)) error {
	var objs []any
	var firstErr error
	for _, ref := range c.Args().Slice() {
		obj, err := lookup(ref)
		if err != nil {
			if firstErr != nil {
				fmt.Fprintf(c.App.ErrWriter, "Error: %v\n", firstErr)
			}
			firstErr = err
			continue
		}
		objs = append(objs, obj)
	}
	if f := c.String("format"); f != "" {
		if err := writeInspectFormat(c.App.Writer, f, objs); err != nil {
			return err
		}
	} else if err := writeJSON(c.App.Writer, nonNilList(objs)); err != nil {
		return err
	}
	return firstErr
}
