package image

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// tarDir writes dir's regular files, plus extra entries, as a tar file.
func tarDir(t *testing.T, dir string, extra map[string]string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "layout.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if dir != "" {
		err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			add(filepath.ToSlash(rel), b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range extra {
		add(name, []byte(data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// imageLayout writes an OCI layout holding one random image (and, with
// index, that image inside an image index) and returns its directory.
func imageLayout(t *testing.T, index bool) string {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if index {
		err = p.AppendIndex(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img}))
	} else {
		err = p.AppendImage(img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func empty_(t *testing.T, dir string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 0 {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("left behind in %s: %v", dir, names)
	}
}

// Every function that hands back a cleanup func hands back one that can be
// called on an error too, and leaves nothing behind when it fails; on
// success the cleanup removes what it copied.
func TestCleanupFuncs(t *testing.T) {
	ctx := context.Background()
	badIndex := tarDir(t, "", map[string]string{"index.json": "{not json", "oci-layout": `{"imageLayoutVersion":"1.0.0"}`})
	escaping := tarDir(t, imageLayout(t, false), map[string]string{"../escape": "x"})
	imageOnly := tarDir(t, imageLayout(t, false), nil)
	for _, tc := range []struct {
		name string
		open func(tmp string) (any, func(), error)
		want string // "" = success
	}{
		{"Open: layout tar with a broken index.json", func(tmp string) (any, func(), error) {
			return Open(ctx, badIndex, OpenOptions{TmpDir: tmp})
		}, "index.json"},
		{"Open: layout tar with an entry leaving it", func(tmp string) (any, func(), error) {
			return Open(ctx, escaping, OpenOptions{TmpDir: tmp})
		}, "leaves the archive"},
		{"Open: not an image archive", func(tmp string) (any, func(), error) {
			return Open(ctx, tarDir(t, "", map[string]string{"hello": "world"}), OpenOptions{TmpDir: tmp})
		}, "neither index.json"},
		{"OpenIndex: a layout with no index", func(tmp string) (any, func(), error) {
			return OpenIndex(imageOnly, tmp)
		}, "holds no image index"},
		{"OpenIndex: broken", func(tmp string) (any, func(), error) {
			return OpenIndex(badIndex, tmp)
		}, "index.json"},
		{"FromEngine: no docker", func(tmp string) (any, func(), error) {
			t.Setenv("PATH", t.TempDir())
			return FromEngine(ctx, "debian:bookworm", tmp)
		}, "docker save debian:bookworm"},
		{"Open: layout tar", func(tmp string) (any, func(), error) {
			return Open(ctx, imageOnly, OpenOptions{TmpDir: tmp})
		}, ""},
		{"OpenIndex: layout tar with an index", func(tmp string) (any, func(), error) {
			return OpenIndex(tarDir(t, imageLayout(t, true), nil), tmp)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			got, done, err := tc.open(tmp)
			if done == nil {
				t.Fatal("nil cleanup func")
			}
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %v; want one saying %q", err, tc.want)
				}
				done()
				empty_(t, tmp)
				return
			}
			if err != nil || got == nil {
				t.Fatalf("%v, %v", got, err)
			}
			if es, _ := os.ReadDir(tmp); len(es) == 0 {
				t.Errorf("nothing unpacked into %s: the cleanup check below would be vacuous", tmp)
			}
			done()
			empty_(t, tmp)
		})
	}
}
