package buildkit

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/pei-dev/pei/internal/config"
)

func TestFromLayout(t *testing.T) {
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	img := func() v1.Image {
		i, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	digestOf := func(i interface{ Digest() (v1.Hash, error) }) string {
		d, err := i.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	one, two, forAMD, forARM := img(), img(), img(), img()
	multi := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: forARM, Descriptor: v1.Descriptor{Platform: &arm64}},
		mutate.IndexAddendum{Add: forAMD, Descriptor: v1.Descriptor{Platform: &amd64}})

	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	tag := func(name string) layout.Option {
		return layout.WithAnnotations(map[string]string{RefAnnotation: name})
	}
	if err := p.AppendImage(one, tag("v1")); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(two, tag("example.com/deb:v2")); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(multi, tag("multi")); err != nil {
		t.Fatal(err)
	}
	single := t.TempDir()
	sp, err := layout.Write(single, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.AppendImage(one); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		dir     string
		ref     config.LayoutRef
		want    string // manifest digest
		wantErr string
	}{
		{"by tag", dir, config.LayoutRef{Path: "l", Tag: "v1"}, digestOf(one), ""},
		{"by the tag of a full name", dir, config.LayoutRef{Path: "l", Tag: "v2"}, digestOf(two), ""},
		{"by digest", dir, config.LayoutRef{Path: "l", Digest: digestOf(two)}, digestOf(two), ""},
		{"the host's platform of an index", dir, config.LayoutRef{Path: "l", Tag: "multi"}, digestOf(forAMD), ""},
		{"the only image", single, config.LayoutRef{Path: "s"}, digestOf(one), ""},
		{"no such tag", dir, config.LayoutRef{Path: "l", Tag: "v9"}, "", "OCI layout l has no image v9 (it has: v1, example.com/deb:v2, multi)"},
		{"several and none named", dir, config.LayoutRef{Path: "l"}, "", "OCI layout l has 3 images: name one with :TAG or @DIGEST"},
		{"not a layout", t.TempDir(), config.LayoutRef{Path: "x"}, "", "OCI layout x:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := FromLayout(tc.dir, tc.ref, amd64)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Manifest != tc.want || b.Dir != tc.dir || !strings.HasPrefix(b.StoreID, "pei-layout-") {
				t.Errorf("base = %+v, want manifest %s in %s", b, tc.want, tc.dir)
			}
		})
	}
}
