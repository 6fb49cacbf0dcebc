package service

import (
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestBuildTokenPushesRecipeArtifacts: a token with the build scope alone
// pushes a recipe artifact (its blobs and its manifest) in its namespace,
// which queues a build, as docs/serve.md says; it may not put an image
// there (that is the push scope's) nor push anything in another namespace.
func TestBuildTokenPushesRecipeArtifacts(t *testing.T) {
	h := newHarness(t, nil)
	builder := h.token("builder", []string{"team-a"}, ScopeBuild)
	alice := h.token("alice", []string{"team-a"}, ScopePush, ScopeBuild)
	admin := h.token("admin", []string{"*"}, ScopeAdmin)
	layer := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	ann := map[string]string{AnnotationKind: "dockerfile", AnnotationTag: "v3", AnnotationPlatform: "linux/amd64"}

	// recipeManifest uploads the blobs with the given token: it fails the
	// test if the build token may not.
	m := recipeManifest(t, h, builder, "team-a/app", layer, ann)
	resp := putManifest(t, h, builder, "team-a/app", "recipe", m)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Pei-Build-Id") == "" {
		t.Fatalf("build token's recipe artifact: %d %s", resp.StatusCode, errorCode(t, resp))
	}
	resp.Body.Close()
	v := decode[BuildView](t, h.req("GET", "/v2/team-a/app/_pei/builds/"+resp.Header.Get("Pei-Build-Id"), builder, nil))
	if v.Tag != "v3" || v.Submitter != "builder" {
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
	// Nor a recipe in another namespace: its blob upload is refused.
	tok := h.registryToken("builder", builder, "repository:team-b/app:pull,push")
	if code := h.bearer("POST", "/v2/team-b/app/blobs/uploads/", tok, nil); code != 401 {
		t.Fatalf("build token started an upload in team-b: %d", code)
	}
}
