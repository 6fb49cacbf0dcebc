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
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/pei-dev/pei/internal/store"
)

// Token scopes an admin grants (pei token create --scope).
const (
	ScopePull   = "pull"
	ScopePush   = "push"
	ScopeBuild  = "build"
	ScopeAdmin  = "admin"  // every action, delete included
	ScopeWorker = "worker" // lease and run builds
)

// ValidScopes lists the scopes a token can have.
var ValidScopes = []string{ScopePull, ScopePush, ScopeBuild, ScopeAdmin, ScopeWorker}

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
	if err := writeFileAtomic(jwks, js, 0o644); err != nil {
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
}

func (s *signer) issue(subject string, acc []access, namespaces, scopes []string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := claims{
		Claims: jwt.Claims{
			Issuer:    issuer,
			Subject:   subject,
			Audience:  jwt.Audience{service},
			Expiry:    jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        store.NewID(""),
		},
		Access:     acc,
		Namespaces: namespaces,
		Scopes:     scopes,
	}
	if c.Access == nil {
		c.Access = []access{}
	}
	return jwt.Signed(s.sign).Claims(c).Serialize()
}

func (s *signer) verify(raw string) (*claims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	var c claims
	if err := tok.Claims(&s.key.PublicKey, &c); err != nil {
		return nil, fmt.Errorf("token signature: %w", err)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{service}, Time: time.Now()}, 30*time.Second); err != nil {
		return nil, err
	}
	return &c, nil
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

// Namespace is a repository's tenant: its first path component.
func Namespace(repo string) string {
	ns, _, _ := strings.Cut(repo, "/")
	return ns
}

func inNamespaces(namespaces []string, ns string) bool {
	return slices.Contains(namespaces, "*") || slices.Contains(namespaces, ns)
}

// grant returns the actions a token (nil: anonymous) gets on a repository.
func (s *Server) grant(t *store.Token, repo string, want []string) []string {
	var have []string
	ns := Namespace(repo)
	// What anyone may pull, a token may pull too (docker sends its
	// credentials to every repository of a registry it is logged in to).
	if inNamespaces(s.cfg.AnonymousPull, ns) {
		have = []string{"pull"}
	}
	if t != nil && inNamespaces(t.Namespaces, ns) {
		for _, sc := range t.Scopes {
			switch sc {
			case ScopePull:
				have = append(have, "pull")
			case ScopePush:
				have = append(have, "pull", "push")
			case ScopeBuild:
				have = append(have, "pull", "build")
			case ScopeAdmin:
				have = append(have, "pull", "push", "build", "delete", "*")
			}
		}
	}
	return granted(want, have)
}

// CacheRepo is the repository workers keep a repository's build cache in.
func CacheRepo(repo string) string { return repo + "/buildcache" }

// grantJob returns the actions a build's credentials get: pull in the
// submitter's namespace (bases, caches) and anonymous ones, push to the
// build's repository and its build cache only.
func (s *Server) grantJob(b store.Build, repo string, want []string) []string {
	var have []string
	if Namespace(repo) == b.Namespace || inNamespaces(s.cfg.AnonymousPull, Namespace(repo)) {
		have = append(have, "pull")
	}
	if repo == b.Repo || repo == CacheRepo(b.Repo) {
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
	var tok *store.Token
	var job *store.Build
	if strings.HasPrefix(secret, "job.") {
		b, ok := s.jobBuild(r, secret)
		if !ok {
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "build credentials are not valid (the build is no longer running on this lease)", nil)
			return
		}
		job = &b
	} else if secret != "" {
		t, err := s.store.TokenBySecret(r.Context(), secret)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="pei"`)
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
	subject, namespaces, tokScopes := "anonymous", s.cfg.AnonymousPull, []string(nil)
	if tok != nil {
		subject, namespaces, tokScopes = tok.Name, tok.Namespaces, tok.Scopes
	}
	if job != nil {
		subject, namespaces = "build "+job.ID, nil
	}
	ttl := 15 * time.Minute
	raw, err := s.signer.issue(subject, acc, namespaces, tokScopes, ttl)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	resp := map[string]any{
		"token":        raw,
		"access_token": raw,
		"expires_in":   int(ttl / time.Second),
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
// nil claims and nil error is an anonymous caller.
func (s *Server) caller(r *http.Request) (*claims, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	if prefix, raw, ok := strings.Cut(h, " "); ok && strings.EqualFold(prefix, "bearer") {
		return s.signer.verify(raw)
	}
	if _, pw, ok := r.BasicAuth(); ok {
		t, err := s.store.TokenBySecret(r.Context(), pw)
		if err != nil {
			return nil, errors.New("unknown, revoked or expired token")
		}
		return &claims{Claims: jwt.Claims{Subject: t.Name}, Namespaces: t.Namespaces, Scopes: t.Scopes}, nil
	}
	return nil, errors.New("unsupported Authorization scheme: use Bearer or Basic")
}

// allowed reports whether a caller (nil: anonymous) may do action (pull,
// build, worker) on a repository through pei's endpoints: the registry
// token's access claim, or the API token's namespaces and scopes.
func (s *Server) allowed(c *claims, repo, action string) bool {
	if action == "pull" && inNamespaces(s.cfg.AnonymousPull, Namespace(repo)) {
		return true
	}
	if c == nil {
		return false
	}
	if c.can(repo, action) {
		return true
	}
	if action == ScopeWorker {
		return slices.Contains(c.Scopes, ScopeWorker) || slices.Contains(c.Scopes, ScopeAdmin)
	}
	if repo == "" || !inNamespaces(c.Namespaces, Namespace(repo)) {
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
