package config

import (
	"strings"
	"testing"
)

// TestSourceDateEpoch: any time from 1970 on (0 included) is a usable
// source_date_epoch; a negative one is refused.
func TestSourceDateEpoch(t *testing.T) {
	for _, tc := range []struct {
		epoch string
		ok    bool
	}{
		{"0", true},
		{"1700000000", true},
		{"-1", false},
	} {
		t.Run(tc.epoch, func(t *testing.T) {
			c, err := parse(t, "", "stage_1:\n  image: {base: debian:bookworm}\nsource_date_epoch: "+tc.epoch+"\n", nil)
			if tc.ok {
				if err != nil || c.SourceDateEpoch == nil {
					t.Fatalf("epoch %s: %+v, %v", tc.epoch, c.SourceDateEpoch, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "source_date_epoch: -1 is before 1970") {
				t.Fatalf("epoch %s: error %v, want it refused", tc.epoch, err)
			}
		})
	}
}
