package build

import (
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
)

// pei build resolves {{VAR}}s in image names from its lookup, as Compose
// would, and refuses a value that makes a name no image name.
func TestResolveImages(t *testing.T) {
	cfg, err := config.Parse([]byte("stage_1:\n  image: {base: debian:bookworm, output: 'app:{{TAG:-dev}}'}\n"), "user_config.yml", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.New(config.WithDefaults(cfg), "proj")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env       map[string]string
		out, base string // stage-1's output, stage-2's base
		err       string
	}{
		{nil, "app:dev", "app:dev", ""},
		{map[string]string{"TAG": "v2"}, "app:v2", "app:v2", ""},
		{map[string]string{"TAG": "not a tag"}, "", "", `stage-1 output "app:${TAG:-dev}" is "app:not a tag" with its variables resolved, which is not an image name`},
	} {
		var lookup config.LookupFunc
		if tc.env != nil {
			lookup = func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
		}
		r, err := resolveImages(p, lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("env %v: error %v, want %q", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("env %v: %v", tc.env, err)
		}
		if r.Stages[0].Output != tc.out || r.Stages[1].Base != tc.base {
			t.Errorf("env %v: stage-1 output %q, stage-2 base %q; want %q, %q", tc.env, r.Stages[0].Output, r.Stages[1].Base, tc.out, tc.base)
		}
	}
}
