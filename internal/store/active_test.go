package store

import (
	"context"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// TestActiveCounts: a namespace's active builds, which the per-namespace
// limit is checked against, are its queued and running ones; ended builds
// and other namespaces' builds do not count.
func TestActiveCounts(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		count := func(ns string) int {
			t.Helper()
			n, err := s.Active(ctx, ns)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		for range 3 {
			queue(t, s, "linux/amd64")
		}
		if _, err := s.CreateBuild(ctx, Build{Repo: "team-b/app", Namespace: "team-b", Tag: "v", Platform: "linux/arm64", Kind: "pei", Recipe: "sha256:00"}); err != nil {
			t.Fatal(err)
		}
		if n := count("team-a"); n != 3 {
			t.Fatalf("3 queued: active %d", n)
		}
		running, err := s.Lease(ctx, "w", []string{"linux/amd64"}, nil, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if n := count("team-a"); n != 3 {
			t.Fatalf("2 queued and 1 running: active %d", n)
		}
		if _, err := s.Finish(ctx, running.ID, "w", api.Finish{State: api.Succeeded, Digest: "sha256:11"}); err != nil {
			t.Fatal(err)
		}
		if n := count("team-a"); n != 2 {
			t.Fatalf("2 queued and 1 succeeded: active %d", n)
		}
		bs, err := s.Builds(ctx, Filter{Namespaces: []string{"team-a"}, State: api.Queued})
		if err != nil || len(bs) != 2 {
			t.Fatalf("queued builds %v, %v", bs, err)
		}
		if _, err := s.Cancel(ctx, bs[0].ID); err != nil {
			t.Fatal(err)
		}
		if n := count("team-a"); n != 1 {
			t.Fatalf("1 queued, 1 canceled: active %d", n)
		}
		if n := count("team-b"); n != 1 {
			t.Fatalf("team-b: active %d", n)
		}
		if n := count("team"); n != 0 {
			t.Fatalf("a namespace with no builds: active %d", n)
		}
	})
}
