package config

import (
	"strings"
	"testing"
)

// TestComposedLayers: each input of a composed image's diff is a valid
// image reference, and each excluded path is a clean absolute path below
// / (excluding / would leave the layer empty).
func TestComposedLayers(t *testing.T) {
	for _, tc := range []struct {
		name, layer string
		want        string // "" is valid
	}{
		{"a diff and its exclusions", "{diff: {lower: a:1, upper: b:1}, exclude: [/var/cache, /tmp/x]}", ""},
		{"bad lower", "{diff: {lower: 'Bad:Ref', upper: b:1}}", `compose.rt.layers[1].diff.lower: "Bad:Ref" is not a valid image reference`},
		{"bad upper", "{diff: {lower: a:1, upper: 'b::1'}}", `compose.rt.layers[1].diff.upper: "b::1" is not a valid image reference`},
		{"exclude /", "{diff: {lower: a:1, upper: b:1}, exclude: [/]}", `compose.rt.layers[1].exclude[0]: "/": give a clean absolute path below /`},
		{"exclude an unclean path", "{diff: {lower: a:1, upper: b:1}, exclude: [/var/../etc]}", `compose.rt.layers[1].exclude[0]: "/var/../etc": give a clean absolute path below /`},
		{"exclude a trailing slash", "{diff: {lower: a:1, upper: b:1}, exclude: [/var/]}", `"/var/": give a clean absolute path below /`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yml := "stage_1:\n  image: {base: debian:bookworm}\ncompose:\n  rt:\n    output: 'rt:1'\n    layers:\n      - {image: base:1}\n      - " + tc.layer + "\n"
			_, err := parse(t, "", yml, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid layers refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
