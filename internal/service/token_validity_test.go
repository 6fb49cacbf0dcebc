package service

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/pei-dev/pei/internal/api"
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
	h.token("alice", ns, api.ScopePull, api.ScopeBuild)
	aliceID := tokenID(t, h, "alice")
	// signed makes a token with this server's key and the claims given.
	signed := func(c jwt.Claims) string {
		t.Helper()
		raw, err := jwt.Signed(h.srv.signer.sign).Claims(claims{Claims: c, Access: acc, Namespaces: ns, Scopes: []string{api.ScopePull, api.ScopeBuild}, TokenID: aliceID}).Serialize()
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
		raw, err := s.issue(claims{Claims: jwt.Claims{Subject: "alice"}, Access: acc, Namespaces: ns, Scopes: []string{api.ScopePull, api.ScopeBuild}, TokenID: aliceID}, ttl)
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

// TestTokenResponse: /token's tokens last 15 minutes and say so; a POST
// with a password (OAuth2) gets it back as the refresh token, a GET does
// not, and neither does an anonymous POST.
func TestTokenResponse(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopePush)
	for _, tc := range []struct {
		name, method, secret string
		refresh              bool
	}{
		{"GET with Basic auth", "GET", alice, false},
		{"POST password grant", "POST", alice, true},
		{"anonymous POST", "POST", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			if tc.method == "GET" {
				resp = h.req("GET", "/token?service=pei&scope=repository:team-a/app:pull", tc.secret, nil)
			} else {
				form := url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {tc.secret}, "service": {"pei"}, "scope": {"repository:team-a/app:pull"}}
				resp = h.req("POST", "/token", "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, errorCode(t, resp))
			}
			body := decode[map[string]any](t, resp)
			if body["expires_in"] != float64(900) {
				t.Errorf("expires_in %v, want 900", body["expires_in"])
			}
			c, err := h.srv.signer.verify(body["access_token"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life != 15*time.Minute {
				t.Errorf("token lives %s, want 15m", life)
			}
			if got, ok := body["refresh_token"]; ok != tc.refresh || (ok && got != tc.secret) {
				t.Errorf("refresh_token %v (present %v), want present %v", got, ok, tc.refresh)
			}
		})
	}
}
