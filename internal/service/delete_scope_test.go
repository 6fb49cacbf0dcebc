package service

import (
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
)

// TestDeleteNeedsAdmin: deleting a manifest takes the admin scope in its
// namespace; push and build tokens of the namespace cannot, even when the
// token they ask /token for names the delete action.
func TestDeleteNeedsAdmin(t *testing.T) {
	h := newHarness(t, nil)
	admin := h.token("admin", []string{"team-a"}, api.ScopeAdmin)
	pusher := h.token("pusher", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	otherAdmin := h.token("other admin", []string{"team-b"}, api.ScopeAdmin)
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(h.ref("team-a/app:v1"), img, auth(pusher)); err != nil {
		t.Fatal(err)
	}
	del := func(secret string) int {
		t.Helper()
		tok := decode[map[string]any](t, h.req("GET", "/token?service=pei&scope=repository:team-a/app:delete", secret, nil))["token"].(string)
		resp := h.req("DELETE", "/v2/team-a/app/manifests/"+d.String(), "", nil, "Authorization", "Bearer "+tok)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, secret string
		status       int
	}{
		{"push and build token", pusher, http.StatusUnauthorized},
		{"another namespace's admin", otherAdmin, http.StatusUnauthorized},
		{"the namespace's admin", admin, http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := del(tc.secret); got != tc.status {
				t.Fatalf("delete: status %d, want %d", got, tc.status)
			}
			_, err := remote.Head(h.ref("team-a/app@"+d.String()), auth(admin))
			if gone := err != nil; gone != (tc.status == http.StatusAccepted) {
				t.Fatalf("manifest gone=%v after a delete answered %d (%v)", gone, tc.status, err)
			}
		})
	}
}
