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
// with one line and the end given.
type fakeServe struct {
	mu       sync.Mutex
	end      api.BuildView
	requests []*http.Request
}

func (f *fakeServe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.mu.Unlock()
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
