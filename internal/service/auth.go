package service

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

// issuer names pei serve in the tokens it signs; service is the audience
// the registry accepts (the "service" of the Docker token flow).
const (
	issuer  = "pei-serve"
	service = "pei"
)

// signer signs registry tokens with the server's key, kept in the data
// directory so tokens survive a restart and replicas sharing the
// directory accept each other's tokens.
type signer struct {
	key  *ecdsa.PrivateKey
	kid  string
	sign jose.Signer
}

func loadSigner(dir string) (*signer, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	keyFile := filepath.Join(dir, "signing-key.pem")
	var key *ecdsa.PrivateKey
	data, err := os.ReadFile(keyFile)
	switch {
	case err == nil:
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, "", fmt.Errorf("%s: not a PEM file; remove it to make a new key", keyFile)
		}
		if key, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
			return nil, "", fmt.Errorf("%s: %w", keyFile, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, "", err
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, "", err
		}
		if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, "", err
		}
	default:
		return nil, "", err
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "", err
	}
	pub.KeyID = fmt.Sprintf("%x", thumb)
	js, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, "", err
	}
	jwks := filepath.Join(dir, "jwks.json")
	if err := writeFileAtomic(jwks, js, 0o600); err != nil {
		return nil, "", err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", pub.KeyID))
	if err != nil {
		return nil, "", err
	}
	return &signer{key: key, kid: pub.KeyID, sign: sig}, jwks, nil
}

// access is one entry of a token's "access" claim (the Docker token
// format distribution's token auth reads).
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type claims struct {
	jwt.Claims
	Access []access `json:"access"`
	// Namespaces the token may see, for the catalog and pei's own
	// endpoints; not read by the registry.
	Namespaces []string `json:"pei_ns,omitempty"`
	Scopes     []string `json:"pei_scopes,omitempty"`
	// TokenID is the pei API token the registry token was made from, and
	// Build the build and attempt ("b-....3") of build credentials: each
	// request checks that what they stand for is still live.
	TokenID string `json:"pei_tid,omitempty"`
	Build   string `json:"pei_build,omitempty"`
}

// Registry tokens live registryTTL at most; clockSkew is what replicas'
// clocks may differ by.
const (
	registryTTL = 15 * time.Minute
	clockSkew   = 5 * time.Second
)

// issue signs c (its access, namespaces, scopes and what it stands for)
// as a registry token valid for ttl.
func (s *signer) issue(c claims, ttl time.Duration) (string, error) {
	now := time.Now()
	c.Claims = jwt.Claims{
		Issuer:   issuer,
		Subject:  c.Subject,
		Audience: jwt.Audience{service},
		Expiry:   jwt.NewNumericDate(now.Add(ttl)),
		// A replica whose clock is a little behind accepts it at once.
		NotBefore: jwt.NewNumericDate(now.Add(-clockSkew)),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        store.NewID(""),
	}
	if c.Access == nil {
		c.Access = []access{}
	}
	return jwt.Signed(s.sign).Claims(c).Serialize()
}

// verify checks a registry token's signature and claims: this server's
// issuer and audience, an expiry (a token without one would never end),
// not before its nbf, and no longer-lived than pei issues.
func (s *signer) verify(raw string) (*claims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	var c claims
	if err := tok.Claims(&s.key.PublicKey, &c); err != nil {
		return nil, fmt.Errorf("token signature: %w", err)
	}
	if err := c.check(time.Now()); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *claims) check(now time.Time) error {
	switch {
	case c.Issuer != issuer:
		return fmt.Errorf("token issued by %q, not %q", c.Issuer, issuer)
	case !c.Audience.Contains(service):
		return fmt.Errorf("token for %q, not %q", strings.Join(c.Audience, ","), service)
	case c.Expiry == nil:
		return errors.New("token has no expiry (exp)")
	case !now.Before(c.Expiry.Time()):
		return errors.New("token has expired")
	case c.NotBefore != nil && now.Before(c.NotBefore.Time()):
		return errors.New("token is not valid yet (nbf)")
	case c.IssuedAt == nil || c.IssuedAt.Time().After(now.Add(clockSkew)):
		return errors.New("token has no or a future issue time (iat)")
	case c.Expiry.Time().Sub(c.IssuedAt.Time()) > registryTTL:
		return errors.New("token lives longer than this server issues")
	}
	return nil
}

