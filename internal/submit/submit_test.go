package submit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/config"
)

// fakeServe answers a submission with a queued build and its log stream
// with one line and the end given. Its catalog of team-a is catalog, or
// with catalogStatus that status; none (404) is a server without
// catalogs. requests are the others.
type fakeServe struct {
	mu            sync.Mutex
	end           api.BuildView
	catalog       *api.Catalog
	catalogStatus int
	catalogReads  int
	requests      []*http.Request
}

func (f *fakeServe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == api.CatalogPath("team-a") {
		f.catalogReads++
		switch {
		case f.catalogStatus != 0:
			w.WriteHeader(f.catalogStatus)
			json.NewEncoder(w).Encode(api.Errors{Errors: []api.Error{{Code: "DENIED", Message: "no pull in team-a"}}})
		case f.catalog != nil && r.Method == http.MethodGet:
			json.NewEncoder(w).Encode(f.catalog)
		default:
			http.NotFound(w, r)
		}
		return
	}
	f.requests = append(f.requests, r)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == api.BuildsPath("team-a/app"):
		b := api.BuildView{ID: "b-1", Repository: "team-a/app", State: api.Queued, Kind: r.URL.Query().Get("kind")}
		b.Links.Self = api.BuildPath("team-a/app", "b-1")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(b)
	case r.Method == http.MethodGet && r.URL.Path == api.LogsPath("team-a/app", "b-1"):
		end, _ := json.Marshal(f.end)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: 1\nevent: log\ndata: step 1\n\nevent: end\ndata: %s\n\n", end)
	default:
		http.NotFound(w, r)
	}
}

