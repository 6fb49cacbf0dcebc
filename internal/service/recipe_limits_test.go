package service

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// TestRecipeLimits: a recipe over MaxRecipeBytes is refused however it
// arrives (with Content-Length, chunked, or as a recipe artifact's layer),
// and one that unpacks to more than MaxContextBytes is refused; recipes
// within the limits go through each way.
func TestRecipeLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.MaxRecipeBytes = 64 << 10
		c.Limits.MaxContextBytes = 1 << 20
		c.Limits.MaxActive = 100
	})
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	noise := make([]byte, 80<<10) // random: gzip cannot shrink it under 64 KiB
	rand.Read(noise)
	small := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	big := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": string(noise)})
	unpacksLarge := tarGz(t, map[string]string{"Dockerfile": dockerfile, "zeros": strings.Repeat("\x00", 2<<20)})
	unpacksSmaller := tarGz(t, map[string]string{"Dockerfile": dockerfile, "zeros": strings.Repeat("\x00", 512<<10)})
	if len(big) <= 64<<10 || len(unpacksLarge) >= 64<<10 {
		t.Fatalf("test recipes of %d and %d bytes do not straddle the limits", len(big), len(unpacksLarge))
	}
	// unsized hides the length, so the client sends the body chunked.
	unsized := func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }
	for _, tc := range []struct {
		name   string
		body   io.Reader
		status int
		msg    string
	}{
		{"small, with Content-Length", bytes.NewReader(small), http.StatusAccepted, ""},
		{"small, chunked", unsized(small), http.StatusAccepted, ""},
		{"over the limit, with Content-Length", bytes.NewReader(big), http.StatusRequestEntityTooLarge, "is over the limit of 65536 bytes"},
		{"over the limit, chunked", unsized(big), http.StatusRequestEntityTooLarge, "is over the limit of 65536 bytes"},
		{"unpacks within MaxContextBytes", bytes.NewReader(unpacksSmaller), http.StatusAccepted, ""},
		{"unpacks to more than MaxContextBytes", bytes.NewReader(unpacksLarge), http.StatusRequestEntityTooLarge, "unpacks to more than 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile", alice, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, errorCode(t, resp))
			}
			if tc.msg != "" {
				if msg := errorCode(t, resp); !strings.Contains(msg, tc.msg) {
					t.Fatalf("error %q does not say %q", msg, tc.msg)
				}
				return
			}
			resp.Body.Close()
		})
	}

	// A recipe artifact: its layer is in the registry already when the
	// manifest comes; the manifest is refused and queues nothing.
	for _, tc := range []struct {
		name   string
		layer  []byte
		status int
	}{
		{"artifact within the limit", small, http.StatusCreated},
		{"artifact over the limit", big, http.StatusRequestEntityTooLarge},
		{"artifact unpacking to more than MaxContextBytes", unpacksLarge, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := recipeManifest(t, h, alice, "team-a/art", tc.layer, map[string]string{api.AnnotationKind: "dockerfile"})
			resp := putManifest(t, h, alice, "team-a/art", "r", m)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			id := resp.Header.Get("Pei-Build-Id")
			resp.Body.Close()
			if (id != "") != (tc.status == http.StatusCreated) {
				t.Fatalf("status %d with build %q", tc.status, id)
			}
		})
	}
}

// TestRecipeSizeLimitIsExact: an upload of exactly MaxRecipeBytes is
// taken, one byte more is not, with or without Content-Length.
func TestRecipeSizeLimitIsExact(t *testing.T) {
	recipe := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	for _, tc := range []struct {
		name   string
		limit  int64
		status int
	}{
		{"at the limit", int64(len(recipe)), http.StatusAccepted},
		{"one byte over", int64(len(recipe)) - 1, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Limits.MaxRecipeBytes = tc.limit })
			alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
			for _, body := range []io.Reader{bytes.NewReader(recipe), io.MultiReader(bytes.NewReader(recipe))} {
				resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile", alice, body)
				if resp.StatusCode != tc.status {
					t.Fatalf("a %d-byte recipe with a limit of %d: status %d, want %d: %s", len(recipe), tc.limit, resp.StatusCode, tc.status, errorCode(t, resp))
				}
				resp.Body.Close()
			}
		})
	}
}
