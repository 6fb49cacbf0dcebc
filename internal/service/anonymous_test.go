package service

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// TestAnonymousMayOnlyPull: an anonymous-pull namespace lets anyone read
// its builds, and nothing more: submitting or canceling a build there
// still takes a token with the build scope in that namespace.
func TestAnonymousMayOnlyPull(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AnonymousPull = []string{"public"} })
	owner := h.token("owner", []string{"public"}, api.ScopeBuild)
	outsider := h.token("outsider", []string{"team-a"}, api.ScopePull, api.ScopePush, api.ScopeBuild)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	resp := h.req("POST", "/v2/public/base/_pei/builds?kind=dockerfile", owner, bytes.NewReader(good))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the namespace's own token submits: %d %s", resp.StatusCode, errorCode(t, resp))
	}
	id := decode[api.BuildView](t, resp).ID
	for _, tc := range []struct {
		name, method, path, secret string
		body                       []byte
		status                     int
	}{
		{"anonymous reads the build", "GET", "/v2/public/base/_pei/builds/" + id, "", nil, http.StatusOK},
		{"anonymous lists the builds", "GET", "/v2/public/base/_pei/builds", "", nil, http.StatusOK},
		{"anonymous submits", "POST", "/v2/public/base/_pei/builds?kind=dockerfile", "", good, http.StatusUnauthorized},
		{"anonymous cancels", "DELETE", "/v2/public/base/_pei/builds/" + id, "", nil, http.StatusUnauthorized},
		{"another tenant's build token submits", "POST", "/v2/public/base/_pei/builds?kind=dockerfile", outsider, good, http.StatusForbidden},
		{"another tenant's build token cancels", "DELETE", "/v2/public/base/_pei/builds/" + id, outsider, nil, http.StatusForbidden},
		{"another tenant's token reads the build", "GET", "/v2/public/base/_pei/builds/" + id, outsider, nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.req(tc.method, tc.path, tc.secret, bytes.NewReader(tc.body))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			resp.Body.Close()
		})
	}
	// The build is still queued: no refused cancel went through.
	if v := decode[api.BuildView](t, h.req("GET", "/v2/public/base/_pei/builds/"+id, owner, nil)); v.State != "queued" {
		t.Fatalf("build %s after refused cancels", v.State)
	}
}
