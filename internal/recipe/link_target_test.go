package recipe

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSymlinkTargets: a link may point anywhere inside the project, the
// project root included, but not at its parent or above, however deep the
// link sits.
func TestSymlinkTargets(t *testing.T) {
	for _, tc := range []struct {
		name, link, target string
		ok                 bool
	}{
		{"sibling", "a/l", "b", true},
		{"project root from a subdirectory", "a/l", "..", true},
		{"project root from the top", "l", ".", true},
		{"parent from the top", "l", "..", false},
		{"parent from two levels down", "a/b/l", "../../..", false},
		{"into the parent's subdirectory", "a/l", "../../x", false},
		{"parent with a trailing slash", "l", "../", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			err := Extract(bytes.NewReader(archive(t, entry{name: tc.link, link: tc.target, typ: tar.TypeSymlink})), dst, Limits{})
			if tc.ok {
				if err != nil {
					t.Fatalf("link %s -> %s refused: %v", tc.link, tc.target, err)
				}
				if got, err := os.Readlink(filepath.Join(dst, filepath.FromSlash(tc.link))); err != nil || got != tc.target {
					t.Fatalf("link unpacked as %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "leads out of the project") {
				t.Fatalf("link %s -> %s: error %v, want it refused as leading out of the project", tc.link, tc.target, err)
			}
			if _, err := os.Lstat(filepath.Join(dst, filepath.FromSlash(tc.link))); err == nil {
				t.Fatal("the refused link was created")
			}
		})
	}
}

// A symbolic link with no target, and an archive whose compressed stream
// goes on with garbage after the tar's end, are refused, saying which.
func TestUnusableLinkAndCorruptTrailer(t *testing.T) {
	err := Extract(bytes.NewReader(archive(t, entry{name: "l", typ: tar.TypeSymlink})), t.TempDir(), Limits{})
	if err == nil || !strings.Contains(err.Error(), "symbolic link with an empty target") {
		t.Errorf("empty link target: %v", err)
	}
	good := archive(t, entry{name: "a", body: "a"})
	if err := Extract(bytes.NewReader(good), t.TempDir(), Limits{}); err != nil {
		t.Fatalf("control: the archive alone: %v", err)
	}
	err = Extract(bytes.NewReader(append(good, "not a gzip member"...)), t.TempDir(), Limits{})
	if err == nil || !strings.Contains(err.Error(), "truncated or corrupt archive") {
		t.Errorf("garbage after the archive: %v", err)
	}
}
