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
