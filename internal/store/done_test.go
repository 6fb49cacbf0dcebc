package store

import "testing"

// TestDone: the end states are exactly succeeded, failed and canceled
// (status pages, cancel and the log stream stop on them).
func TestDone(t *testing.T) {
	for _, tc := range []struct {
		state string
		done  bool
	}{
		{Queued, false},
		{Running, false},
		{Succeeded, true},
		{Failed, true},
		{Canceled, true},
	} {
		if got := (Build{State: tc.state}).Done(); got != tc.done {
			t.Errorf("%s: Done() = %v, want %v", tc.state, got, tc.done)
		}
	}
}
