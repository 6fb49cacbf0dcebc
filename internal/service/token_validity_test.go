package service

import (
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestRegistryTokenValidity: pei's own endpoints take a registry token
// (Bearer) only when this server signed it, for this service, and it has
// not expired; the same access in a token failing any of these is refused.
func TestRegistryTokenValidity(t *testing.T) {
	h := newHarness(t, nil)
	other, _, err := loadSigner(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	acc := []access{{Type: "repository", Name: "team-a/app", Actions: []string{"pull", "build"}}}
	ns := []string{"team-a"}
	// Registry tokens stand for a live pei token (revocation is checked on
	// every request): alice's.
	h.token("alice", ns, ScopePull, ScopeBuild)
	aliceID := tokenID(t, h, "alice")
	// signed makes a token with this server's key and the claims given.
	signed := func(c jwt.Claims) string {
		t.Helper()
		raw, err := jwt.Signed(h.srv.signer.sign).Claims(claims{Claims: c, Access: acc, Namespaces: ns, Scopes: []string{ScopePull, ScopeBuild}, TokenID: aliceID}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	now := time.Now()
	valid := jwt.Claims{Issuer: issuer, Subject: "alice", Audience: jwt.Audience{service},
		Expiry: jwt.NewNumericDate(now.Add(time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), IssuedAt: jwt.NewNumericDate(now)}
	with := func(f func(*jwt.Claims)) string {
		c := valid
		f(&c)
		return signed(c)
	}
	issued := func(s *signer, ttl time.Duration) string {
		t.Helper()
		raw, err := s.issue(claims{Claims: jwt.Claims{Subject: "alice"}, Access: acc, Namespaces: ns, Scopes: []string{ScopePull, ScopeBuild}, TokenID: aliceID}, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// HS256 with a key an attacker picks: only ES256 is taken.
	guessed := func() string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("a guessed secret key of 32 bytes")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jwt.Signed(sig).Claims(claims{Claims: valid, Access: acc, Namespaces: ns, TokenID: aliceID}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"issued by /token's signer", issued(h.srv.signer, time.Minute), http.StatusOK},
		{"valid claims", signed(valid), http.StatusOK},
		{"expired an hour ago", issued(h.srv.signer, -time.Hour), http.StatusUnauthorized},
		{"not valid for another hour", with(func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }), http.StatusUnauthorized},
		{"another issuer", with(func(c *jwt.Claims) { c.Issuer = "someone-else" }), http.StatusUnauthorized},
		{"another audience", with(func(c *jwt.Claims) { c.Audience = jwt.Audience{"another-registry"} }), http.StatusUnauthorized},
		{"signed with another server's key", issued(other, time.Minute), http.StatusUnauthorized},
		{"HMAC-signed with a guessed key", guessed(), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.req("GET", "/v2/team-a/app/_pei/builds", "", nil, "Authorization", "Bearer "+tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, errorCode(t, resp))
			}
			resp.Body.Close()
		})
	}
}
