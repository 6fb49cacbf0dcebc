package config

import (
	"strings"
	"testing"
)

// TestOnEntryCount: on_entry is the container's main program: one entry
// is valid, a second is refused.
func TestOnEntryCount(t *testing.T) {
	dir := project(t, "stage-1/custom/main.sh")
	for _, tc := range []struct {
		name, entries string
		want          string // "" is valid
	}{
		{"none", "[]", ""},
		{"one", "['stage-1/custom/main.sh --serve']", ""},
		{"two", "['stage-1/custom/main.sh', 'stage-1/custom/main.sh']", "stage_1.custom.on_entry[1]: on_entry takes at most one entry"},
		// PeiDocker's template: "supports both formats", a string being
		// the one entry.
		{"one as a string", "'stage-1/custom/main.sh --serve'", ""},
		{"a missing script as a string", "'stage-1/custom/nope.sh'", "user_config.yml:3:22: stage_1.custom.on_entry[0]"},
		{"a mapping", "{a: b}", "stage_1.custom.on_entry: expected a list, or one entry as a string, got a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, dir, "stage_1:\n  image: {base: debian:bookworm}\n  custom: {on_entry: "+tc.entries+"}\n", nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid on_entry refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
