package service

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// TestBuildListLength: n= caps a build list, per repository and across
// namespaces; without it the whole (short) list comes.
func TestBuildListLength(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	for range 3 {
		resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile", alice, bytes.NewReader(good))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit: %d %s", resp.StatusCode, errorCode(t, resp))
		}
		resp.Body.Close()
	}
	for _, path := range []string{"/v2/team-a/app/_pei/builds", "/v2/_pei/builds"} {
		for _, tc := range []struct {
			query string
			want  int
		}{
			{"", 3},
			{"?n=1", 1},
			{"?n=2", 2},
		} {
			list := decode[struct {
				Builds []api.BuildView `json:"builds"`
			}](t, h.req("GET", path+tc.query, alice, nil))
			if len(list.Builds) != tc.want {
				t.Errorf("%s%s: %d builds, want %d", path, tc.query, len(list.Builds), tc.want)
				continue
			}
			for _, b := range list.Builds {
				if b.Repository != "team-a/app" {
					t.Errorf("%s%s lists %s of %s", path, tc.query, b.ID, b.Repository)
				}
			}
		}
	}
}
