package service

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// TestBuildAccess: who may read, list and cancel which builds, with pei
// tokens (Basic) and with registry tokens from /token (Bearer). A token's
// scopes hold in its namespaces (docs/serve.md), so a tenant reads the
// builds of every repository of its namespace and of no other; a build's
// credentials and tokens made for one repository reach nothing else.
func TestBuildAccess(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AnonymousPull = []string{"public"} })
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	reader := h.token("reader", []string{"team-a"}, api.ScopePull)
	bob := h.token("bob", []string{"team-b"}, api.ScopePush, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	submit := func(secret, repo, platform string) api.BuildView {
		t.Helper()
		resp := h.req("POST", "/v2/"+repo+"/_pei/builds?kind=dockerfile&platform="+platform, secret, bytes.NewReader(good))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit to %s: %d %s", repo, resp.StatusCode, errorCode(t, resp))
		}
		return decode[api.BuildView](t, resp)
	}
	// A running build in team-a/job gives build credentials; the build
	// under test (team-a/app) and bob's stay queued (no worker for s390x).
	job := submit(alice, "team-a/job", "linux/amd64")
	l := fakeWorker{h, wsec, "w"}.lease("linux/amd64")
	if l == nil || l.Build.ID != job.ID {
		t.Fatalf("lease: %+v", l)
	}
	app := submit(alice, "team-a/app", "linux/s390x")
	bobs := submit(bob, "team-b/x", "linux/s390x")

	basic := func(secret string) []string {
		return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+secret))}
	}
	bearer := func(secret string, scopes ...string) []string {
		return []string{"Authorization", "Bearer " + h.scopedToken(secret, scopes...)}
	}
	type caller struct {
		name string
		hdr  []string
		// read: status, logs, list of team-a/app; cancel: cancel there.
		read, cancel bool
	}
	callers := []caller{
		{"owner (pei token)", basic(alice), true, true},
		{"owner (registry token for that repository)", bearer(alice, "repository:team-a/app:pull,build"), true, true},
		{"owner (registry token for another repository of her namespace)", bearer(alice, "repository:team-a/other:pull,build"), true, true},
		{"pull-only token of the namespace", basic(reader), true, false},
		{"pull-only registry token of the namespace", bearer(reader, "repository:team-a/app:pull,build"), true, false},
		{"other tenant (pei token)", basic(bob), false, false},
		{"other tenant (registry token for his repository)", bearer(bob, "repository:team-b/x:pull,build"), false, false},
		{"other tenant (registry token naming team-a/app)", bearer(bob, "repository:team-a/app:pull,build"), false, false},
		{"another build's credentials, same namespace", bearer(l.Password, "repository:team-a/job:pull,push"), false, false},
		{"anonymous registry token of a public namespace", bearer("", "repository:public/base:pull"), false, false},
	}
	do := func(method, path string, hdr []string) (int, []byte) {
		t.Helper()
		resp := h.req(method, path, "", nil, hdr...)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	refused := func(code int) bool { return code == http.StatusForbidden || code == http.StatusUnauthorized }
	state := func(id, repo string) api.State {
		t.Helper()
		return decode[api.BuildView](t, h.req("GET", "/v2/"+repo+"/_pei/builds/"+id, alice, nil)).State
	}

	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			base := "/v2/team-a/app/_pei/builds"
			for _, ep := range []struct{ what, path string }{
				{"status", base + "/" + app.ID},
				{"logs", base + "/" + app.ID + "/logs"},
				{"list", base},
			} {
				code, body := do("GET", ep.path, c.hdr)
				switch {
				case c.read && code != http.StatusOK:
					t.Errorf("%s: %d, want 200: %s", ep.what, code, body)
				case c.read && ep.what == "list" && !bytes.Contains(body, []byte(app.ID)):
					t.Errorf("list does not show %s: %s", app.ID, body)
				case !c.read && !refused(code):
					t.Errorf("%s: %d, want 401 or 403: %s", ep.what, code, body)
				case !c.read && bytes.Contains(body, []byte(app.ID)):
					t.Errorf("%s of a refused caller names the build: %s", ep.what, body)
				}
			}
			if c.cancel {
				return // tried last, below: it ends the build
			}
			code, body := do("DELETE", base+"/"+app.ID, c.hdr)
			if !refused(code) {
				t.Errorf("cancel: %d, want 401 or 403: %s", code, body)
			}
			if s := state(app.ID, "team-a/app"); s != api.Queued {
				t.Errorf("the build is %s after a refused cancel", s)
			}
		})
	}

	t.Run("a build id under another repository of the namespace is not found", func(t *testing.T) {
		for _, method := range []string{"GET", "DELETE"} {
			if code, body := do(method, "/v2/team-a/other/_pei/builds/"+app.ID, basic(alice)); code != http.StatusNotFound {
				t.Errorf("%s team-a/other/…/%s: %d, want 404: %s", method, app.ID, code, body)
			}
		}
		if code, body := do("GET", "/v2/team-a/other/_pei/builds/"+app.ID+"/logs", basic(alice)); code != http.StatusNotFound {
			t.Errorf("logs through team-a/other: %d, want 404: %s", code, body)
		}
		if code, body := do("GET", "/v2/team-b/x/_pei/builds/"+app.ID, basic(bob)); code != http.StatusNotFound {
			t.Errorf("bob reading team-a's build id through his repository: %d, want 404: %s", code, body)
		}
	})

	t.Run("the build's credentials read their own build", func(t *testing.T) {
		code, body := do("GET", "/v2/team-a/job/_pei/builds/"+job.ID, bearer(l.Password, "repository:team-a/job:pull,push"))
		if code != http.StatusOK || !bytes.Contains(body, []byte(job.ID)) {
			t.Errorf("status of its own build: %d %s", code, body)
		}
	})

	t.Run("list across namespaces", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			hdr         []string
			see, notSee []string
			status      int
		}{
			{"alice", basic(alice), []string{app.ID, job.ID}, []string{bobs.ID}, 200},
			{"bob", basic(bob), []string{bobs.ID}, []string{app.ID, job.ID}, 200},
			{"bob's registry token", bearer(bob, "repository:team-b/x:pull"), []string{bobs.ID}, []string{app.ID, job.ID}, 200},
			// Only the anonymous namespaces: nothing of team-a, not even its own build.
			{"build credentials", bearer(l.Password, "repository:team-a/job:pull,push"), nil, []string{app.ID, job.ID, bobs.ID}, 200},
		} {
			code, body := do("GET", "/v2/_pei/builds", tc.hdr)
			if code != tc.status {
				t.Errorf("%s: %d, want %d: %s", tc.name, code, tc.status, body)
			}
			for _, id := range tc.see {
				if !bytes.Contains(body, []byte(id)) {
					t.Errorf("%s does not see %s", tc.name, id)
				}
			}
			for _, id := range tc.notSee {
				if bytes.Contains(body, []byte(id)) {
					t.Errorf("%s sees %s", tc.name, id)
				}
			}
		}
	})

	// Last: each caller allowed to cancel does, on a build of its own.
	for _, c := range callers {
		if !c.cancel {
			continue
		}
		t.Run("cancel by "+c.name, func(t *testing.T) {
			b := submit(alice, "team-a/app", "linux/s390x")
			code, body := do("DELETE", "/v2/team-a/app/_pei/builds/"+b.ID, c.hdr)
			if code != http.StatusAccepted {
				t.Fatalf("cancel: %d, want 202: %s", code, body)
			}
			if s := state(b.ID, "team-a/app"); s != api.Canceled {
				t.Fatalf("the build is %s after cancel", s)
			}
		})
	}
}
