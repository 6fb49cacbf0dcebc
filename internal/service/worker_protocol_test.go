package service

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// TestWorkerProtocol: a lease request waits up to wait_seconds for a
// build (and gets one queued meanwhile at once), the lease says how long
// it lasts, an empty log post adds no chunk, and malformed requests or
// unknown builds get 4xx answers.
func TestWorkerProtocol(t *testing.T) {
	h := newHarness(t, nil) // leases of 3 s
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)
	lease := func(wait int) (*http.Response, time.Duration) {
		t.Helper()
		body, _ := json.Marshal(api.LeaseRequest{Name: "one", Platforms: []string{"linux/amd64"}, Wait: wait})
		start := time.Now()
		resp := h.req("POST", "/v2/_pei/workers/lease", wsec, bytes.NewReader(body))
		return resp, time.Since(start)
	}

	t.Run("no build, no wait", func(t *testing.T) {
		resp, took := lease(0)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || took > 2*time.Second {
			t.Fatalf("status %d after %s, want 204 at once", resp.StatusCode, took)
		}
	})
	t.Run("no build, waits wait_seconds", func(t *testing.T) {
		resp, took := lease(1)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || took < time.Second || took > 10*time.Second {
			t.Fatalf("status %d after %s, want 204 after about 1s", resp.StatusCode, took)
		}
	})
	t.Run("a build queued while waiting", func(t *testing.T) {
		type result struct {
			resp *http.Response
			took time.Duration
		}
		got := make(chan result, 1)
		go func() {
			resp, took := lease(30)
			got <- result{resp, took}
		}()
		// Queue the build once the worker is waiting: the server has
		// registered the waiter when the queue's event has one.
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			h.srv.events.mu.Lock()
			n := len(h.srv.events.waiters[""])
			h.srv.events.mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(end) {
				t.Fatal("the lease request never waited")
			}
		}
		good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
		sub := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64", alice, bytes.NewReader(good))
		b := decode[api.BuildView](t, sub)
		r := <-got
		if r.resp.StatusCode != http.StatusOK || r.took > 20*time.Second {
			t.Fatalf("status %d after %s, want the build well before the 30 s wait ends", r.resp.StatusCode, r.took)
		}
		l := decode[api.Lease](t, r.resp)
		if l.Build.ID != b.ID || l.LeaseSeconds != 3 {
			t.Fatalf("lease of %s for %d s, want %s for 3 s", l.Build.ID, l.LeaseSeconds, b.ID)
		}

		w := fakeWorker{h, wsec, "one"}
		resp := w.post(b.ID, "logs", "")
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Pei-Log-Seq") != "" {
			t.Fatalf("empty log post: %d, seq %q", resp.StatusCode, resp.Header.Get("Pei-Log-Seq"))
		}
		if chunks, err := h.srv.Store().Logs(t.Context(), b.ID, 0); err != nil || len(chunks) != 0 {
			t.Fatalf("an empty post stored %d chunks (%v)", len(chunks), err)
		}
		for _, tc := range []struct {
			name, path, body string
			status           int
		}{
			{"finish with a body that is not JSON", b.ID + "/finish", "{", http.StatusBadRequest},
			{"heartbeat of an unknown build", "b-unknown/heartbeat", "{}", http.StatusNotFound},
			{"log of an unknown build", "b-unknown/logs", "x", http.StatusNotFound},
		} {
			resp := w.post(strings.Split(tc.path, "/")[0], strings.Split(tc.path, "/")[1], tc.body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
			}
		}
	})
	t.Run("lease request that is not JSON", func(t *testing.T) {
		resp := h.req("POST", "/v2/_pei/workers/lease", wsec, strings.NewReader("platforms: amd64"))
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
	})
}
