package storage

import (
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestChainIDs(t *testing.T) {
	// docker's own example values (image-spec's config.md).
	diffIDs := []string{
		"sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1",
		"sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
	}
	got := ChainIDs(diffIDs)
	if got[0] != diffIDs[0] {
		t.Errorf("first chain ID %s, want the diff ID", got[0])
	}
	if want := "sha256:" + hashOf([]byte(diffIDs[0]+" "+diffIDs[1])).Hex; got[1] != want {
		t.Errorf("second chain ID %s, want %s", got[1], want)
	}
}

func TestDeleteImageReportsLayers(t *testing.T) {
	store := openTestStore(t)
	app, base := loadTwoImages(t, store)
	appID, baseID := configID(t, app), configID(t, base)
	diffIDs := func(img v1.Image) []string {
		config, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range config.RootFS.DiffIDs {
			out = append(out, d.String())
		}
		return out
	}

	// A container on the base image keeps it.
	if err := store.CreateRootfs("ctr", baseID, RootfsOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.DeleteImage(baseID); !errors.Is(err, ErrImageInUse) {
		t.Errorf("DeleteImage of a used image: %v, want ErrImageInUse", err)
	}
	if _, err := store.LookupImage("base"); err != nil {
		t.Errorf("base went after a refused delete: %v", err)
	}
	if err := store.RemoveRootfs("ctr"); err != nil {
		t.Fatal(err)
	}

	// The app image takes only its own top layer with it.
	deleted, err := store.DeleteImage(appID)
	if err != nil {
		t.Fatal(err)
	}
	appChain := ChainIDs(diffIDs(app))
	if len(deleted.IDs) != 2 || deleted.IDs[0] != "sha256:"+appID || deleted.IDs[1] != appChain[1] {
		t.Errorf("deleted %v, want the image and chain ID %s", deleted.IDs, appChain[1])
	}
	if deleted.Reclaimed <= 0 {
		t.Errorf("reclaimed %d bytes", deleted.Reclaimed)
	}
	if _, err := store.LookupImage("app:2"); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("app:2 after delete: %v", err)
	}
	deleted, err = store.DeleteImage(baseID)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted.IDs) != 2 || deleted.IDs[1] != diffIDs(base)[0] {
		t.Errorf("deleted %v", deleted.IDs)
	}
	assertStoreEmpty(t, store)
	if _, err := store.DeleteImage(baseID); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestRemoveNames(t *testing.T) {
	store := openTestStore(t)
	app, _ := loadTwoImages(t, store)
	id := configID(t, app)
	if err := store.RemoveNames(id, []string{"docker.io/library/app:2"}); err != nil {
		t.Fatal(err)
	}
	names, err := store.ImageNames(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "example.com/app:1" {
		t.Errorf("names %v", names)
	}
}
