package service

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
)

// TestNamespaceMatchIsExact: a token for namespace "team" pulls, pushes,
// submits and lists builds in "team" and does none of it in "team-a" or
// "teams", whose names merely start the same way.
func TestNamespaceMatchIsExact(t *testing.T) {
	h := newHarness(t, nil)
	team := h.token("team", []string{"team"}, api.ScopePush, api.ScopeBuild)
	admin := h.token("admin", []string{"*"}, api.ScopeAdmin)
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	for _, tc := range []struct {
		repo string
		ok   bool
	}{
		{"team/app", true},
		{"team-a/app", false},
		{"teams/app", false},
	} {
		t.Run(tc.repo, func(t *testing.T) {
			if err := remote.Write(h.ref(tc.repo+":admin"), img, auth(admin)); err != nil {
				t.Fatalf("admin push: %v", err)
			}
			_, err := remote.Image(h.ref(tc.repo+":admin"), auth(team))
			if tc.ok != (err == nil) {
				t.Errorf("pull allowed=%v, want %v (%v)", err == nil, tc.ok, err)
			}
			err = remote.Write(h.ref(tc.repo+":team"), img, auth(team))
			if tc.ok != (err == nil) {
				t.Errorf("push allowed=%v, want %v (%v)", err == nil, tc.ok, err)
			}
			want := http.StatusForbidden
			if tc.ok {
				want = http.StatusAccepted
			}
			resp := h.req("POST", "/v2/"+tc.repo+"/_pei/builds?kind=dockerfile", team, bytes.NewReader(good))
			if resp.StatusCode != want {
				t.Errorf("submit: status %d, want %d", resp.StatusCode, want)
			}
			resp.Body.Close()
			if tc.ok {
				want = http.StatusOK
			}
			resp = h.req("GET", "/v2/"+tc.repo+"/_pei/builds", team, nil)
			if resp.StatusCode != want {
				t.Errorf("list builds: status %d, want %d", resp.StatusCode, want)
			}
			resp.Body.Close()
		})
	}
}
