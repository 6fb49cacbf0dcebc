package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// TestBuildsFilter: a build list holds exactly the builds its filter
// names: of one repository, of some namespaces (the tenant filter of the
// API's build list), in one state, newest first, at most Limit.
func TestBuildsFilter(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		base := time.Now().Add(-time.Hour).UnixMilli()
		n := 0
		add := func(repo, ns string) string {
			t.Helper()
			b, err := s.CreateBuild(ctx, Build{Repo: repo, Namespace: ns, Tag: "v", Platform: "linux/amd64", Kind: "pei", Recipe: "sha256:00"})
			if err != nil {
				t.Fatal(err)
			}
			// Creation times a second apart: newest-first is observable.
			n++
			if _, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET created = ? WHERE id = ?`), base+int64(n)*1000, b.ID); err != nil {
				t.Fatal(err)
			}
			return b.ID
		}
		aApp1 := add("team-a/app", "team-a")
		aLib := add("team-a/lib", "team-a")
		bApp := add("team-b/app", "team-b")
		cApp := add("team-c/app", "team-c")
		aApp2 := add("team-a/app", "team-a")
		leased, err := s.Lease(ctx, "w", []string{"linux/amd64"}, nil, time.Minute)
		if err != nil || leased.ID != aApp1 {
			t.Fatalf("lease %s, %v; want the oldest, %s", leased.ID, err, aApp1)
		}
		for _, tc := range []struct {
			name string
			f    Filter
			want []string
		}{
			{"everything", Filter{}, []string{aApp2, cApp, bApp, aLib, aApp1}},
			{"one repository", Filter{Repo: "team-a/app"}, []string{aApp2, aApp1}},
			{"a repository nobody built", Filter{Repo: "team-a/none"}, nil},
			{"one namespace", Filter{Namespaces: []string{"team-a"}}, []string{aApp2, aLib, aApp1}},
			{"two namespaces", Filter{Namespaces: []string{"team-b", "team-c"}}, []string{cApp, bApp}},
			{"a namespace with no builds", Filter{Namespaces: []string{"team-z"}}, nil},
			{"one state", Filter{State: api.Running}, []string{aApp1}},
			{"namespace and state", Filter{Namespaces: []string{"team-a"}, State: api.Queued}, []string{aApp2, aLib}},
			{"limit", Filter{Limit: 2}, []string{aApp2, cApp}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				bs, err := s.Builds(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, b := range bs {
					got = append(got, b.ID)
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("builds %v, want %v", got, tc.want)
				}
			})
		}
	})
}

// TestBuildsLimit: Limit caps a list at 1 to 1000 builds; anything else
// gives the default of 100.
func TestBuildsLimit(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for range 101 {
			if _, err := s.CreateBuild(ctx, Build{Repo: "team-a/app", Namespace: "team-a", Tag: "v", Platform: "linux/amd64", Kind: "pei", Recipe: "sha256:00"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct{ limit, want int }{
			{1, 1},
			{0, 100},
			{-1, 100},
			{101, 101},
			{1000, 101},
			{1001, 100},
		} {
			bs, err := s.Builds(ctx, Filter{Limit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) != tc.want {
				t.Errorf("limit %d: %d builds, want %d", tc.limit, len(bs), tc.want)
			}
		}
	})
}
