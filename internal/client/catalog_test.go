package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// The catalog methods: their requests (method, path, body, token), the
// answers they decode, and the server's error carried whole.
func TestCatalogMethods(t *testing.T) {
	updated := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var got []string // METHOD PATH BODY
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.EscapedPath()+" "+string(body))
		if _, pw, _ := r.BasicAuth(); pw != "tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v2/_pei/catalogs/team-a":
			json.NewEncoder(w).Encode(api.Catalog{Namespace: "team-a", Items: []api.CatalogItem{{Name: "node", Lower: "team-a/dev:1", Upper: "team-a/node:18", Namespace: "team-a"}},
				SharedNamespace: "pei", Shared: []api.CatalogItem{{Name: "python", Lower: "pei/dev-base:bookworm", Upper: "pei/lang-python:3.11-bookworm", Namespace: "pei"}}})
		case r.Method == http.MethodGet && r.URL.Path == "/v2/_pei/catalogs/team-a/node":
			json.NewEncoder(w).Encode(api.CatalogItem{Name: "node", Lower: "team-a/dev:1", Upper: "team-a/node:18", Namespace: "team-a", Updated: updated, UpdatedBy: "alice"})
		case r.Method == http.MethodPut && r.URL.Path == "/v2/_pei/catalogs/team-a/node":
			var it api.CatalogItem
			json.Unmarshal(body, &it)
			it.Namespace, it.Updated, it.UpdatedBy = "team-a", updated, "alice"
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(it)
		case r.Method == http.MethodDelete && r.URL.Path == "/v2/_pei/catalogs/team-a/node":
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(api.Errors{Errors: []api.Error{{Code: "CATALOG_UNKNOWN", Message: `the catalog of team-a has no item "ruby"`}}})
		}
	}))
	defer srv.Close()
	c := New(srv.URL, "tok")
	ctx := context.Background()

	cat, err := c.Catalog(ctx, "team-a")
	if err != nil || len(cat.Items) != 1 || cat.Items[0].Name != "node" || cat.SharedNamespace != "pei" || len(cat.Shared) != 1 || cat.Shared[0].Name != "python" {
		t.Fatalf("Catalog: %+v, %v", cat, err)
	}
	it, err := c.CatalogItem(ctx, "team-a", "node")
	if err != nil || it.Upper != "team-a/node:18" || it.UpdatedBy != "alice" || !it.Updated.Equal(updated) {
		t.Fatalf("CatalogItem: %+v, %v", it, err)
	}
	// What the server sets is not sent back, so a read item can be written again.
	it.Exclude = []string{"/pei-init"}
	stored, err := c.PutCatalogItem(ctx, "team-a", it)
	if err != nil || stored.Namespace != "team-a" || !slices.Equal(stored.Exclude, []string{"/pei-init"}) {
		t.Fatalf("PutCatalogItem: %+v, %v", stored, err)
	}
	if err := c.DeleteCatalogItem(ctx, "team-a", "node"); err != nil {
		t.Fatalf("DeleteCatalogItem: %v", err)
	}
	_, err = c.CatalogItem(ctx, "team-a", "ruby")
	var e *Error
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "CATALOG_UNKNOWN" ||
		err.Error() != `server answered 404 CATALOG_UNKNOWN: the catalog of team-a has no item "ruby"` {
		t.Fatalf("a missing item: %v", err)
	}
	want := []string{
		"GET /v2/_pei/catalogs/team-a ",
		"GET /v2/_pei/catalogs/team-a/node ",
		`PUT /v2/_pei/catalogs/team-a/node {"name":"node","lower":"team-a/dev:1","upper":"team-a/node:18","exclude":["/pei-init"]}`,
		"DELETE /v2/_pei/catalogs/team-a/node ",
		"GET /v2/_pei/catalogs/team-a/ruby ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests:\n%q\nwant:\n%q", got, want)
	}
}
