package storage

import (
	"encoding/json"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HistoryEntry is one row of `history`.
type HistoryEntry struct {
	// ID is the image this entry made, when a local image is known to
	// be it (always the image itself for the top entry); "" otherwise
	// (docker's "<missing>").
	ID         string
	Tags       []string // familiar names of that image
	Created    time.Time
	CreatedBy  string
	Author     string
	Comment    string
	EmptyLayer bool
	Size       int64 // size of the entry's layer; 0 for an empty layer
}

// History lists the history entries of an image, newest first. Entries
// that are not empty layers are matched with the image's layers in order,
// bottom up. Below the top entry, an entry gets a local image's ID when
// that image's config has exactly the history and layers up to it (as
// docker names the parent images it knows), walking down until one is not
// found.
func (s *Store) History(nameOrID string) ([]HistoryEntry, error) {
	img, err := s.LookupImage(nameOrID)
	if err != nil {
		return nil, err
	}
	sizes, err := s.layerSizes()
	if err != nil {
		return nil, err
	}
	var chain []string // layer IDs, bottom up
	for id := img.TopLayer; id != ""; id = sizes[id].parent {
		chain = append([]string{id}, chain...)
	}
	history := img.Config.History
	entries := make([]HistoryEntry, len(history))
	layer := 0
	diffCount := make([]int, len(history)) // layers up to and including entry i
	for i, h := range history {
		e := HistoryEntry{
			Created:    h.Created.Time,
			CreatedBy:  h.CreatedBy,
			Author:     h.Author,
			Comment:    h.Comment,
			EmptyLayer: h.EmptyLayer,
		}
		if !h.EmptyLayer {
			if layer < len(chain) {
				if size := sizes[chain[layer]].size; size > 0 {
					e.Size = size
				}
			}
			layer++
		}
		diffCount[i] = layer
		entries[len(history)-1-i] = e
	}
	if len(entries) == 0 {
		return entries, nil
	}

	entries[0].ID = img.ID
	entries[0].Tags = familiarNames(img.Names)
	if len(entries) > 1 {
		others, err := s.Images()
		if err != nil {
			return nil, err
		}
		for row := 1; row < len(entries); row++ {
			n := len(history) - row // the parent has history[:n]
			parent := findImageWith(others, history[:n], img.Config.RootFS.DiffIDs, diffCount[n-1])
			if parent == nil {
				break
			}
			entries[row].ID = parent.ID
			entries[row].Tags = familiarNames(parent.Names)
		}
	}
	return entries, nil
}

// findImageWith returns an image whose config has exactly the given
// history and the first layers diff IDs of diffIDs.
func findImageWith(images []*Image, history []v1.History, diffIDs []v1.Hash, layers int) *Image {
	if layers > len(diffIDs) {
		return nil
	}
	want, err := json.Marshal(history)
	if err != nil {
		return nil
	}
	for _, candidate := range images {
		cf := candidate.Config
		if len(cf.History) != len(history) || len(cf.RootFS.DiffIDs) != layers {
			continue
		}
		same := true
		for i := range layers {
			if cf.RootFS.DiffIDs[i] != diffIDs[i] {
				same = false
				break
			}
		}
		if !same {
			continue
		}
		got, err := json.Marshal(cf.History)
		if err == nil && string(got) == string(want) {
			return candidate
		}
	}
	return nil
}

func familiarNames(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, FamiliarName(n))
	}
	return out
}
