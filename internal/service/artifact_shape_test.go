package service

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
)

// TestRecipeArtifactShape: a recipe artifact has exactly one layer, of the
// recipe media type, and a layer of exactly MaxRecipeBytes is within the
// limit; anything else is refused before a build is queued.
func TestRecipeArtifactShape(t *testing.T) {
	recipe := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	h := newHarness(t, func(c *Config) { c.Limits.MaxRecipeBytes = int64(len(recipe)) })
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	good := recipeManifest(t, h, alice, "team-a/app", recipe, map[string]string{api.AnnotationKind: "dockerfile"})
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	layer := m["layers"].([]any)[0].(map[string]any)
	// A second blob for the two-layer artifact.
	extra := tarGz(t, map[string]string{"other": "x"})
	eh, esize, _ := v1.SHA256(bytes.NewReader(extra))
	if err := remote.WriteLayer(h.ref("team-a/app:unused").Context(), staticLayer{extra, eh}, auth(alice)); err != nil {
		t.Fatal(err)
	}
	with := func(layers ...map[string]any) []byte {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		var ls []any
		for _, l := range layers {
			ls = append(ls, l)
		}
		c["layers"] = ls
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wrongType := map[string]any{}
	for k, v := range layer {
		wrongType[k] = v
	}
	wrongType["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
	second := map[string]any{"mediaType": layer["mediaType"], "digest": eh.String(), "size": esize}
	for _, tc := range []struct {
		name     string
		manifest []byte
		status   int
	}{
		{"two recipe layers", with(layer, second), http.StatusBadRequest},
		{"one layer of another type", with(wrongType), http.StatusBadRequest},
		{"no layer", with(), http.StatusBadRequest},
		{"one recipe layer of exactly MaxRecipeBytes", good, http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := putManifest(t, h, alice, "team-a/app", "r", tc.manifest)
			id := resp.Header.Get("Pei-Build-Id")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, errorCode(t, resp))
			}
			resp.Body.Close()
			if (id != "") != (tc.status == http.StatusCreated) {
				t.Fatalf("status %d with build %q", resp.StatusCode, id)
			}
		})
	}
}
