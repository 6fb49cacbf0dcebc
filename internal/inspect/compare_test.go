package inspect

import (
	"archive/tar"
	"bytes"
	"io"
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// headerLayer is a layer of raw tar headers (for modes and links).
func headerLayer(t *testing.T, hs ...*tar.Header) v1.Layer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hs {
		data := make([]byte, h.Size)
		if h.Typeflag == tar.TypeReg {
			copy(data, h.Name)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	raw := b.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCompare(t *testing.T) {
	reg := func(name string, size int64, mode int64) *tar.Header {
		return &tar.Header{Name: name, Size: size, Mode: mode, Typeflag: tar.TypeReg}
	}
	base := headerLayer(t, &tar.Header{Name: "etc/", Mode: 0o755, Typeflag: tar.TypeDir},
		reg("etc/keep", 10, 0o644), reg("etc/edit", 10, 0o644), reg("etc/chmod", 10, 0o644), reg("etc/gone", 10, 0o644),
		&tar.Header{Name: "etc/link", Linkname: "keep", Typeflag: tar.TypeSymlink})
	a := testImage(t, []v1.Layer{base}, []string{"base"})
	b := testImage(t, []v1.Layer{base,
		headerLayer(t, &tar.Header{Name: "etc/", Mode: 0o700, Typeflag: tar.TypeDir}, // a directory's mode: not a change
			reg("etc/edit", 20, 0o644), reg("etc/chmod", 10, 0o600), reg("etc/.wh.gone", 0, 0o644), reg("etc/new", 5, 0o644),
			&tar.Header{Name: "etc/link", Linkname: "edit", Typeflag: tar.TypeSymlink}),
	}, []string{"base", "edit"})

	c, err := Compare("a", a, "b", b)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{"/etc/chmod", "changed", 10, 10},
		{"/etc/edit", "changed", 10, 20},
		{"/etc/gone", "removed", 10, 0},
		{"/etc/link", "changed", 0, 0},
		{"/etc/new", "added", 0, 5},
	}
	if !reflect.DeepEqual(c.Changes, want) {
		t.Errorf("changes %+v\nwant %+v", c.Changes, want)
	}
	if c.SharedLayers != 1 || c.LayersA != 1 || c.LayersB != 2 || c.Added != 1 || c.Removed != 1 || c.Changed != 3 || c.BytesA != 40 || c.BytesB != 45 {
		t.Errorf("summary %+v", c)
	}

	same, err := Compare("a", a, "a", a)
	if err != nil || len(same.Changes) != 0 || same.SharedLayers != 1 {
		t.Errorf("an image against itself: %+v %v", same, err)
	}
}
