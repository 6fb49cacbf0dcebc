package image

import (
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// uncompressedLayer is a layer stored as a plain tar: its digest is its
// diff id. Images read from docker save are kept this way: compressing a
// few hundred megabytes only to name the layers costs seconds (a cold
// build's base copy, every pei inspect of an engine image), and BuildKit
// unpacks plain tars fastest; pei's base store is a local cache, not
// something sent over a network.
type uncompressedLayer struct {
	diffID v1.Hash
	size   int64
	open   func() (io.ReadCloser, error)
}

func (l uncompressedLayer) Digest() (v1.Hash, error)             { return l.diffID, nil }
func (l uncompressedLayer) DiffID() (v1.Hash, error)             { return l.diffID, nil }
func (l uncompressedLayer) Compressed() (io.ReadCloser, error)   { return l.open() }
func (l uncompressedLayer) Uncompressed() (io.ReadCloser, error) { return l.open() }
func (l uncompressedLayer) Size() (int64, error)                 { return l.size, nil }
func (l uncompressedLayer) MediaType() (types.MediaType, error) {
	return types.OCIUncompressedLayer, nil
}

// Uncompressed rebuilds img as an OCI image whose layers are plain tars,
// with the same config (and so the same image id and diff ids).
func Uncompressed(img v1.Image) (v1.Image, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	out := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for i, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if out, err = mutate.Append(out, mutate.Addendum{Layer: uncompressedLayer{diffID, n, l.Uncompressed}, MediaType: types.OCIUncompressedLayer}); err != nil {
			return nil, err
		}
	}
	// The original config: its history, env, entrypoint and diff ids.
	return mutate.ConfigFile(out, cf)
}
