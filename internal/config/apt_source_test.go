package config

import (
	"strings"
	"testing"
)

// TestAptRepoSource: apt.repo_source is a known mirror name or a file
// under installation/ that exists and stays in the project.
func TestAptRepoSource(t *testing.T) {
	dir := project(t, "stage-1/system/sources.list")
	for _, tc := range []struct {
		src  string
		want string // "" is valid
	}{
		{"tuna", ""},
		{"163", ""},
		{"stage-1/system/sources.list", ""},
		{"tnua", `"tnua" is neither a mirror name (tuna, aliyun, 163, ustc, cn) nor a file under installation/ (did you mean "tuna"?)`},
		{"stage-1/system/missing.list", "installation/stage-1/system/missing.list does not exist"},
		{"../../etc/apt/sources.list", `"../../etc/apt/sources.list" leaves the installation/ directory`},
		{"/etc/apt/sources.list", `"/etc/apt/sources.list" is absolute`},
	} {
		t.Run(tc.src, func(t *testing.T) {
			_, err := parse(t, dir, "stage_1:\n  image: {base: debian:bookworm}\n  apt: {repo_source: '"+tc.src+"'}\n", nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("repo_source %q refused: %v", tc.src, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "stage_1.apt.repo_source: "+tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
