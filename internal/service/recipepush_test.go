package service

import (
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
)

// TestRecipeArtifactScopes: pushing a recipe artifact takes the push scope
// (its blobs and manifest) and the build scope (the build it queues); a
// build token alone pushes nothing, neither a recipe nor an image, in its
// namespace or another.
func TestRecipeArtifactScopes(t *testing.T) {
	h := newHarness(t, nil)
	builder := h.token("builder", []string{"team-a"}, api.ScopeBuild)
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	admin := h.token("admin", []string{"*"}, api.ScopeAdmin)
	layer := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	ann := map[string]string{api.AnnotationKind: "dockerfile", api.AnnotationTag: "v3", api.AnnotationPlatform: "linux/amd64"}

	m := recipeManifest(t, h, alice, "team-a/app", layer, ann)
	resp := putManifest(t, h, alice, "team-a/app", "recipe", m)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Pei-Build-Id") == "" {
		t.Fatalf("push+build token's recipe artifact: %d %s", resp.StatusCode, errorCode(t, resp))
	}
	resp.Body.Close()
	v := decode[api.BuildView](t, h.req("GET", "/v2/team-a/app/_pei/builds/"+resp.Header.Get("Pei-Build-Id"), alice, nil))
	if v.Tag != "v3" || v.Submitter != "alice" {
		t.Fatalf("build %+v", v)
	}

	img, _ := random.Image(256, 1)
	for _, tc := range []struct {
		name, secret, ref string
		ok                bool
	}{
		{"push token puts an image", alice, "team-a/app:img", true},
		{"build token puts no image", builder, "team-a/app:img2", false},
		{"build token pushes nothing in another namespace", builder, "team-b/app:img", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := remote.Write(h.ref(tc.ref), img, auth(tc.secret))
			if tc.ok != (err == nil) {
				t.Fatalf("pushed=%v, want %v (%v)", err == nil, tc.ok, err)
			}
			_, err = remote.Head(h.ref(tc.ref), auth(admin))
			if tc.ok != (err == nil) {
				t.Fatalf("the tag exists=%v, want %v", err == nil, tc.ok)
			}
		})
	}
	// A build token's registry token has no push, so not even a recipe's
	// blobs go up, in its namespace or another; alice's does (control).
	for _, tc := range []struct {
		user, secret, repo string
		want               int
	}{
		{"alice", alice, "team-a/app", http.StatusAccepted},
		{"builder", builder, "team-a/app", http.StatusUnauthorized},
		{"builder", builder, "team-b/app", http.StatusUnauthorized},
	} {
		tok := h.registryToken(tc.user, tc.secret, "repository:"+tc.repo+":pull,push")
		if code := h.bearer("POST", "/v2/"+tc.repo+"/blobs/uploads/", tok, nil); code != tc.want {
			t.Errorf("%s starting an upload in %s: %d, want %d", tc.user, tc.repo, code, tc.want)
		}
	}
}
