package project

import (
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/config"
)

// An OCI layout base stays out of the build context (pei build reads it
// from the project); an image name adds nothing.
func TestExcludesLayoutBases(t *testing.T) {
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"image names", "stage_1:\n  image: {base: 'debian:bookworm'}\n", ".git .pei"},
		{"stage-1 layout", "stage_1:\n  image: {base: 'oci-layout://bases/deb:v1'}\n", ".git .pei bases/deb"},
		{"both stages", "stage_1:\n  image: {base: 'oci-layout://./b1'}\nstage_2:\n  image: {base: 'oci-layout://a2@sha256:" + strings.Repeat("0", 64) + "'}\n", ".git .pei a2 b1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tc.yml), config.DefaultFile, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(excludes(config.WithDefaults(c)), " "); got != tc.want {
				t.Errorf("excludes = %q, want %q", got, tc.want)
			}
		})
	}
}
