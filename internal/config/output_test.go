package config

import (
	"strings"
	"testing"
)

// TestOutputNames: an image pei makes is named NAME[:TAG]. A digest is
// what a registry gives a pushed image, so an output with one is refused;
// a run-time variable ({{VAR}}) may stand for the tag, never for the name,
// which pei needs when it configures.
func TestOutputNames(t *testing.T) {
	const digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name, image, final string // stage_1.image and stage_2.final
		env                map[string]string
		want               string // "" is valid
	}{
		{name: "name and tag", image: "output: my-image:stage-1"},
		{name: "registry with a port", image: "output: 'localhost:5000/team/img:1'"},
		{name: "run-time tag", image: "output: 'my-image:{{TAG}}'"},
		{name: "run-time tag with a default (PeiDocker's env-passthrough)", image: `output: "${PROJECT_NAME:-pei-env-pass}:{{TAG:-dev}}"`},
		{name: "run-time part of a tag", image: "output: 'my-image:v{{MAJOR}}.{{MINOR}}'"},
		{name: "configure-time name", image: "output: '${NAME}:1'", env: map[string]string{"NAME": "from-env"}},
		{name: "digest", image: "output: 'my-image" + digest + "'",
			want: `user_config.yml:2:42: stage_1.image.output: "my-image` + digest + `" has a digest (@...); an output is NAME[:TAG]`},
		{name: "tag and digest", image: "output: 'my-image:1" + digest + "'",
			want: `user_config.yml:2:42: stage_1.image.output: "my-image:1` + digest + `" has a digest (@...)`},
		{name: "digest of the final image", image: "output: x:1", final: "output: 'x" + digest + "'",
			want: `user_config.yml:6:13: stage_2.final.output: "x` + digest + `" has a digest (@...)`},
		{name: "run-time name", image: "output: '{{NAME}}:1'",
			want: `user_config.yml:2:42: stage_1.image.output: "${NAME}:1" has a run-time variable in the image name; only the tag may be one`},
		{name: "run-time name without a tag", image: "output: '{{NAME}}'",
			want: `stage_1.image.output: "${NAME}" has a run-time variable in the image name`},
		{name: "run-time registry", image: "output: '{{REG}}/img:1'",
			want: `stage_1.image.output: "${REG}/img:1" has a run-time variable in the image name`},
		{name: "run-time name with a default", image: "output: '{{NAME:-x}}:1'",
			want: `stage_1.image.output: "${NAME:-x}:1" has a run-time variable in the image name`},
		{name: "bad tag around a variable", image: "output: 'img:{{TAG}}!'",
			want: `stage_1.image.output: "img:x!" with its variables at their defaults is not a valid image reference`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := "stage_1:\n  image: {base: debian:bookworm, " + tc.image + "}\n"
			if tc.final != "" {
				y += "stage_2:\n  final:\n    keep: [/opt]\n    " + tc.final + "\n"
			}
			_, err := parse(t, "", y, tc.env)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid output refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
