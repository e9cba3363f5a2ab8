package engine

// The image manager: tag, rmi, images with filters, prune, save, export,
// import from a URL. The rules for what rmi untags or deletes, and when it
// refuses, are docker's (daemon/images/image_delete.go).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/image"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/chrootarchive"

	"github.com/berth-dev/berth/storage"
)

// ErrConflict is wrapped by rmi's refusals; the message is docker's:
// "conflict: unable to …".
var ErrConflict = errors.New("conflict")

// ImageTag gives the image source (name or ID) the name target, taking it
// from any image that had it (which may leave that one dangling).
func (e *Engine) ImageTag(ctx context.Context, source, target string) error {
	fullName, err := storage.NormalizeName(target)
	if err != nil {
		return invalidf("%v", err)
	}
	if strings.Contains(fullName, "@") {
		return invalidf("refusing to create a tag with a digest reference")
	}
	if _, tag, _ := strings.Cut(fullName[strings.LastIndex(fullName, "/")+1:], ":"); tag == "" {
		return invalidf("invalid reference format %q", target)
	}
	images, err := e.Images()
	if err != nil {
		return err
	}
	return images.Tag(source, fullName)
}

// ImageRemoveOptions is `rmi`.
type ImageRemoveOptions struct {
	Force bool
	// NoPrune keeps the image's untagged parents (docker's --no-prune).
	NoPrune bool
}

// imageUser is a container using an image.
type imageUser struct {
	id      string
	running bool
}

// imageUsers maps image IDs to the containers (running first) using them.
func (e *Engine) imageUsers(ctx context.Context) (map[string][]imageUser, error) {
	containers, err := e.List(ctx, ListOptions{All: true})
	if err != nil {
		return nil, err
	}
	users := map[string][]imageUser{}
	for _, c := range containers {
		users[c.Record.ImageID] = append(users[c.Record.ImageID], imageUser{id: c.Record.ID, running: c.State.Active()})
	}
	for id := range users {
		sort.SliceStable(users[id], func(i, j int) bool { return users[id][i].running && !users[id][j].running })
	}
	return users, nil
}

