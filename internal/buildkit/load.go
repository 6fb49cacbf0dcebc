package buildkit

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// readManifest reads an image manifest from the daemon's content store.
func readManifest(ctx context.Context, store content.Provider, dgst string) (ocispecs.Manifest, error) {
	var m ocispecs.Manifest
	b, err := content.ReadBlob(ctx, store, ocispecs.Descriptor{Digest: digest.Digest(dgst)})
	if err != nil {
		return m, fmt.Errorf("read manifest %s: %w", dgst, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest %s: %w", dgst, err)
	}
	return m, nil
}

// known returns the layers of m that the engine already holds with the same
// parents, so a load can leave them out: 'docker load' looks a layer up by
// its chain id before it reads the layer's file, and most of an image (the
// base, the stage below) is usually there already. Only plain-tar layers
// qualify, because only there the blob digest is the diff id.
func known(m ocispecs.Manifest, engine [][]string) map[digest.Digest]bool {
	skip := map[digest.Digest]bool{}
	for _, have := range engine {
		for i, l := range m.Layers {
			if i >= len(have) || !uncompressedMedia(l.MediaType) || have[i] != l.Digest.String() {
				break
			}
			skip[l.Digest] = true
		}
	}
	return skip
}

func uncompressedMedia(mt string) bool {
	return mt == ocispecs.MediaTypeImageLayer || mt == "application/vnd.docker.image.rootfs.diff.tar"
}

// dockerArchive writes image m, tagged name, in the format 'docker load'
// reads, taking blobs from the daemon's content store and leaving out the
// layers in skip. BuildKit's docker exporter would send every layer through
// the session, base included, to be thrown away by the engine.
func dockerArchive(ctx context.Context, w io.Writer, store content.Provider, m ocispecs.Manifest, name string, skip map[digest.Digest]bool) error {
	tw := tar.NewWriter(w)
	path := func(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }
	put := func(desc ocispecs.Descriptor) error {
		ra, err := store.ReaderAt(ctx, desc)
		if err != nil {
			return fmt.Errorf("read %s: %w", desc.Digest, err)
		}
		defer ra.Close()
		if err := tw.WriteHeader(&tar.Header{Name: path(desc.Digest), Mode: 0o444, Size: ra.Size(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = io.Copy(tw, io.NewSectionReader(ra, 0, ra.Size()))
		return err
	}
	if err := put(m.Config); err != nil {
		return err
	}
	entry := struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{Config: path(m.Config.Digest), RepoTags: []string{name}}
	for _, l := range m.Layers {
		entry.Layers = append(entry.Layers, path(l.Digest))
		if skip[l.Digest] {
			continue
		}
		if err := put(l); err != nil {
			return err
		}
	}
	b, err := json.Marshal([]any{entry})
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o444, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(b); err != nil {
		return err
	}
	return tw.Close()
}
