package store

import (
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// TestDone: the end states are exactly succeeded, failed and canceled
// (status pages, cancel and the log stream stop on them).
func TestDone(t *testing.T) {
	for _, tc := range []struct {
		state api.State
		done  bool
	}{
		{api.Queued, false},
		{api.Running, false},
		{api.Succeeded, true},
		{api.Failed, true},
		{api.Canceled, true},
	} {
		if got := (Build{State: tc.state}).Done(); got != tc.done {
			t.Errorf("%s: Done() = %v, want %v", tc.state, got, tc.done)
		}
	}
}