// ImageRemove is docker's image delete for one reference:
//
//   - a name: it is untagged; the image is deleted too when that was its
//     last name. Without force, the last name of an image a container
//     uses is refused.
//   - an ID: an image with names in several repositories (or several
//     tags) needs force; its names are untagged and it is deleted. An
//     image a running container uses is never deleted; one a stopped
//     container uses needs force.
//
// berth cannot delete an image a stopped container is built on even with
// force (the container's root filesystem is a layer on it): by name, the
// name is untagged and the image stays dangling; by ID, it is refused.
// A refusal changes nothing.
func (e *Engine) ImageRemove(ctx context.Context, ref string, o ImageRemoveOptions) ([]image.DeleteResponse, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	img, err := images.LookupImage(ref)
	if err != nil {
		return nil, err
	}
	users, err := e.imageUsers(ctx)
	if err != nil {
		return nil, err
	}
	used := users[img.ID]
	names, err := images.ImageNames(img.ID)
	if err != nil {
		return nil, err
	}
	var records []image.DeleteResponse
	short := shortID(img.ID)

	if fullName := nameOf(ref, names); fullName != "" {
		if !o.Force && singleReference(names) && len(used) > 0 {
			return nil, fmt.Errorf("%w: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", ErrConflict, ref, shortID(used[0].id), short)
		}
		if err := images.RemoveNames(img.ID, []string{fullName}); err != nil {
			return nil, err
		}
		records = append(records, image.DeleteResponse{Untagged: storage.FamiliarName(fullName)})
		if len(names) > 1 || len(used) > 0 {
			// Other names remain, or (with force) a container keeps
			// the image: docker's untag-only outcome.
			return records, nil
		}
	} else {
		if len(used) > 0 && used[0].running {
			return nil, fmt.Errorf("%w: unable to delete %s (cannot be forced) - image is being used by running container %s", ErrConflict, short, shortID(used[0].id))
		}
		if !o.Force && len(names) > 0 && !singleReference(names) {
			return nil, fmt.Errorf("%w: unable to delete %s (must be forced) - image is referenced in multiple repositories", ErrConflict, short)
		}
		if len(used) > 0 {
			if !o.Force {
				return nil, fmt.Errorf("%w: unable to delete %s (must be forced) - image is being used by stopped container %s", ErrConflict, short, shortID(used[0].id))
			}
			return nil, fmt.Errorf("%w: unable to delete %s (cannot be forced) - image is being used by stopped container %s (remove the container first)", ErrConflict, short, shortID(used[0].id))
		}
		// Deleting the image takes its names with it.
		for _, n := range names {
			if !strings.Contains(n, "@") {
				records = append(records, image.DeleteResponse{Untagged: storage.FamiliarName(n)})
			}
		}
	}
	all, err := images.Images()
	if err != nil {
		return nil, err
	}
	tree := newImageTree(all)
	if tree.children[img.ID] > 0 && len(names) == 0 {
		return nil, fmt.Errorf("%w: unable to delete %s (cannot be forced) - image has dependent child images", ErrConflict, short)
	}
	deleted, err := images.DeleteImage(img.ID)
	if err != nil {
		if errors.Is(err, storage.ErrImageInUse) {
			if len(names) == 1 && nameOf(ref, names) != "" {
				return records, nil // a container was created meanwhile: untagged only
			}
			return nil, fmt.Errorf("%w: unable to delete %s (must be forced) - image is being used by a container", ErrConflict, short)
		}
		return nil, err
	}
	for _, id := range deleted.IDs {
		records = append(records, image.DeleteResponse{Deleted: id})
	}
	if !o.NoPrune {
		parents, _ := e.pruneParents(images, all, tree, img.ID, users)
		records = append(records, parents...)
	}
	return records, nil
}

// pruneParents removes, after image id went, its untagged parents that
// no other image builds on and no container uses (docker's rmi without
// --no-prune). Failures stop the walk quietly: what stays is still valid.
func (e *Engine) pruneParents(images *storage.Store, all []*storage.Image, tree imageTree, id string, users map[string][]imageUser) (records []image.DeleteResponse, reclaimed int64) {
	byID := map[string]*storage.Image{}
	for _, img := range all {
		byID[img.ID] = img
	}
	for {
		parentID, ok := tree.parent[id]
		if !ok {
			return records, reclaimed
		}
		tree.children[parentID]--
		parent := byID[parentID]
		if parent == nil || len(imageTags(parent)) > 0 || tree.children[parentID] > 0 || len(users[parentID]) > 0 {
			return records, reclaimed
		}
		deleted, err := images.DeleteImage(parentID)
		if err != nil {
			return records, reclaimed
		}
		reclaimed += deleted.Reclaimed
		for _, d := range deleted.IDs {
			records = append(records, image.DeleteResponse{Deleted: d})
		}
		id = parentID
	}
}

// nameOf returns the full name ref designates among an image's names, or
// "" when ref is an ID (or a digest reference).
func nameOf(ref string, names []string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ""
	}
	fullName, err := storage.NormalizeName(ref)
	if err != nil || strings.Contains(fullName, "@") {
		return ""
	}
	for _, n := range names {
		if n == fullName {
			return n
		}
	}
	return ""
}

// singleReference is docker's isSingleReference: the names hold at most
// one tag, and every name is in that one repository.
func singleReference(names []string) bool {
	if len(names) == 0 {
		return false
	}
	repos := map[string]bool{}
	tags := 0
	for _, n := range names {
		repo, _, isTag := splitFull(n)
		repos[repo] = true
		if isTag {
			tags++
		}
	}
	return tags <= 1 && len(repos) == 1
}

