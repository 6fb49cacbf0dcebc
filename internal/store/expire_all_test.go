package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// TestExpireHandlesEveryBuild: one Expire pass deals with every running
// build that is due, whatever the order it meets them in: lost builds
// with attempts left are queued again (all of them), a lost build out of
// attempts and one past its timeout fail, a healthy one keeps running.
func TestExpireHandlesEveryBuild(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		add := func(timeout time.Duration) string {
			t.Helper()
			b, err := s.CreateBuild(ctx, Build{Repo: "team-a/app", Namespace: "team-a", Tag: "v", Platform: "linux/amd64", Kind: "pei", Recipe: "sha256:00", Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			l, err := s.Lease(ctx, "w-"+b.ID, []string{"linux/amd64"}, nil, time.Hour)
			if err != nil || l.ID != b.ID {
				t.Fatalf("lease %s: %+v, %v", b.ID, l, err)
			}
			return b.ID
		}
		set := func(id, col string, v int64) {
			t.Helper()
			if _, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET `+col+` = ? WHERE id = ?`), v, id); err != nil {
				t.Fatal(err)
			}
		}
		past := time.Now().Add(-time.Minute).UnixMilli()
		lost1, lost2, lost3 := add(time.Hour), add(time.Hour), add(time.Hour)
		for _, id := range []string{lost1, lost2, lost3} {
			set(id, "lease_until", past)
		}
		outOfAttempts := add(time.Hour)
		set(outOfAttempts, "lease_until", past)
		set(outOfAttempts, "attempts", 3)
		timedOut := add(time.Minute)
		set(timedOut, "started", time.Now().Add(-time.Hour).UnixMilli())
		healthy := add(time.Hour)

		ended, err := s.Expire(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]api.State{}
		for _, b := range ended {
			got[b.ID] = b.State
		}
		if len(ended) != 2 || got[outOfAttempts] != api.Failed || got[timedOut] != api.Failed {
			t.Fatalf("ended %v, want %s and %s failed", got, outOfAttempts, timedOut)
		}
		for id, want := range map[string]api.State{lost1: api.Queued, lost2: api.Queued, lost3: api.Queued, outOfAttempts: api.Failed, timedOut: api.Failed, healthy: api.Running} {
			b, err := s.Build(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if b.State != want {
				t.Errorf("build %s is %s after one pass, want %s (%s)", id, b.State, want, b.Error)
			}
			if want == api.Queued && (b.Worker != "" || !strings.Contains(b.Error, "stopped answering; queued again")) {
				t.Errorf("requeued build %s: worker %q, error %q", id, b.Worker, b.Error)
			}
		}
	})
}
