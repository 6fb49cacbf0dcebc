package store

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// TestCatalog: items per namespace, replaced in place, bounded in number
// (a replacement still fits a full catalog), deleted; a build keeps the
// items it was queued with whatever the catalog becomes.
func TestCatalog(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		py := api.CatalogItem{Name: "python", Lower: "team-a/dev:1", Upper: "team-a/py:1", Exclude: []string{"/pei-init", "/a,b"}}
		got, created, err := s.PutCatalogItem(ctx, "team-a", py, "alice", 2)
		if err != nil || !created || got.Namespace != "team-a" || got.UpdatedBy != "alice" || got.Updated.IsZero() {
			t.Fatalf("put: %+v %v %v", got, created, err)
		}
		py.Upper = "team-a/py:2"
		if _, created, err = s.PutCatalogItem(ctx, "team-a", py, "bob", 2); err != nil || created {
			t.Fatalf("replace: created=%v %v", created, err)
		}
		if _, _, err := s.PutCatalogItem(ctx, "team-b", api.CatalogItem{Name: "python", Lower: "team-b/x:1", Upper: "team-b/y:1"}, "carol", 2); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.PutCatalogItem(ctx, "team-a", api.CatalogItem{Name: "node", Lower: "team-a/dev:1", Upper: "team-a/node:1"}, "alice", 2); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.PutCatalogItem(ctx, "team-a", api.CatalogItem{Name: "ruby", Lower: "team-a/dev:1", Upper: "team-a/rb:1"}, "alice", 2); !errors.Is(err, ErrCatalogFull) {
			t.Fatalf("a third item in a catalog of 2: %v", err)
		}
		if _, _, err := s.PutCatalogItem(ctx, "team-a", py, "alice", 2); err != nil {
			t.Fatalf("replacing in a full catalog: %v", err)
		}
		items, err := s.CatalogItems(ctx, "team-a")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, it := range items {
			names = append(names, it.Name)
		}
		if !slices.Equal(names, []string{"node", "python"}) {
			t.Fatalf("team-a's items %v", names)
		}
		one, err := s.CatalogItem(ctx, "team-a", "python")
		if err != nil || one.Upper != "team-a/py:2" || !slices.Equal(one.Exclude, py.Exclude) || one.UpdatedBy != "alice" {
			t.Fatalf("item: %+v %v", one, err)
		}
		if b, _ := s.CatalogItem(ctx, "team-b", "python"); b.Upper != "team-b/y:1" {
			t.Fatalf("team-b's python: %+v", b)
		}

		pinned := []api.CatalogItem{{Name: "python", Namespace: "team-a", Lower: "h/team-a/dev:1@sha256:aa", Upper: "h/team-a/py:2@sha256:bb"}}
		b, err := s.CreateBuild(ctx, Build{Repo: "team-a/app", Namespace: "team-a", Tag: "1", Platform: "linux/amd64", Kind: "pei", Recipe: "sha256:x", Catalog: pinned})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := s.CreateBuild(ctx, Build{Repo: "team-a/app", Namespace: "team-a", Tag: "2", Platform: "linux/amd64", Kind: "pei", Recipe: "sha256:x"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteCatalogItem(ctx, "team-a", "python"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteCatalogItem(ctx, "team-a", "python"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete again: %v", err)
		}
		if _, err := s.CatalogItem(ctx, "team-a", "python"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted item: %v", err)
		}
		kept, err := s.BuildCatalog(ctx, b.ID)
		if err != nil || len(kept) != 1 || kept[0].Lower != pinned[0].Lower || kept[0].Upper != pinned[0].Upper || kept[0].Namespace != "team-a" {
			t.Fatalf("build catalog %+v %v, want %+v", kept, err, pinned)
		}
		if none, err := s.BuildCatalog(ctx, plain.ID); err != nil || none != nil {
			t.Fatalf("a build without catalog items: %+v %v", none, err)
		}
	})
}
