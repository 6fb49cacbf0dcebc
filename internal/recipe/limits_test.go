package recipe

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestLimitsAreExact: a recipe exactly at MaxFiles entries or MaxBytes
// bytes unpacks; one entry or one byte more is refused with ErrTooLarge.
// Directories and links count as entries, so an archive of nothing but
// directories is bounded too.
func TestLimitsAreExact(t *testing.T) {
	dirs := func(n int) []entry {
		var es []entry
		for i := range n {
			es = append(es, entry{name: fmt.Sprintf("d%d/", i), typ: tar.TypeDir})
		}
		return es
	}
	links := func(n int) []entry {
		var es []entry
		for i := range n {
			es = append(es, entry{name: fmt.Sprintf("l%d", i), link: "x", typ: tar.TypeSymlink})
		}
		return es
	}
	for _, tc := range []struct {
		name    string
		entries []entry
		lim     Limits
		want    string // "" unpacks
	}{
		{"files at the limit", []entry{{name: "a"}, {name: "b"}}, Limits{MaxFiles: 2}, ""},
		{"one file over", []entry{{name: "a"}, {name: "b"}, {name: "c"}}, Limits{MaxFiles: 2}, "more than 2 files"},
		{"directories at the limit", dirs(3), Limits{MaxFiles: 3}, ""},
		{"one directory over", dirs(4), Limits{MaxFiles: 3}, "more than 3 files"},
		{"one link over", links(4), Limits{MaxFiles: 3}, "more than 3 files"},
		{"bytes at the limit", []entry{{name: "a", body: strings.Repeat("x", 30)}, {name: "b", body: strings.Repeat("y", 20)}}, Limits{MaxBytes: 50}, ""},
		{"one byte over", []entry{{name: "a", body: strings.Repeat("x", 30)}, {name: "b", body: strings.Repeat("y", 21)}}, Limits{MaxBytes: 50}, "more than 50 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Extract(bytes.NewReader(archive(t, tc.entries...)), t.TempDir(), tc.lim)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("a recipe within the limits was refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v, want ErrTooLarge saying %q", err, tc.want)
			}
		})
	}
}

// TestPathAndChainBoundsAreExact: a name or a link target of exactly
// maxPath bytes is taken and one byte more is refused; a chain of exactly
// maxLinkHops links resolves and one link more is refused as a chain too
// long (the check that bounds the cost of resolving links).
func TestPathAndChainBoundsAreExact(t *testing.T) {
	// A name of n bytes in directories of at most 200 bytes each (a
	// file system allows 255 per component).
	longName := func(n int) string {
		var parts []string
		for n > 0 {
			k := min(n, 200)
			if n-k == 1 {
				k-- // no component of zero bytes after the last '/'
			}
			parts = append(parts, strings.Repeat("n", k))
			n -= k + 1
		}
		return strings.Join(parts, "/")
	}
	chain := func(n int) []entry {
		// l_n resolves through l_(n-1) ... l0: n links.
		es := []entry{{name: "f", body: "f"}, {name: "l0", link: "f", typ: tar.TypeSymlink}}
		for i := 1; i <= n; i++ {
			es = append(es, entry{name: fmt.Sprintf("l%d", i), link: fmt.Sprintf("l%d", i-1), typ: tar.TypeSymlink})
		}
		return es
	}
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string // "" unpacks
	}{
		{"name at the limit", []entry{{name: longName(maxPath), body: "x"}}, ""},
		{"name one byte over", []entry{{name: longName(maxPath + 1), body: "x"}}, "not a usable path"},
		{"link target at the limit", []entry{{name: "f", body: "f"}, {name: "l", link: strings.Repeat("./", (maxPath-1)/2) + "f", typ: tar.TypeSymlink}}, ""},
		{"link target one byte over", []entry{{name: "ff", body: "f"}, {name: "l", link: strings.Repeat("./", (maxPath-1)/2) + "ff", typ: tar.TypeSymlink}}, "not a usable path"},
		{"chain at the limit", chain(maxLinkHops), ""},
		{"chain one link over", chain(maxLinkHops + 1), fmt.Sprintf("chain of more than %d links", maxLinkHops)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, e := range tc.entries {
				if e.typ == tar.TypeSymlink && strings.HasPrefix(e.link, "./") && len(e.link) != maxPath && len(e.link) != maxPath+1 {
					t.Fatalf("test link of %d bytes", len(e.link))
				}
			}
			err := Extract(bytes.NewReader(archive(t, tc.entries...)), t.TempDir(), Limits{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}
