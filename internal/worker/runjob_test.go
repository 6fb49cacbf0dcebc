package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/client"
)

// TestRunJobEnds: how a build that never gets its recipe ends, by what
// ended it, and what the server is told: its timeout (failed, saying
// so), a cancel asked for in a heartbeat's answer, a lease the server
// gave away (nothing is reported: the build is another worker's), and
// the worker stopping (the build is given back).
func TestRunJobEnds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		timeout   string
		heartbeat func(w http.ResponseWriter)
		stop      bool // the worker's context ends
		want      api.Finish
		reported  bool
	}{
		{"timed out", "300ms", running, false, api.Finish{State: api.Failed, Error: "timed out after 300ms"}, true},
		{"canceled", "", func(w http.ResponseWriter) {
			json.NewEncoder(w).Encode(api.Heartbeat{Cancel: true, State: api.Running})
		},
			false, api.Finish{State: api.Canceled, Error: "canceled by request"}, true},
		{"lease lost", "", func(w http.ResponseWriter) { w.WriteHeader(http.StatusConflict) }, false, api.Finish{State: api.Lost}, false},
		{"worker stopping", "", running, true, api.Finish{State: api.Queued}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var finished []api.Finish
			done := make(chan struct{})
			defer close(done)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case strings.HasSuffix(r.URL.Path, "/recipe"):
					select { // a recipe that never comes
					case <-r.Context().Done():
					case <-done:
					}
				case strings.HasSuffix(r.URL.Path, "/heartbeat"):
					tc.heartbeat(w)
				case strings.HasSuffix(r.URL.Path, "/finish"):
					var f api.Finish
					json.NewDecoder(r.Body).Decode(&f)
					mu.Lock()
					finished = append(finished, f)
					mu.Unlock()
					w.Write([]byte("{}"))
				default:
					w.WriteHeader(http.StatusNoContent)
				}
			}))
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.stop {
				time.AfterFunc(300*time.Millisecond, cancel)
			}
			l := &api.Lease{Build: api.BuildView{ID: "b-1", Repository: "team-a/app", Kind: api.KindDockerfile, Platform: "linux/amd64", Timeout: tc.timeout}, LeaseSeconds: 1}
			var log strings.Builder
			got := runJob(ctx, client.New(srv.URL, "t"), Options{Name: "w", Log: &log}, l)
			if got != tc.want {
				t.Fatalf("runJob = %+v, want %+v", got, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case !tc.reported && len(finished) != 0:
				t.Fatalf("reported %+v for a build this worker lost", finished)
			case tc.reported && (len(finished) != 1 || finished[0] != tc.want):
				t.Fatalf("reported %+v, want %+v", finished, tc.want)
			}
		})
	}
}

func running(w http.ResponseWriter) {
	json.NewEncoder(w).Encode(api.Heartbeat{State: api.Running})
}