// can reports whether the claims grant action on a repository.
func (c *claims) can(repo, action string) bool {
	for _, a := range c.Access {
		if a.Type == "repository" && a.Name == repo && (slices.Contains(a.Actions, action) || slices.Contains(a.Actions, "*")) {
			return true
		}
	}
	return false
}

func inNamespaces(namespaces []string, ns string) bool {
	return slices.Contains(namespaces, "*") || slices.Contains(namespaces, ns)
}

// grant returns the actions a token (nil: anonymous) gets on a repository.
// In the shared catalog's namespace every token with a namespace may pull
// and only its admin tokens may do more: what a tenant's runtime takes
// from there is the admins' alone.
func (s *Server) grant(t *store.Token, repo string, want []string) []string {
	var have []string
	ns := api.Namespace(repo)
	// What anyone may pull, a token may pull too (docker sends its
	// credentials to every repository of a registry it is logged in to).
	if inNamespaces(s.cfg.AnonymousPull, ns) {
		have = []string{"pull"}
	}
	shared := s.shared(ns)
	if t != nil && shared && len(t.Namespaces) > 0 {
		have = append(have, "pull")
	}
	if t != nil && inNamespaces(t.Namespaces, ns) {
		for _, sc := range t.Scopes {
			switch {
			case sc == api.ScopePull:
				have = append(have, "pull")
			case sc == api.ScopePush && !shared:
				have = append(have, "pull", "push")
			case sc == api.ScopeBuild && !shared:
				have = append(have, "pull", "build")
			case sc == api.ScopeAdmin:
				have = append(have, "pull", "push", "build", "delete", "*")
			}
		}
	}
	return granted(want, have)
}

// pushesImages reports whether a registry caller may put manifests other
// than recipe artifacts in repo: a push or admin token there, or build
// credentials (grantJob gave them push on their own repositories only).
func (s *Server) pushesImages(c *claims, repo string) bool {
	if c == nil || !c.can(repo, "push") {
		return false
	}
	if c.Build != "" {
		return true
	}
	t := store.Token{Namespaces: c.Namespaces, Scopes: c.Scopes}
	return len(s.grant(&t, repo, []string{"push"})) > 0
}

// grantJob returns the actions a build's credentials get: pull in the
// submitter's namespace (bases, caches), anonymous ones and the shared
// catalog's, push to the build's repository and its build cache only.
func (s *Server) grantJob(b store.Build, repo string, want []string) []string {
	var have []string
	if ns := api.Namespace(repo); ns == b.Namespace || inNamespaces(s.cfg.AnonymousPull, ns) || s.shared(ns) {
		have = append(have, "pull")
	}
	if repo == b.Repo || repo == api.CacheRepo(b.Repo) {
		have = append(have, "push")
	}
	return granted(want, have)
}

