package service

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

// registryToken gets a registry token from /token as a client does.
func (h *harness) registryToken(user, secret, scope string) string {
	h.t.Helper()
	r, _ := http.NewRequest("GET", h.ts.URL+"/token?service=pei&scope="+scope, nil)
	r.SetBasicAuth(user, secret)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		h.t.Fatalf("/token: %d %s", resp.StatusCode, errorCode(h.t, resp))
	}
	tok := decode[map[string]any](h.t, resp)["token"].(string)
	return tok
}

// bearer sends a request with a registry token and returns its status.
func (h *harness) bearer(method, path, tok string, body io.Reader, hdr ...string) int {
	h.t.Helper()
	resp := h.req(method, path, "", body, append([]string{"Authorization", "Bearer " + tok}, hdr...)...)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const manifestAccept = "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"

// tokenAccess is what one registry token can still do: pull a manifest,
// start a blob upload, read the repository's builds through pei's API.
type tokenAccess struct{ pull, upload, api int }

func (h *harness) access(tok, repo, tag string) tokenAccess {
	h.t.Helper()
	return tokenAccess{
		pull:   h.bearer("GET", "/v2/"+repo+"/manifests/"+tag, tok, nil, "Accept", manifestAccept),
		upload: h.bearer("POST", "/v2/"+repo+"/blobs/uploads/", tok, nil),
		api:    h.bearer("GET", "/v2/"+repo+"/_pei/builds", tok, nil),
	}
}

// refusedWithin polls until every access of tok is 401 and fails the test
// if that takes longer than a revocation may (liveFor, plus slack).
func (h *harness) refusedWithin(tok, repo, tag string) {
	h.t.Helper()
	start := time.Now()
	for {
		a := h.access(tok, repo, tag)
		if a == (tokenAccess{401, 401, 401}) {
			if d := time.Since(start); d > liveFor+time.Second {
				h.t.Fatalf("refused only after %s", d)
			}
			return
		}
		if time.Since(start) > liveFor+time.Second {
			h.t.Fatalf("still %+v %s after the revocation", a, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tokenID(t *testing.T, h *harness, name string) string {
	t.Helper()
	ts, err := h.srv.Store().Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range ts {
		if tok.Name == name {
			return tok.ID
		}
	}
	t.Fatalf("no token %s", name)
	return ""
}

// TestRevokedTokenStopsEverywhere: a registry token made from a pei token
// stops working at the registry and at pei's API within seconds of the
// pei token's revocation; another tenant's goes on.
func TestRevokedTokenStopsEverywhere(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	bob := h.token("bob", []string{"team-b"}, api.ScopePush, api.ScopeBuild)
	img, _ := random.Image(256, 1)
	for _, tc := range []struct{ secret, ref string }{{alice, "team-a/app:v1"}, {bob, "team-b/app:v1"}} {
		if err := remote.Write(h.ref(tc.ref), img, auth(tc.secret)); err != nil {
			t.Fatal(err)
		}
	}
	aliceTok := h.registryToken("alice", alice, "repository:team-a/app:pull,push")
	bobTok := h.registryToken("bob", bob, "repository:team-b/app:pull,push")
	if a := h.access(aliceTok, "team-a/app", "v1"); a != (tokenAccess{200, 202, 200}) {
		t.Fatalf("before the revocation: %+v", a)
	}
	if err := h.srv.Store().RevokeToken(context.Background(), tokenID(t, h, "alice")); err != nil {
		t.Fatal(err)
	}
	h.refusedWithin(aliceTok, "team-a/app", "v1")
	// The pei token itself is refused at once, at /token and the API.
	resp := h.req("GET", "/token?service=pei&scope=repository:team-a/app:pull", alice, nil)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("/token with the revoked token: %d", resp.StatusCode)
	}
	resp = h.req("GET", "/v2/team-a/app/_pei/builds", alice, nil)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("API with the revoked token: %d", resp.StatusCode)
	}
	if a := h.access(bobTok, "team-b/app", "v1"); a != (tokenAccess{200, 202, 200}) {
		t.Fatalf("another tenant's token after alice's revocation: %+v", a)
	}
}

// TestBuildCredentialsEndWithTheBuild: a registry token made from a
// build's credentials works while the build runs and stops within
// seconds of its end, at the registry and pei's API; so does one of an
// attempt whose build was handed to another worker.
func TestBuildCredentialsEndWithTheBuild(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Lease = 600 * time.Millisecond })
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)
	img, _ := random.Image(256, 1)
	if err := remote.Write(h.ref("team-a/app:v1"), img, auth(alice)); err != nil {
		t.Fatal(err)
	}
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	b := decode[api.BuildView](t, h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64", alice, bytes.NewReader(good)))
	const scope = "repository:team-a/app:pull,push"

	// Attempt 1's worker goes silent; attempt 2 runs elsewhere.
	l1 := fakeWorker{h, wsec, "one"}.lease("linux/amd64")
	if l1 == nil || l1.Build.ID != b.ID {
		t.Fatal("no lease")
	}
	tok1 := h.registryToken(l1.Username, l1.Password, scope)
	if a := h.access(tok1, "team-a/app", "v1"); a != (tokenAccess{200, 202, 200}) {
		t.Fatalf("attempt 1 while it runs: %+v", a)
	}
	w2 := fakeWorker{h, wsec, "two"}
	var l2 *api.Lease
	for end := time.Now().Add(5 * time.Second); l2 == nil && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		l2 = w2.lease("linux/amd64")
	}
	if l2 == nil || l2.Build.Attempts != 2 {
		t.Fatalf("the build was not handed on: %+v", l2)
	}
	// Attempt 2 keeps its lease (a heartbeat per third of it) until it
	// finishes.
	tok2 := h.registryToken(l2.Username, l2.Password, scope)
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
				r, _ := http.NewRequest("POST", h.ts.URL+"/v2/_pei/workers/builds/"+b.ID+"/heartbeat?worker=two", nil)
				r.SetBasicAuth("w", wsec)
				if resp, err := http.DefaultClient.Do(r); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	h.refusedWithin(tok1, "team-a/app", "v1")
	if a := h.access(tok2, "team-a/app", "v1"); a != (tokenAccess{200, 202, 200}) {
		t.Fatalf("attempt 2 while it runs: %+v", a)
	}
	d, _ := img.Digest()
	close(stop)
	<-beating
	resp := w2.post(b.ID, "finish", `{"state":"succeeded","digest":"`+d.String()+`"}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("finish: %d", resp.StatusCode)
	}
	h.refusedWithin(tok2, "team-a/app", "v1")
	resp = h.req("GET", "/token?service=pei&scope="+scope, "", nil, "Authorization", "Basic "+basic(l2.Username, l2.Password))
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("/token with an ended build's credentials: %d", resp.StatusCode)
	}
}

func basic(user, pw string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pw)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// TestForgedRegistryTokens: tokens carrying this server's signature but
// claims it never issues (no expiry, not valid yet, another audience or
// issuer, too long a life, no pei token behind them) and tokens signed by
// another key are refused at the registry and at pei's API; a token with
// the claims /token issues, signed the same way, is accepted.
func TestForgedRegistryTokens(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	img, _ := random.Image(256, 1)
	if err := remote.Write(h.ref("team-a/app:v1"), img, auth(alice)); err != nil {
		t.Fatal(err)
	}
	aliceID := tokenID(t, h, "alice")
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: otherKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", h.srv.signer.kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	at := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(now.Add(d)) }
	valid := func() claims {
		return claims{
			Claims: jwt.Claims{Issuer: issuer, Subject: "alice", Audience: jwt.Audience{service},
				Expiry: at(5 * time.Minute), NotBefore: at(-5 * time.Second), IssuedAt: at(0), ID: "x"},
			Access:     []access{{Type: "repository", Name: "team-a/app", Actions: []string{"pull", "push"}}},
			Namespaces: []string{"team-a"}, Scopes: []string{api.ScopePush, api.ScopeBuild}, TokenID: aliceID,
		}
	}
	for _, tc := range []struct {
		name   string
		mod    func(*claims)
		signer jose.Signer
		ok     bool
	}{
		{"as /token issues it", func(*claims) {}, nil, true},
		{"no exp", func(c *claims) { c.Expiry = nil }, nil, false},
		{"expired", func(c *claims) { c.Expiry = at(-time.Second) }, nil, false},
		{"nbf in the future", func(c *claims) { c.NotBefore = at(20 * time.Second) }, nil, false},
		{"iat in the future", func(c *claims) { c.IssuedAt = at(time.Minute) }, nil, false},
		{"no iat", func(c *claims) { c.IssuedAt = nil }, nil, false},
		{"a day long", func(c *claims) { c.Expiry = at(24 * time.Hour) }, nil, false},
		{"foreign audience", func(c *claims) { c.Audience = jwt.Audience{"other-registry"} }, nil, false},
		{"no audience", func(c *claims) { c.Audience = nil }, nil, false},
		{"foreign issuer", func(c *claims) { c.Issuer = "someone-else" }, nil, false},
		{"no pei token behind it", func(c *claims) { c.TokenID = "" }, nil, false},
		{"an unknown pei token", func(c *claims) { c.TokenID = "t-000000000000000000000000" }, nil, false},
		{"a build that does not exist", func(c *claims) { c.TokenID, c.Build = "", "b-000000000000000000000000.1" }, nil, false},
		{"another key", func(*claims) {}, otherSigner, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mod(&c)
			sig := tc.signer
			if sig == nil {
				sig = h.srv.signer.sign
			}
			raw, err := jwt.Signed(sig).Claims(c).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			a := h.access(raw, "team-a/app", "v1")
			want := tokenAccess{401, 401, 401}
			if tc.ok {
				want = tokenAccess{200, 202, 200}
			}
			if a != want {
				t.Fatalf("%+v, want %+v", a, want)
			}
		})
	}
}

// TestTokenEndpointRateLimit: /token answers 429 with Retry-After past
// the rate, per token (another token goes on); failed logins from an
// address hold that address back.
func TestTokenEndpointRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.RequestsPerSec = 1
		c.Limits.Burst = 3
	})
	alice := h.token("alice", []string{"team-a"}, api.ScopePull)
	bob := h.token("bob", []string{"team-b"}, api.ScopePull)
	get := func(secret string) *http.Response {
		return h.req("GET", "/token?service=pei&scope=repository:team-a/app:pull", secret, nil)
	}
	codes := map[int]int{}
	for i := 0; i < 6; i++ {
		resp := get(alice)
		codes[resp.StatusCode]++
		if resp.StatusCode == 429 {
			if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Errorf("429 with Retry-After %q", ra)
			}
			if msg := errorCode(t, resp); !strings.Contains(msg, "TOOMANYREQUESTS") {
				t.Errorf("429 body %q", msg)
			}
			continue
		}
		resp.Body.Close()
	}
	if codes[200] < 3 || codes[429] < 2 || codes[200]+codes[429] != 6 {
		t.Fatalf("6 quick /token requests at 1/s with burst 3: %v", codes)
	}
	resp := get(bob)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("another token was held back by alice's rate: %d", resp.StatusCode)
	}
	// Guesses: each a different secret, so only the address's failures
	// add up.
	codes = map[int]int{}
	for i := 0; i < 6; i++ {
		resp := get("pei_guess" + strings.Repeat("x", i))
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[401] < 3 || codes[429] < 2 {
		t.Fatalf("6 quick guesses: %v", codes)
	}
	resp = get(bob)
	resp.Body.Close()
	if resp.StatusCode != 429 {
		t.Fatalf("a real token from the guessing address right after: %d, want 429", resp.StatusCode)
	}
}

// TestNoBasicChallenge: a 401 from pei's API challenges with Bearer,
// never Basic (a browser would ask for a password and keep sending it).
func TestNoBasicChallenge(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct{ method, path, secret string }{
		{"GET", "/v2/team-a/app/_pei/builds", ""},
		{"GET", "/v2/team-a/app/_pei/builds", "pei_wrong"},
		{"POST", "/v2/team-a/app/_pei/builds", ""},
		{"GET", "/v2/_pei/builds", "pei_wrong"},
		{"GET", "/v2/_pei/repositories", "pei_wrong"},
		{"POST", "/v2/_pei/workers/lease", ""},
		{"GET", "/v2/_catalog", ""},
		{"GET", "/v2/", ""},
		{"GET", "/token?service=pei", "pei_wrong"},
	} {
		resp := h.req(tc.method, tc.path, tc.secret, nil)
		resp.Body.Close()
		ch := resp.Header.Values("WWW-Authenticate")
		if resp.StatusCode != 401 {
			t.Errorf("%s %s: %d, want 401", tc.method, tc.path, resp.StatusCode)
		}
		for _, c := range ch {
			if !strings.HasPrefix(c, "Bearer ") {
				t.Errorf("%s %s: challenge %q", tc.method, tc.path, c)
			}
		}
		if tc.path != "/token?service=pei" && len(ch) == 0 {
			t.Errorf("%s %s: 401 without a challenge", tc.method, tc.path)
		}
	}
}

// TestLiveCacheBounded: the liveness cache forgets what has run out once
// it is large.
func TestLiveCacheBounded(t *testing.T) {
	h := newHarness(t, nil)
	now := time.Now()
	h.srv.liveness.mu.Lock()
	for i := 0; i < 10001; i++ {
		h.srv.liveness.m[store.NewID("old-")] = liveEntry{until: now.Add(-time.Second)}
	}
	h.srv.liveness.mu.Unlock()
	c := &claims{Claims: jwt.Claims{Subject: "x"}, TokenID: "t-none"}
	if err := h.srv.live(context.Background(), c); err == nil {
		t.Fatal("an unknown token is live")
	}
	if n := len(h.srv.liveness.m); n != 1 {
		t.Fatalf("%d entries after a clean-up, want 1", n)
	}
}
