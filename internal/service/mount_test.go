package service

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
)

// scopedToken gets a registry token for the given scopes from /token, as a
// registry client does after the registry's Bearer challenge.
func (h *harness) scopedToken(secret string, scopes ...string) string {
	h.t.Helper()
	q := url.Values{"service": {"pei"}, "scope": scopes}
	resp := h.req("GET", "/token?"+q.Encode(), secret, nil)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("token for %v: status %d", scopes, resp.StatusCode)
	}
	tok, _ := decode[map[string]any](h.t, resp)["token"].(string)
	if tok == "" {
		h.t.Fatalf("token for %v: empty", scopes)
	}
	return tok
}

// blobStatus HEADs a blob with a registry token.
func (h *harness) blobStatus(tok, repo string, d v1.Hash) int {
	h.t.Helper()
	resp := h.req("HEAD", "/v2/"+repo+"/blobs/"+d.String(), "", nil, "Authorization", "Bearer "+tok)
	resp.Body.Close()
	return resp.StatusCode
}

// TestCrossRepositoryMount: a blob mount (POST .../blobs/uploads/?mount=&from=)
// through the token flow a registry client uses. The owner mounts between
// her own repositories; another tenant asking to mount her blob into his
// repository does not get it.
func TestCrossRepositoryMount(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopePush)
	bob := h.token("bob", []string{"team-b"}, api.ScopePush)
	secretImg, err := random.Image(2048, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(h.ref("team-a/app:v1"), secretImg, auth(alice)); err != nil {
		t.Fatal(err)
	}
	layers, _ := secretImg.Layers()
	blob, _ := layers[0].Digest()
	// Bob has a repository of his own, so a 404 there means "no such blob",
	// not "no such repository" or "not allowed to look".
	bobImg, _ := random.Image(1024, 1)
	if err := remote.Write(h.ref("team-b/tool:v1"), bobImg, auth(bob)); err != nil {
		t.Fatal(err)
	}
	bobLayers, _ := bobImg.Layers()
	bobBlob, _ := bobLayers[0].Digest()

	mount := func(tok, to string) *http.Response {
		return h.req("POST", "/v2/"+to+"/blobs/uploads/?mount="+blob.String()+"&from=team-a/app", "", nil, "Authorization", "Bearer "+tok)
	}

	t.Run("owner mounts between her repositories", func(t *testing.T) {
		tok := h.scopedToken(alice, "repository:team-a/copy:pull,push", "repository:team-a/app:pull")
		if got := h.blobStatus(tok, "team-a/copy", blob); got != http.StatusNotFound {
			t.Fatalf("the blob is in team-a/copy before the mount: %d", got)
		}
		resp := mount(tok, "team-a/copy")
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != blob.String() {
			t.Fatalf("mount: %d %q, want 201 with the blob's digest", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
		}
		if got := h.blobStatus(tok, "team-a/copy", blob); got != http.StatusOK {
			t.Fatalf("the mounted blob is not in team-a/copy: %d", got)
		}
	})

	t.Run("another tenant does not get the blob", func(t *testing.T) {
		// Bob asks for what a client asks for a mount: push to his
		// repository and pull from the source. The token grants him
		// nothing on team-a/app.
		for _, scopes := range [][]string{
			{"repository:team-b/tool:pull,push", "repository:team-a/app:pull"},
			{"repository:team-b/tool:pull,push"}, // no source scope at all
		} {
			tok := h.scopedToken(bob, scopes...)
			if got := h.blobStatus(tok, "team-b/tool", bobBlob); got != http.StatusOK {
				t.Fatalf("control: bob cannot see his own blob in team-b/tool: %d", got)
			}
			resp := mount(tok, "team-b/tool")
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusCreated:
				t.Fatalf("bob mounted team-a's blob into team-b/tool (scopes %v)", scopes)
			case resp.StatusCode == http.StatusAccepted:
				// A registry may start a plain upload instead: then the
				// upload must not hold the blob (checked below).
			case resp.StatusCode == http.StatusUnauthorized:
				// distribution wants pull on the source for a mount; the
				// challenge says which scope was missing.
				if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, "repository:team-a/app:pull") {
					t.Fatalf("401 without an insufficient_scope challenge for team-a/app: %q", ch)
				}
			default:
				t.Fatalf("mount by another tenant: status %d, want 202 or 401", resp.StatusCode)
			}
			if got := h.blobStatus(tok, "team-b/tool", blob); got != http.StatusNotFound {
				t.Fatalf("team-a's blob is in team-b/tool after bob's mount (HEAD %d, scopes %v)", got, scopes)
			}
			if got := h.blobStatus(tok, "team-a/app", blob); got == http.StatusOK {
				t.Fatalf("bob's token reads team-a/app's blob (scopes %v)", scopes)
			}
		}
		// Bob can start uploads in his repository: the refusal above is
		// about the source, not the target.
		tok := h.scopedToken(bob, "repository:team-b/tool:pull,push")
		resp := h.req("POST", "/v2/team-b/tool/blobs/uploads/", "", nil, "Authorization", "Bearer "+tok)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("control: bob cannot start an upload in team-b/tool: %d", resp.StatusCode)
		}
	})
}