// granted is the actions of want that have allows, each once.
func granted(want, have []string) []string {
	var out []string
	for _, w := range want {
		if slices.Contains(have, w) && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// tokenHandler is the Docker token endpoint (GET with Basic auth, or the
// OAuth2 password/refresh-token POST): docker login, skopeo, crane and
// BuildKit all get their registry tokens here. The password is a pei API
// token; the user name is free.
func (s *Server) tokenHandler(w http.ResponseWriter, r *http.Request) {
	var secret string
	var scopes []string
	switch r.Method {
	case http.MethodGet:
		if _, pw, ok := r.BasicAuth(); ok {
			secret = pw
		}
		scopes = r.URL.Query()["scope"]
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "UNSUPPORTED", "token request: "+err.Error(), nil)
			return
		}
		switch r.PostForm.Get("grant_type") {
		case "password":
			secret = r.PostForm.Get("password")
		case "refresh_token":
			secret = r.PostForm.Get("refresh_token")
		default:
			writeError(w, http.StatusBadRequest, "UNSUPPORTED", "grant_type must be password or refresh_token", nil)
			return
		}
		scopes = strings.Fields(r.PostForm.Get("scope"))
	default:
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "use GET or POST", nil)
		return
	}
	if !s.tokenRateOK(w, r, secret) {
		return
	}
	var tok *store.Token
	var job *store.Build
	if strings.HasPrefix(secret, "job.") {
		b, ok := s.jobBuild(r, secret)
		if !ok {
			s.tokenLimiter.allow(failKey(r)) // guesses cost the caller's address
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "build credentials are not valid (the build is no longer running on this lease)", nil)
			return
		}
		job = &b
	} else if secret != "" {
		t, err := s.store.TokenBySecret(r.Context(), secret)
		if err != nil {
			s.tokenLimiter.allow(failKey(r))
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "unknown, revoked or expired token: create one with pei token create", nil)
			return
		}
		tok = &t
	}
	var acc []access
	for _, sc := range scopes {
		for _, one := range strings.Fields(sc) {
			a, ok := parseScope(one)
			if !ok {
				continue
			}
			switch {
			case a.Type == "repository" && job != nil:
				a.Actions = s.grantJob(*job, a.Name, a.Actions)
			case a.Type == "repository":
				a.Actions = s.grant(tok, a.Name, a.Actions)
			case a.Type == "registry" && a.Name == "catalog":
				// Everyone may ask; the catalog lists only the caller's
				// namespaces.
				a.Actions = []string{"*"}
			default:
				a.Actions = nil
			}
			acc = append(acc, a)
		}
	}
	c := claims{Claims: jwt.Claims{Subject: "anonymous"}, Access: acc, Namespaces: s.cfg.AnonymousPull}
	ttl := registryTTL
	if tok != nil {
		c.Subject, c.Namespaces, c.Scopes, c.TokenID = tok.Name, tok.Namespaces, tok.Scopes, tok.ID
		// The registry token ends with the pei token at the latest.
		if !tok.Expires.IsZero() {
			ttl = min(ttl, time.Until(tok.Expires))
		}
	}
	if job != nil {
		c.Subject, c.Namespaces, c.Build = "build "+job.ID, nil, job.ID+"."+strconv.Itoa(job.Attempts)
	}
	raw, err := s.signer.issue(c, ttl)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	resp := map[string]any{
		"token":        raw,
		"access_token": raw,
		"expires_in":   max(int(ttl/time.Second), 1),
		"issued_at":    time.Now().UTC().Format(time.RFC3339),
	}
	if r.Method == http.MethodPost && secret != "" {
		resp["refresh_token"] = secret
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseScope reads "repository:team-a/app:pull,push"; the name may hold
// a port-like colon only in the registry type, so the actions are after
// the last colon.
func parseScope(s string) (access, bool) {
	typ, rest, ok := strings.Cut(s, ":")
	if !ok {
		return access{}, false
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return access{}, false
	}
	name, actions := rest[:i], rest[i+1:]
	if name == "" {
		return access{}, false
	}
	return access{Type: typ, Name: name, Actions: strings.Split(actions, ",")}, true
}

// caller authenticates a request to pei's own endpoints: a registry token
// from /token (Bearer) or a pei API token (Basic, password = the token).
// A registry token is checked against what it stands for (its pei token
// not revoked or expired, its build still running on that attempt).
// nil claims and nil error is an anonymous caller.
func (s *Server) caller(r *http.Request) (*claims, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	if prefix, raw, ok := strings.Cut(h, " "); ok && strings.EqualFold(prefix, "bearer") {
		c, err := s.signer.verify(raw)
		if err != nil {
			return nil, err
		}
		if err := s.live(r.Context(), c); err != nil {
			return nil, err
		}
		return c, nil
	}
	if _, pw, ok := r.BasicAuth(); ok {
		t, err := s.store.TokenBySecret(r.Context(), pw)
		if err != nil {
			return nil, errors.New("unknown, revoked or expired token")
		}
		return &claims{Claims: jwt.Claims{Subject: t.Name}, Namespaces: t.Namespaces, Scopes: t.Scopes, TokenID: t.ID}, nil
	}
	return nil, errors.New("unsupported Authorization scheme: use Bearer or Basic")
}

// allowed reports whether a caller (nil: anonymous) may do action (pull,
// build, worker) on a repository through pei's endpoints: the registry
// token's access claim, or the API token's namespaces and scopes.
func (s *Server) allowed(c *claims, repo, action string) bool {
	if action == "pull" && inNamespaces(s.cfg.AnonymousPull, api.Namespace(repo)) {
		return true
	}
	if c == nil {
		return false
	}
	if c.can(repo, action) {
		return true
	}
	if action == api.ScopeWorker {
		return slices.Contains(c.Scopes, api.ScopeWorker) || slices.Contains(c.Scopes, api.ScopeAdmin)
	}
	if repo == "" || !inNamespaces(c.Namespaces, api.Namespace(repo)) {
		return false
	}
	t := store.Token{Namespaces: c.Namespaces, Scopes: c.Scopes}
	return slices.Contains(s.grant(&t, repo, []string{action}), action)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
