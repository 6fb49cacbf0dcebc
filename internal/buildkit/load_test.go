package buildkit

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func layer(data string, mt string) ocispecs.Descriptor {
	return ocispecs.Descriptor{MediaType: mt, Digest: digest.FromString(data), Size: int64(len(data))}
}

func TestKnown(t *testing.T) {
	plain := ocispecs.MediaTypeImageLayer
	a, b, c, d := layer("a", plain), layer("b", plain), layer("c", plain), layer("d", plain)
	gz := layer("b", ocispecs.MediaTypeImageLayerGzip)
	m := ocispecs.Manifest{Layers: []ocispecs.Descriptor{a, b, c}}
	ids := func(ds ...ocispecs.Descriptor) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Digest.String())
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		m      ocispecs.Manifest
		engine [][]string
		want   []ocispecs.Descriptor
	}{
		{"nothing in the engine", m, nil, nil},
		{"the base", m, [][]string{ids(a)}, []ocispecs.Descriptor{a}},
		{"a longer image with the same bottom", m, [][]string{ids(a, b, d, d)}, []ocispecs.Descriptor{a, b}},
		// A layer with the same content over other parents is a different
		// chain: the engine cannot use it.
		{"same layer, other parent", m, [][]string{ids(d, b, c)}, nil},
		{"best of several", m, [][]string{ids(a), ids(a, b, c)}, []ocispecs.Descriptor{a, b, c}},
		// A compressed blob's digest is not its diff id: never left out.
		{"compressed layer", ocispecs.Manifest{Layers: []ocispecs.Descriptor{a, gz}}, [][]string{ids(a, gz)}, []ocispecs.Descriptor{a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := known(tc.m, tc.engine)
			want := map[digest.Digest]bool{}
			for _, d := range tc.want {
				want[d.Digest] = true
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("known = %v, want %v", got, want)
			}
		})
	}
}

func TestDockerArchive(t *testing.T) {
	ctx := t.Context()
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(data, mt string) ocispecs.Descriptor {
		d := layer(data, mt)
		if err := content.WriteBlob(ctx, store, d.Digest.String(), bytes.NewReader([]byte(data)), d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cfg := put(`{"rootfs":{}}`, ocispecs.MediaTypeImageConfig)
	base := layer("base layer, not in the store", ocispecs.MediaTypeImageLayer)
	top := put("top layer", ocispecs.MediaTypeImageLayer)
	m := ocispecs.Manifest{Config: cfg, Layers: []ocispecs.Descriptor{base, top}}

	var buf bytes.Buffer
	if err := dockerArchive(ctx, &buf, store, m, "pei-test:stage-1", map[digest.Digest]bool{base.Digest: true}); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	blob := func(d ocispecs.Descriptor) string { return "blobs/sha256/" + d.Digest.Encoded() }
	if files[blob(cfg)] != `{"rootfs":{}}` || files[blob(top)] != "top layer" {
		t.Errorf("config or top layer missing or wrong: %v", files)
	}
	if _, ok := files[blob(base)]; ok {
		t.Errorf("the base layer the engine has was sent")
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal([]byte(files["manifest.json"]), &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || manifest[0].Config != blob(cfg) || !reflect.DeepEqual(manifest[0].RepoTags, []string{"pei-test:stage-1"}) ||
		!reflect.DeepEqual(manifest[0].Layers, []string{blob(base), blob(top)}) {
		t.Errorf("manifest.json = %+v", manifest)
	}

	// Without skip, a missing blob is an error, not a short archive.
	if err := dockerArchive(ctx, io.Discard, store, m, "pei-test:stage-1", nil); err == nil {
		t.Errorf("archive with a missing layer: no error")
	}
}