// splitFull splits a full reference into repository and tag.
func splitFull(n string) (repo, tag string, isTag bool) {
	if r, _, ok := strings.Cut(n, "@"); ok {
		return r, "", false
	}
	i := strings.LastIndex(n, ":")
	if i < 0 || strings.Contains(n[i:], "/") {
		return n, "", false
	}
	return n[:i], n[i+1:], true
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ImageListOptions is `images`.
type ImageListOptions struct {
	// All is docker's -a: intermediate images (untagged parents of other
	// images, such as a build's steps) are listed too.
	All bool
	// Filters are docker's: dangling=true|false, reference=PATTERN,
	// label=KEY[=VALUE], before=IMAGE, since=IMAGE, until=TIMESTAMP.
	// Values of one key are ORed, except label's, which are ANDed.
	Filters map[string][]string
}

// ImageSummary is one image of a listing.
type ImageSummary struct {
	*storage.Image
	// Tags are the image's names shown (full references, sorted),
	// narrowed by reference filters; empty for a dangling image.
	Tags []string
	// Containers counts the containers (running or not) using the image.
	Containers int
}

var imageFilterKeys = []string{"before", "dangling", "label", "reference", "since", "until"}

// ListImages lists images, newest first, with docker's filters.
func (e *Engine) ListImages(ctx context.Context, o ImageListOptions) ([]ImageSummary, error) {
	for key := range o.Filters {
		if !containsStr(imageFilterKeys, key) {
			return nil, invalidf("invalid filter '%s'", key)
		}
	}
	images, all, users, tree, err := e.imageInventory(ctx)
	if err != nil {
		return nil, err
	}
	match, err := e.imageFilter(images, tree, o.Filters)
	if err != nil {
		return nil, err
	}
	var out []ImageSummary
	for _, img := range all {
		if !o.All && tree.intermediate(img) {
			continue
		}
		var tags []string
		for _, n := range img.Names {
			if !strings.Contains(n, "@") {
				tags = append(tags, n)
			}
		}
		sort.Strings(tags)
		tags, ok := match(img, tags)
		if !ok {
			continue
		}
		out = append(out, ImageSummary{Image: img, Tags: tags, Containers: len(users[img.ID])})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// imageFilter compiles filters into a predicate that also narrows the
// tags shown (reference filters).
func (e *Engine) imageFilter(images *storage.Store, tree imageTree, filters map[string][]string) (func(*storage.Image, []string) ([]string, bool), error) {
	var dangling *bool
	for _, v := range filters["dangling"] {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, invalidf("invalid filter 'dangling=%s'", v)
		}
		if dangling != nil && *dangling != b {
			return nil, invalidf("invalid filter 'dangling=%s': conflicting values", v)
		}
		dangling = &b
	}
	refs := filters["reference"]
	for _, pattern := range refs {
		if _, err := path.Match(pattern, ""); err != nil {
			return nil, invalidf("invalid reference filter %q: %v", pattern, err)
		}
	}
	timeBound := func(key string) (time.Time, error) {
		var bound time.Time
		for _, v := range filters[key] {
			img, err := images.LookupImage(v)
			if err != nil {
				return bound, err
			}
			bound = img.Created
		}
		return bound, nil
	}
	before, err := timeBound("before")
	if err != nil {
		return nil, err
	}
	since, err := timeBound("since")
	if err != nil {
		return nil, err
	}
	var until time.Time
	for _, v := range filters["until"] {
		if until, err = parseTimestamp(v, time.Now()); err != nil {
			return nil, invalidf("invalid filter 'until=%s': %v", v, err)
		}
	}
	labels := filters["label"]
	return func(img *storage.Image, tags []string) ([]string, bool) {
		if dangling != nil && *dangling != (len(imageTags(img)) == 0 && tree.children[img.ID] == 0) {
			return nil, false
		}
		if !before.IsZero() && !img.Created.Before(before) {
			return nil, false
		}
		if !since.IsZero() && !img.Created.After(since) {
			return nil, false
		}
		if !until.IsZero() && !img.Created.Before(until) {
			return nil, false
		}
		if !labelsMatch(img.Config.Config.Labels, labels) {
			return nil, false
		}
		if len(refs) > 0 {
			var kept []string
			for _, t := range tags {
				if referenceMatches(refs, t) {
					kept = append(kept, t)
				}
			}
			if len(kept) == 0 {
				return nil, false
			}
			tags = kept
		}
		return tags, true
	}, nil
}

// referenceMatches is docker's reference.FamiliarMatch: a glob against
// the familiar "name:tag", then against the familiar name alone.
func referenceMatches(patterns []string, fullName string) bool {
	familiar := storage.FamiliarName(fullName)
	repo, _, _ := splitFull(familiar)
	for _, p := range patterns {
		if ok, _ := path.Match(p, familiar); ok {
			return true
		}
		if ok, _ := path.Match(p, repo); ok {
			return true
		}
	}
	return false
}

// labelsMatch: every filter "KEY" or "KEY=VALUE" holds.
func labelsMatch(labels map[string]string, filters []string) bool {
	for _, f := range filters {
		k, v, hasValue := strings.Cut(f, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

// parseTimestamp reads docker's filter timestamps: a duration before now
// ("10m"), Unix seconds, or an RFC 3339 date/time.
func parseTimestamp(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Unix(int64(secs), 0), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a duration, Unix time or RFC 3339 time")
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ImagePruneOptions is `image prune`.
type ImagePruneOptions struct {
	// All removes every image no container uses, not only dangling ones.
	All bool
	// Filters: label=KEY[=VALUE], label!=KEY[=VALUE], until=TIMESTAMP.
	Filters map[string][]string
}

// ImagePrune removes dangling images (with All: every image) that no
// container uses, as docker image prune does.
func (e *Engine) ImagePrune(ctx context.Context, o ImagePruneOptions) (*image.PruneReport, error) {
	var until time.Time
	for key, values := range o.Filters {
		switch key {
		case "label", "label!":
		case "until":
			for _, v := range values {
				t, err := parseTimestamp(v, time.Now())
				if err != nil {
					return nil, invalidf("invalid filter 'until=%s': %v", v, err)
				}
				until = t
			}
		default:
			return nil, invalidf("invalid filter '%s'", key)
		}
	}
	images, all, users, tree, err := e.imageInventory(ctx)
	if err != nil {
		return nil, err
	}
	report := &image.PruneReport{}
	for _, img := range all {
		if err := ctx.Err(); err != nil {
			return report, err
		}
		if len(users[img.ID]) > 0 || (!o.All && tree.children[img.ID] > 0) {
			continue // used, or a parent: pruned with its last child
		}
		var tags []string
		for _, n := range img.Names {
			if !strings.Contains(n, "@") {
				tags = append(tags, n)
			}
		}
		if !o.All && len(tags) > 0 {
			continue
		}
		if !until.IsZero() && !img.Created.Before(until) {
			continue
		}
		labels := img.Config.Config.Labels
		if !labelsMatch(labels, o.Filters["label"]) {
			continue
		}
		if excluded := o.Filters["label!"]; len(excluded) > 0 && anyLabel(labels, excluded) {
			continue
		}
		sort.Strings(tags)
		deleted, err := images.DeleteImage(img.ID)
		if err != nil {
			if errors.Is(err, storage.ErrImageInUse) || errors.Is(err, storage.ErrImageNotFound) {
				continue // a container was created on it, or it went, meanwhile
			}
			return report, err
		}
		for _, t := range tags {
			report.ImagesDeleted = append(report.ImagesDeleted, image.DeleteResponse{Untagged: storage.FamiliarName(t)})
		}
		for _, id := range deleted.IDs {
			report.ImagesDeleted = append(report.ImagesDeleted, image.DeleteResponse{Deleted: id})
		}
		report.SpaceReclaimed += uint64(deleted.Reclaimed)
		parents, reclaimed := e.pruneParents(images, all, tree, img.ID, users)
		report.ImagesDeleted = append(report.ImagesDeleted, parents...)
		report.SpaceReclaimed += uint64(reclaimed)
	}
	return report, nil
}

func anyLabel(labels map[string]string, filters []string) bool {
	for _, f := range filters {
		if labelsMatch(labels, []string{f}) {
			return true
		}
	}
	return false
}

// SaveOptions is `save`.
type SaveOptions struct {
	// Format: storage.FormatDockerArchive (default), FormatOCIArchive,
	// FormatOCIDir.
	Format string
	// Dir is the output directory for FormatOCIDir.
	Dir string
}

// Save writes images (see storage.Store.Save for how refs are resolved)
// to w as an archive, or to o.Dir for the oci-dir format.
func (e *Engine) Save(ctx context.Context, w io.Writer, refs []string, o SaveOptions) error {
	format := o.Format
	if format == "" {
		format = storage.FormatDockerArchive
	}
	if !containsStr(storage.SaveFormats, format) {
		return invalidf("unknown format %q: want one of %s", format, strings.Join(storage.SaveFormats, ", "))
	}
	images, err := e.Images()
	if err != nil {
		return err
	}
	if format == storage.FormatOCIDir {
		if o.Dir == "" {
			return invalidf("the %s format needs an output directory (-o DIR)", format)
		}
		return images.SaveDir(ctx, o.Dir, refs)
	}
	return images.Save(ctx, w, refs, format)
}

// LoadPath loads an archive file, or an OCI layout directory.
func (e *Engine) LoadPath(ctx context.Context, p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	if !info.IsDir() {
		f, err := os.Open(p)
		if err != nil {
			return nil, invalidf("%v", err)
		}
		defer f.Close()
		return e.Load(ctx, f)
	}
	rc, err := archive.TarWithOptions(p, &archive.TarOptions{Compression: archive.Uncompressed})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return e.Load(ctx, rc)
}

// Export writes the root filesystem of a container as a tar stream. A
// stopped container is mounted for it (and cannot start meanwhile); a
// running one's mount is used as it is. The tar is made inside a chroot
// of the root filesystem, so a symlink the container swaps in cannot lead
// outside it.
func (e *Engine) Export(ctx context.Context, ref string, w io.Writer) error {
	h, err := e.openRootfs(ref)
	if err != nil {
		return err
	}
	defer h.release()
	images, err := e.Images()
	if err != nil {
		return err
	}
	dir, err := images.MountRootfs(h.rec.ID) // the mount h holds: same directory
	if err != nil {
		return err
	}
	rc, err := chrootarchive.Tar(dir, &archive.TarOptions{Compression: archive.Uncompressed}, dir)
	if err != nil {
		return fmt.Errorf("exporting container %s: %w", ref, err)
	}
	defer rc.Close()
	copyDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(w, rc)
		copyDone <- err
	}()
	select {
	case err := <-copyDone:
		if err != nil {
			return fmt.Errorf("exporting container %s: %w", ref, err)
		}
		return nil
	case <-ctx.Done():
		rc.Close()
		<-copyDone
		return ctx.Err()
	}
}

// ImportURL imports a root filesystem tarball fetched from an http(s)
// URL, as `docker import URL` does.
func (e *Engine) ImportURL(ctx context.Context, url string, o ImportOptions) (*storage.Image, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, invalidf("%v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("downloading %s: %s", url, resp.Status)
	}
	return e.Import(ctx, resp.Body, o)
}

// imageInventory is what listing and pruning look at: the store, all its
// images, the containers using each, and the images' parent links.
func (e *Engine) imageInventory(ctx context.Context) (*storage.Store, []*storage.Image, map[string][]imageUser, imageTree, error) {
	images, err := e.Images()
	if err != nil {
		return nil, nil, nil, imageTree{}, err
	}
	all, err := images.Images()
	if err != nil {
		return nil, nil, nil, imageTree{}, err
	}
	users, err := e.imageUsers(ctx)
	if err != nil {
		return nil, nil, nil, imageTree{}, err
	}
	return images, all, users, newImageTree(all), nil
}
