package engine

import (
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berth-dev/berth/storage"
)

// imageTree relates the images of a store the way docker's parent links
// do: an image's parent is the image whose layers and history are the
// longest strict prefix of its own, that is the image a build step or a
// commit started from. Untagged images with children are "intermediate"
// (hidden by `images` without -a, never dangling); removing an image
// removes its untagged parents that nothing else needs.
type imageTree struct {
	parent   map[string]string // image ID → parent image ID
	children map[string]int    // image ID → number of child images
}

func newImageTree(all []*storage.Image) imageTree {
	t := imageTree{parent: map[string]string{}, children: map[string]int{}}
	for _, child := range all {
		best, bestLen := "", -1
		for _, p := range all {
			if p.ID == child.ID || !isImagePrefix(p.Config, child.Config) {
				continue
			}
			if n := len(p.Config.History); n > bestLen {
				best, bestLen = p.ID, n
			}
		}
		if best != "" {
			t.parent[child.ID] = best
			t.children[best]++
		}
	}
	return t
}

// isImagePrefix tells whether image a's layers and history begin image
// b's, with b's history longer.
func isImagePrefix(a, b *v1.ConfigFile) bool {
	if a == nil || b == nil || len(a.History) == 0 || len(a.History) >= len(b.History) {
		return false
	}
	if len(a.RootFS.DiffIDs) > len(b.RootFS.DiffIDs) {
		return false
	}
	for i, d := range a.RootFS.DiffIDs {
		if b.RootFS.DiffIDs[i] != d {
			return false
		}
	}
	for i, h := range a.History {
		g := b.History[i]
		if h.CreatedBy != g.CreatedBy || !h.Created.Equal(g.Created.Time) || h.EmptyLayer != g.EmptyLayer || h.Comment != g.Comment {
			return false
		}
	}
	return true
}

// imageTags are an image's tag names (its names without digest ones).
func imageTags(img *storage.Image) []string {
	var tags []string
	for _, n := range img.Names {
		if !strings.Contains(n, "@") {
			tags = append(tags, n)
		}
	}
	return tags
}

// intermediate tells whether img is an untagged image with children.
func (t imageTree) intermediate(img *storage.Image) bool {
	return len(imageTags(img)) == 0 && t.children[img.ID] > 0
}
