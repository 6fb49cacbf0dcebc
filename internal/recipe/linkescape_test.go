package recipe_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/recipe"
)

// hent is an archive entry of any type: typ tar.TypeSymlink or
// tar.TypeLink with link, tar.TypeDir, or a file with body.
type hent struct {
	name, link string
	typ        byte
	body       string
}

func htgz(t *testing.T, ents ...hent) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range ents {
		if e.typ == 0 {
			e.typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func sym(name, target string) hent  { return hent{name: name, link: target, typ: tar.TypeSymlink} }
func hard(name, target string) hent { return hent{name: name, link: target, typ: tar.TypeLink} }
func dir(name string) hent          { return hent{name: name, typ: tar.TypeDir} }
func file(name, body string) hent   { return hent{name: name, body: body} }

// TestLinksStayInside: an archive cannot make a link that resolves out of
// the target, by chaining links whose targets each look inside on paper
// (a ".." out of a link goes to the parent of the link's target, not of
// the link), or by a hard link to a symbolic link (which keeps its relative
// target but moves it elsewhere); nor write through one. Links between
// the archive's own files still work.
func TestLinksStayInside(t *testing.T) {
	for _, tc := range []struct {
		name string
		ents []hent
	}{
		{"dot-dot out of a link", []hent{sym("b", "."), sym("up", "b/..")}},
		{"dot-dot out of a link, deeper", []hent{dir("a/"), sym("a/b", "."), sym("a/up", "b/../..")}},
		{"dot-dot out of a link made later", []hent{sym("up", "b/.."), sym("b", ".")}},
		{"dot-dot out of a link, two links", []hent{sym("b", "."), sym("c", "b"), sym("up", "c/..")}},
		{"hard link to a symbolic link", []hent{dir("d/"), sym("d/l", "../x"), hard("h", "d/l")}},
		{"hard link to an escaping chain, written through", []hent{sym("b", "."), sym("up", "b/.."), hard("h", "up"), file("h/pwn", "pwned")}},
		{"hard link through a symbolic link", []hent{dir("sub/"), sym("sub/l", "../y"), sym("s", "sub"), hard("h", "s/l")}},
		{"directory entry on a symbolic link", []hent{dir("sub/"), sym("l", "sub"), dir("l/")}},
		{"loop of links", []hent{sym("a", "b"), sym("b", "a")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "canary"), []byte("untouched"), 0o644); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(root, "target")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			before := tree(t, root, dst)
			err := recipe.Extract(bytes.NewReader(htgz(t, tc.ents...)), dst, recipe.Limits{})
			if err == nil {
				t.Error("extracted")
			}
			after := tree(t, root, dst)
			if len(after) != len(before) {
				t.Errorf("outside the target: %v, was %v", after, before)
			}
			for p, v := range before {
				if after[p] != v {
					t.Errorf("outside the target: %s is %q, was %q", p, after[p], v)
				}
			}
			// Whatever was extracted before the refusal resolves inside.
			real, _ := filepath.EvalSymlinks(dst)
			for p := range tree(t, dst, "") {
				if r, err := filepath.EvalSymlinks(filepath.Join(dst, p)); err == nil && r != real && !strings.HasPrefix(r, real+string(filepath.Separator)) {
					t.Errorf("%s resolves to %s, outside the target", p, r)
				}
			}
		})
	}

	t.Run("links inside work", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "target")
		os.Mkdir(dst, 0o755)
		ents := []hent{
			dir("usr/lib/"), file("usr/lib/libx.so.1", "elf"),
			sym("usr/lib/libx.so", "libx.so.1"),
			sym("lib", "usr/lib"),
			sym("libx", "lib/libx.so"),             // forward through a link
			sym("usr/lib/up", "../../lib/libx.so"), // dot-dot out of real directories
			hard("copy", "usr/lib/libx.so.1"),
		}
		if err := recipe.Extract(bytes.NewReader(htgz(t, ents...)), dst, recipe.Limits{}); err != nil {
			t.Fatalf("extract: %v", err)
		}
		for _, p := range []string{"libx", "usr/lib/up", "copy", "lib/libx.so.1"} {
			if b, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(b) != "elf" {
				t.Errorf("%s: %q %v", p, b, err)
			}
		}
	})
}
