// Package image finds images in OCI image layouts, docker-archive and OCI
// tarballs, the Docker engine and registries, as go-containerregistry
// images; pei build and pei inspect read images through it.
package image

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// RefAnnotation names an image in a layout's index.
const RefAnnotation = "org.opencontainers.image.ref.name"

// FromLayout finds an image in the OCI layout at dir: by digest, else by
// tag (the index's ref name, TAG or NAME:TAG), else the layout's only
// image. From an index of several platforms it takes platform's. what
// names the layout in errors.
func FromLayout(dir, what, tag, dgst string, platform v1.Platform) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", what, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", what, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: index.json: %w", what, err)
	}
	var found []v1.Descriptor
	var names []string
	for _, d := range m.Manifests {
		name := d.Annotations[RefAnnotation]
		names = append(names, name)
		switch {
		case dgst != "":
			if d.Digest.String() == dgst {
				found = append(found, d)
			}
		case tag != "":
			if name == tag || strings.HasSuffix(name, ":"+tag) {
				found = append(found, d)
			}
		default:
			found = append(found, d)
		}
	}
	want := tag
	if dgst != "" {
		want = dgst
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("OCI layout %s has no image %s (it has: %s)", what, want, strings.Join(names, ", "))
	case len(found) > 1 && dgst == "":
		tagged := ""
		if tag != "" {
			tagged = " tagged " + tag
		}
		return nil, fmt.Errorf("OCI layout %s has %d images%s: name one with :TAG or @DIGEST (it has: %s)", what, len(found), tagged, strings.Join(names, ", "))
	}
	d := found[0]
	if !d.MediaType.IsIndex() {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("OCI layout %s: %w", what, err)
		}
		return img, nil
	}
	child, err := idx.ImageIndex(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", what, err)
	}
	return ForPlatform(child, platform, what)
}

// ForPlatform takes platform's image from an index.
func ForPlatform(idx v1.ImageIndex, platform v1.Platform, what string) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(platform) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			return img, nil
		}
	}
	return nil, fmt.Errorf("%s has no image for %s", what, platform.String())
}