func TestRun(t *testing.T) {
	dockerCtx := t.TempDir()
	os.WriteFile(filepath.Join(dockerCtx, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	project := t.TempDir()
	os.WriteFile(filepath.Join(project, "user_config.yml"), []byte("stage_1:\n  image: {base: debian:bookworm, output: 'x:1'}\n"), 0o644)
	badProject := t.TempDir()
	os.WriteFile(filepath.Join(badProject, "user_config.yml"), []byte("stage_1:\n  image: {base: debian:bookworm, output: 'x:1'}\n  ssh: {enable: maybe}\n"), 0o644)
	succeeded := api.BuildView{ID: "b-1", State: api.Succeeded, Image: "reg/team-a/app@sha256:1"}
	failed := api.BuildView{ID: "b-1", State: api.Failed, Error: "step 1 failed"}
	for _, tc := range []struct {
		name     string
		dir      string
		follow   bool
		end      api.BuildView
		want     api.BuildView // ID, State and Image compared
		err      string        // in the error; "" is none
		requests int
		log      []string
	}{
		{"queued", dockerCtx, false, succeeded, api.BuildView{ID: "b-1", State: api.Queued}, "", 1,
			[]string{"build b-1 queued (SERVER/v2/team-a/app/_pei/builds/b-1, recipe "}},
		{"followed to success", dockerCtx, true, succeeded, succeeded, "", 2,
			[]string{"build b-1 queued (", "step 1\n"}},
		{"followed to failure", dockerCtx, true, failed, failed, "build b-1 failed: step 1 failed", 2,
			[]string{"step 1\n"}},
		{"a pei project", project, false, succeeded, api.BuildView{ID: "b-1", State: api.Queued}, "", 1, nil},
		{"a bad config is not uploaded", badProject, true, succeeded, api.BuildView{}, "user_config.yml:3", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServe{end: tc.end}
			srv := httptest.NewServer(f)
			defer srv.Close()
			var log strings.Builder
			o := Options{Dir: tc.dir, Server: srv.URL, Token: "t", Follow: tc.follow, Log: &log,
				Build: client.SubmitOptions{Repo: "team-a/app", Tag: "v1"}}
			if tc.dir == dockerCtx {
				o.Build.Dockerfile = "Dockerfile"
			}
			b, err := Run(context.Background(), o)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if b.ID != tc.want.ID || b.State != tc.want.State || b.Image != tc.want.Image {
				t.Errorf("build %+v, want %+v", b, tc.want)
			}
			if len(f.requests) != tc.requests {
				t.Fatalf("%d requests, want %d", len(f.requests), tc.requests)
			}
			// A pei project is checked with the server's catalog (here
			// none: 404, a server without catalogs); a Dockerfile is not.
			if reads := f.catalogReads; reads != 0 && tc.dir == dockerCtx || reads != 1 && tc.dir != dockerCtx {
				t.Errorf("%d catalog reads", reads)
			}
			if tc.requests > 0 {
				r := f.requests[0]
				kind, dockerfile := api.KindPei, ""
				if tc.dir == dockerCtx {
					kind, dockerfile = api.KindDockerfile, "Dockerfile"
				}
				if q := r.URL.Query(); q.Get("kind") != kind || q.Get("dockerfile") != dockerfile || q.Get("tag") != "v1" || r.Header.Get("Content-Type") != api.RecipeMediaType {
					t.Errorf("submission %s %v, want kind=%s", r.URL, r.Header, kind)
				}
			}
			for _, want := range tc.log {
				if want = strings.ReplaceAll(want, "SERVER", srv.URL); !strings.Contains(log.String(), want) {
					t.Errorf("log %q lacks %q", log.String(), want)
				}
			}
			var fe *FailedError
			if errors.As(err, &fe) != (tc.end.State == api.Failed && tc.requests > 0) {
				t.Errorf("error %v: a *FailedError = %v", err, errors.As(err, &fe))
			}
			var ce config.Errors
			if errors.As(err, &ce) != (tc.dir == badProject) {
				t.Errorf("error %v: config.Errors = %v", err, errors.As(err, &ce))
			}
		})
	}
}

// A compose layer may take an item only the server's catalog holds: the
// local check reads that catalog (the namespace's items, then the shared
// ones) as the server does, and a server that refuses to show it stops
// the submission.
func TestRunServedCatalog(t *testing.T) {
	const head = "stage_1:\n  image: {base: debian:bookworm, output: 'x:1'}\ncompose:\n  rt:\n    output: rt:1\n    layers: [{image: debian:bookworm}, {catalog: %s}]\n"
	project := func(item string) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "user_config.yml"), []byte(fmt.Sprintf(head, item)), 0o644)
		return dir
	}
	cat := &api.Catalog{Namespace: "team-a",
		Items:           []api.CatalogItem{{Name: "node", Lower: "team-a/dev:1", Upper: "team-a/node:18", Namespace: "team-a"}},
		SharedNamespace: "pei",
		Shared:          []api.CatalogItem{{Name: "python", Lower: "pei/dev-base:bookworm", Upper: "pei/lang-python:3.11-bookworm", Exclude: []string{"/pei-init"}, Namespace: "pei"}}}
	for _, tc := range []struct {
		name, item string
		catalog    *api.Catalog
		status     int
		err        string // in the error; "" is none
		uploads    int
	}{
		{"the namespace's item", "node", cat, 0, "", 1},
		{"a shared item", "python", cat, 0, "", 1},
		{"an item nobody has", "perl", cat, 0, `no catalog item "perl" (pei serve's catalog has: node, python)`, 0},
		{"a server without catalogs", "python", nil, 0, `no catalog item "python": the config has no catalog`, 0},
		{"a catalog the token may not read", "python", cat, http.StatusForbidden, "read the catalog of team-a on SERVER: server answered 403 DENIED: no pull in team-a", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServe{catalog: tc.catalog, catalogStatus: tc.status}
			srv := httptest.NewServer(f)
			defer srv.Close()
			_, err := Run(context.Background(), Options{Dir: project(tc.item), Server: srv.URL, Token: "t",
				Build: client.SubmitOptions{Repo: "team-a/app", Tag: "v1"}})
			want := strings.ReplaceAll(tc.err, "SERVER", srv.URL)
			switch {
			case want == "" && err != nil:
				t.Fatalf("error %v", err)
			case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
				t.Fatalf("error %v, want %q", err, want)
			}
			if len(f.requests) != tc.uploads || f.catalogReads != 1 {
				t.Errorf("%d uploads, %d catalog reads; want %d, 1", len(f.requests), f.catalogReads, tc.uploads)
			}
		})
	}
}

// servedCatalog names the images in the server's registry, as the
// server's own check does: SERVER-HOST/REPO:TAG.
func TestServedCatalogNamesTheServersImages(t *testing.T) {
	f := &fakeServe{catalog: &api.Catalog{Namespace: "team-a",
		Items:  []api.CatalogItem{{Name: "node", Lower: "team-a/dev:1", Upper: "team-a/node:18"}},
		Shared: []api.CatalogItem{{Name: "python", Lower: "pei/dev-base:bookworm", Upper: "pei/lang-python:3.11-bookworm", Exclude: []string{"/pei-init"}}}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	got, err := servedCatalog(context.Background(), client.New(srv.URL, "t"), "team-a")
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	want := []config.CatalogItem{
		{Name: "node", Lower: config.ImageRef{Raw: host + "/team-a/dev:1"}, Upper: config.ImageRef{Raw: host + "/team-a/node:18"}},
		{Name: "python", Lower: config.ImageRef{Raw: host + "/pei/dev-base:bookworm"}, Upper: config.ImageRef{Raw: host + "/pei/lang-python:3.11-bookworm"}, Exclude: []string{"/pei-init"}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("served catalog\n%+v\nwant\n%+v", got, want)
	}
}
