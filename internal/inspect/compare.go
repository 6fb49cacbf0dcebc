package inspect

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Change is a path that differs between two images' file systems.
type Change struct {
	Path  string `json:"path"`
	Kind  string `json:"kind"` // added, removed or changed
	SizeA int64  `json:"size_a"`
	SizeB int64  `json:"size_b"`
}

// Comparison says what changed from image A to image B.
type Comparison struct {
	A            string   `json:"a"`
	B            string   `json:"b"`
	LayersA      int      `json:"layers_a"`
	LayersB      int      `json:"layers_b"`
	SharedLayers int      `json:"shared_layers"` // the same bottom layers
	BytesA       int64    `json:"bytes_a"`       // in the final file system
	BytesB       int64    `json:"bytes_b"`
	Added        int      `json:"added"`
	Removed      int      `json:"removed"`
	Changed      int      `json:"changed"`
	Changes      []Change `json:"changes"` // by path
}

// file is a path in a final file system.
type file struct {
	size  int64
	layer int
	ident string // type, mode, owner, link target and content hash
}

// Compare reads both images' layers once and compares their final file
// systems: content (by SHA-256), type, mode, owner and link targets.
// Directories count only when added or removed.
func Compare(nameA string, a v1.Image, nameB string, b v1.Image) (Comparison, error) {
	c := Comparison{A: nameA, B: nameB}
	la, err := a.Layers()
	if err != nil {
		return c, fmt.Errorf("%s: %w", nameA, err)
	}
	lb, err := b.Layers()
	if err != nil {
		return c, fmt.Errorf("%s: %w", nameB, err)
	}
	ca, err := a.ConfigFile()
	if err != nil {
		return c, fmt.Errorf("%s: %w", nameA, err)
	}
	cb, err := b.ConfigFile()
	if err != nil {
		return c, fmt.Errorf("%s: %w", nameB, err)
	}
	c.LayersA, c.LayersB = len(la), len(lb)
	for i := 0; i < len(ca.RootFS.DiffIDs) && i < len(cb.RootFS.DiffIDs) && ca.RootFS.DiffIDs[i] == cb.RootFS.DiffIDs[i]; i++ {
		c.SharedLayers++
	}
	fa, err := finalFS(la)
	if err != nil {
		return c, fmt.Errorf("%s: %w", nameA, err)
	}
	fb, err := finalFS(lb)
	if err != nil {
		return c, fmt.Errorf("%s: %w", nameB, err)
	}
	for p, x := range fa {
		c.BytesA += x.size
		y, ok := fb[p]
		switch {
		case !ok:
			c.Removed++
			c.Changes = append(c.Changes, Change{Path: "/" + p, Kind: "removed", SizeA: x.size})
		case x.ident != y.ident && !(isDir(x) && isDir(y)):
			c.Changed++
			c.Changes = append(c.Changes, Change{Path: "/" + p, Kind: "changed", SizeA: x.size, SizeB: y.size})
		}
	}
	for p, y := range fb {
		c.BytesB += y.size
		if _, ok := fa[p]; !ok {
			c.Added++
			c.Changes = append(c.Changes, Change{Path: "/" + p, Kind: "added", SizeB: y.size})
		}
	}
	sort.Slice(c.Changes, func(i, j int) bool { return c.Changes[i].Path < c.Changes[j].Path })
	return c, nil
}

func isDir(f file) bool { return strings.HasPrefix(f.ident, "d") }

// finalFS applies layers in order and returns what is left.
func finalFS(layers []v1.Layer) (map[string]file, error) {
	fs := map[string]file{}
	h := sha256.New()
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		err = eachEntry(rc, func(p string, hd *tar.Header, r io.Reader) error {
			ident := fmt.Sprintf("%c %o %d:%d %s", hd.Typeflag, hd.Mode&0o7777, hd.Uid, hd.Gid, hd.Linkname)
			var size int64
			if hd.Typeflag == tar.TypeReg {
				size = hd.Size
				h.Reset()
				if _, err := io.Copy(h, r); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				ident += fmt.Sprintf(" %x", h.Sum(nil))
			}
			if hd.Typeflag == tar.TypeDir {
				ident = "d" + ident // directories: only presence counts
			}
			fs[p] = file{size: size, layer: i, ident: ident}
			return nil
		}, func(gone string, opaque bool) {
			// Only what lower layers wrote goes.
			if f, ok := fs[gone]; ok && !opaque && f.layer < i {
				delete(fs, gone)
			}
			for q, f := range fs {
				if strings.HasPrefix(q, gone+"/") && f.layer < i {
					delete(fs, q)
				}
			}
		})
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		rc.Close()
	}
	return fs, nil
}
