package recipe_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/recipe"
)

// ent is one archive entry: a file with body, a directory (name ends in
// /) or a symlink (link set).
type ent struct{ name, link, body string }

func tgz(t *testing.T, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range ents {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		switch {
		case e.link != "":
			hdr = &tar.Header{Name: e.name, Linkname: e.link, Mode: 0o777, Typeflag: tar.TypeSymlink}
		case strings.HasSuffix(e.name, "/"):
			hdr = &tar.Header{Name: e.name, Mode: 0o755, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tree lists every path under root (links not followed) with its kind and
// content, leaving out skip's subtree.
func tree(t *testing.T, root, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link " + l
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "file " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNoWriteUnderASymlink: an entry below a symbolic link of the same
// archive, one level down or several, is refused, and nothing is written
// through the link: not inside the target (a link to a directory of the
// archive) and not outside it (a link that resolves out of the target
// through another link, though each looks inside on its own).
func TestNoWriteUnderASymlink(t *testing.T) {
	links := map[string][]ent{
		// sub is a directory of the archive; l points at it.
		"link inside the archive": {{name: "sub/"}, {name: "l", link: "sub"}},
		// b is the target itself, so b/.. is the target's parent: up
		// resolves outside although "b/.." looks like "." on paper.
		"link resolving out of the target": {{name: "b", link: "."}, {name: "up", link: "b/.."}},
	}
	for name, base := range links {
		link := base[len(base)-1].name
		for _, under := range []string{"x", "d/x", "d/e/x", "d/e/f/x"} {
			t.Run(name+"/"+link+"/"+under, func(t *testing.T) {
				root := t.TempDir()
				canary := filepath.Join(root, "canary")
				if err := os.WriteFile(canary, []byte("untouched"), 0o644); err != nil {
					t.Fatal(err)
				}
				dst := filepath.Join(root, "target")
				if err := os.Mkdir(dst, 0o755); err != nil {
					t.Fatal(err)
				}
				before := tree(t, root, dst)
				ents := append(append([]ent{}, base...), ent{name: link + "/" + under, body: "written through the link"})
				err := recipe.Extract(bytes.NewReader(tgz(t, ents...)), dst, recipe.Limits{})
				if err == nil {
					t.Errorf("%s/%s was extracted", link, under)
				}
				after := tree(t, root, dst)
				for p, v := range after {
					if before[p] != v {
						t.Errorf("outside the target: %s is now %q (was %q)", p, v, before[p])
					}
				}
				for p := range before {
					if _, ok := after[p]; !ok {
						t.Errorf("outside the target: %s is gone", p)
					}
				}
				// Nor inside: the only things in the target are what the
				// archive put there before the refused entry.
				for p, v := range tree(t, dst, "") {
					if strings.Contains(v, "written through the link") {
						t.Errorf("the refused entry's content is in the target at %s", p)
					}
				}
			})
		}
	}

	// Control: the archive with the link inside it, without the entry
	// below the link, extracts (the refusal is about that entry).
	t.Run("link inside the archive/without an entry below it", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "target")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		base := links["link inside the archive"]
		if err := recipe.Extract(bytes.NewReader(tgz(t, append(base, ent{name: "sub/d/x", body: "fine"})...)), dst, recipe.Limits{}); err != nil {
			t.Fatalf("extract: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(dst, "l/d/x")); err != nil || string(b) != "fine" {
			t.Fatalf("sub/d/x through the link: %q %v", b, err)
		}
	})
}
