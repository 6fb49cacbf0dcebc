package config

import (
	"strings"
	"testing"
)

// TestManualVolumeName: a manual-volume names an existing Docker volume:
// a plain name, or a ${VAR} Compose resolves at run time.
func TestManualVolumeName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"data_1", true},
		{"my.volume-2", true},
		{"{{VOLUME}}", true},
		{"../data", false},
		{"two words", false},
		{"-leading-dash", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, "", "stage_1:\n  image: {base: debian:bookworm}\nstage_2:\n  storage:\n    data: {type: manual-volume, volume_name: '"+tc.name+"'}\n", nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("volume %q refused: %v", tc.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "stage_2.storage.data.volume_name: ") || !strings.Contains(err.Error(), "is not a valid volume name") {
				t.Fatalf("volume %q: error %v, want it refused", tc.name, err)
			}
		})
	}
}
