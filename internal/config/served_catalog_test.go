package config

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// A compose layer's catalog: NAME takes the project's item of that name,
// else pei serve's (LoadOptions.Catalog), and says what both hold when
// neither has it.
func TestServedCatalog(t *testing.T) {
	served := []CatalogItem{
		{Name: "python", Lower: ImageRef{Raw: "reg.example:5000/pei/dev-base:1@sha256:" + hex64('a')}, Upper: ImageRef{Raw: "reg.example:5000/pei/lang-python:3.11@sha256:" + hex64('b')}, Exclude: []string{"/pei-init"}},
		{Name: "node", Lower: ImageRef{Raw: "reg.example:5000/team-a/dev:1"}, Upper: ImageRef{Raw: "reg.example:5000/team-a/node:18"}},
		{Name: "broken", Lower: ImageRef{Raw: "Not A Ref"}, Upper: ImageRef{Raw: "reg.example:5000/team-a/x:1"}},
	}
	const head = "stage_1:\n  image: {base: debian:bookworm}\n"
	for _, tc := range []struct {
		name, config string
		lower, upper string
		exclude      []string
		err          string
	}{
		{name: "served item", config: head + "compose:\n  rt:\n    output: rt:1\n    layers: [{image: debian:bookworm}, {catalog: python, exclude: [/tmp, /pei-init]}]\n",
			lower: served[0].Lower.Raw, upper: served[0].Upper.Raw, exclude: []string{"/pei-init", "/tmp"}},
		{name: "the project's item first", config: head + "catalog:\n  python: {lower: 'dev:1', upper: 'py:1'}\ncompose:\n  rt:\n    output: rt:1\n    layers: [{image: debian:bookworm}, {catalog: python}]\n",
			lower: "dev:1", upper: "py:1"},
		{name: "neither has it", config: head + "catalog:\n  ruby: {lower: 'dev:1', upper: 'rb:1'}\ncompose:\n  rt:\n    output: rt:1\n    layers: [{image: debian:bookworm}, {catalog: perl}]\n",
			err: `user_config.yml:8:50: compose.rt.layers[1].catalog: no catalog item "perl" (the project's catalog has: ruby; pei serve's catalog has: python, node, broken)`},
		{name: "a served reference that does not parse", config: head + "compose:\n  rt:\n    output: rt:1\n    layers: [{image: debian:bookworm}, {catalog: broken}]\n",
			err: `user_config.yml:6:50: compose.rt.layers[1].catalog: "Not A Ref" is not a valid image reference`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{DefaultFile: {Data: []byte(tc.config)}}
			c, err := Load(LoadOptions{FS: fsys, Catalog: served})
			if tc.err != "" {
				if err == nil || !containsLine(err.Error(), tc.err) {
					t.Fatalf("error %v\nwant one starting %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l := c.Compose[0].Layers[1]
			if l.Diff == nil || l.Diff.Lower.Raw != tc.lower || l.Diff.Upper.Raw != tc.upper {
				t.Fatalf("layer diff %+v, want %s → %s", l.Diff, tc.lower, tc.upper)
			}
			if tc.exclude != nil && !slices.Equal(l.Exclude, tc.exclude) {
				t.Errorf("exclude %q, want %q", l.Exclude, tc.exclude)
			}
		})
	}
}

func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func containsLine(text, prefix string) bool {
	return slices.ContainsFunc(strings.Split(text, "\n"), func(l string) bool { return strings.HasPrefix(l, prefix) })
}
