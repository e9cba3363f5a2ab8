package engine

import (
	"context"
	"io"

	"github.com/berth-dev/berth/storage"
)

// ImportOptions is `import`.
type ImportOptions = storage.ImportOptions

// Import makes a one-layer image from a root filesystem tarball.
func (e *Engine) Import(ctx context.Context, r io.Reader, o ImportOptions) (*storage.Image, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return images.Import(ctx, r, o)
}

// Load reads docker-archive or OCI archive tarballs and returns the loaded
// image references.
func (e *Engine) Load(ctx context.Context, r io.Reader) ([]string, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return images.Load(ctx, r)
}

// ImageList lists the stored images.
func (e *Engine) ImageList(ctx context.Context) ([]*storage.Image, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return images.Images()
}

// ImageGet finds one image by name or ID.
func (e *Engine) ImageGet(ctx context.Context, ref string) (*storage.Image, error) {
	images, err := e.Images()
	if err != nil {
		return nil, err
	}
	return images.LookupImage(ref)
}
