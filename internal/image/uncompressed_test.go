package image

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestUncompressed(t *testing.T) {
	src, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Uncompressed(src)
	if err != nil {
		t.Fatal(err)
	}
	// Written to an OCI layout and read back, as the base store does.
	p, err := layout.Write(t.TempDir(), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	back, err := p.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	// (validate.Image would gunzip every layer: go-containerregistry reads
	// layouts as if all layers were compressed. BuildKit does not.)
	srcLayers, _ := src.Layers()
	layers, _ := back.Layers()
	if len(layers) != len(srcLayers) {
		t.Fatalf("%d layers, want %d", len(layers), len(srcLayers))
	}
	for i, l := range layers {
		dg, _ := l.Digest()
		id, _ := l.DiffID()
		want, _ := srcLayers[i].DiffID()
		mt, _ := l.MediaType()
		if dg != want || id != want || mt != types.OCIUncompressedLayer {
			t.Errorf("layer %d: digest %s diff id %s media %s, want both %s, plain tar", i, dg, id, mt, want)
		}
		rc, err := p.Blob(dg)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := v1.SHA256(rc)
		rc.Close()
		if err != nil || got != dg {
			t.Errorf("layer %d: stored blob hashes to %s (%v), want %s", i, got, err, dg)
		}
	}
	srcCfg, _ := src.ConfigFile()
	cfg, _ := back.ConfigFile()
	if len(cfg.RootFS.DiffIDs) != 3 || cfg.RootFS.DiffIDs[2] != srcCfg.RootFS.DiffIDs[2] {
		t.Errorf("diff ids %v, want %v", cfg.RootFS.DiffIDs, srcCfg.RootFS.DiffIDs)
	}
}
