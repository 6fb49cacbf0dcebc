package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/client"
)

// umask0 runs the pei binary under a umask of 0, the worst an admin's
// shell can have: every mode pei gets must come from pei.
func umask0(pei string, args ...string) *exec.Cmd {
	return exec.Command("sh", append([]string{"-c", `umask 0 && exec "$0" "$@"`, pei}, args...)...)
}

// lockedBuffer is a process's output, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// credsServer is a `pei serve` process on a loopback port.
type credsServer struct {
	t    *testing.T
	pei  string
	data string
	addr string
	log  *lockedBuffer
}

func (s *credsServer) start(extra ...string) {
	s.t.Helper()
	s.log = &lockedBuffer{}
	cmd := umask0(s.pei, append([]string{"serve", "--addr", s.addr, "--data", s.data, "--lease", "30s"}, extra...)...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + s.addr + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("pei serve did not start:\n%s", s.log)
}

var tokenIDRE = regexp.MustCompile(`token (t-[0-9a-f]+) `)

// token runs pei token create and returns the secret and the token's id.
func (s *credsServer) token(args ...string) (secret, id string) {
	s.t.Helper()
	cmd := umask0(s.pei, append([]string{"token", "create", "--data", s.data}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("pei token create: %v\n%s", err, stderr.String())
	}
	m := tokenIDRE.FindStringSubmatch(stderr.String())
	if m == nil {
		s.t.Fatalf("no token id in %q", stderr.String())
	}
	return strings.TrimSpace(string(out)), m[1]
}

func (s *credsServer) do(method, path string, body io.Reader, hdr ...string) int {
	s.t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.addr+path, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func basicAuth(secret string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth("u", secret)
	return r.Header.Get("Authorization")
}

// snapshot is what is on disk under the registry storage and the
// recipes, file by file (mode, size, SHA-256), and the builds the
// database holds; pei.db itself changes with every read (its WAL).
func snapshot(t *testing.T, data string, admin *client.Client) string {
	t.Helper()
	var lines []string
	for _, top := range []string{"registry", "recipes"} {
		filepath.WalkDir(filepath.Join(data, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(data, p)
			info, _ := d.Info()
			line := fmt.Sprintf("%s %s", rel, info.Mode())
			if info.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				sum := sha256.Sum256(b)
				line += fmt.Sprintf(" %d %s", len(b), hex.EncodeToString(sum[:8]))
			}
			lines = append(lines, line)
			return nil
		})
	}
	sort.Strings(lines)
	builds, err := admin.Builds(t.Context(), "team-a/app")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range builds {
		lines = append(lines, fmt.Sprintf("build %s %s %s %s", b.ID, b.Repository, b.State, b.Digest))
	}
	return strings.Join(lines, "\n")
}

// TestServeCredentials runs the pei binary and, as a tenant holding
// credentials that no longer stand for anything — a revoked pei token and
// the registry token made from it, an expired one, a finished build's
// credentials and registry token, registry tokens signed by another key,
// for another audience, or without an expiry — tries to pull, push, read
// builds and submit: every attempt fails and nothing changes on disk. The
// same attempts with live credentials succeed first (the controls). The
// data directory, made by pei token create and served under a umask of 0,
// is private; and the --webhook-allow flag opens loopback to webhooks.
func TestServeCredentials(t *testing.T) {
	pei := peiBinary(t)
	work := t.TempDir()
	s := &credsServer{t: t, pei: pei, data: filepath.Join(work, "srv", "data"), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}

	// pei token create, an admin's first command, makes the data
	// directory: private from the start.
	alice, aliceID := s.token("--name", "alice", "--namespace", "team-a", "--scope", "push,build")
	for p, want := range map[string]os.FileMode{s.data: 0o700, filepath.Join(s.data, "pei.db"): 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s after pei token create: %v %v, want %04o", p, fi.Mode(), err, want)
		}
	}
	mallory, malloryID := s.token("--name", "mallory", "--namespace", "team-a", "--scope", "push,build")
	workers, _ := s.token("--name", "workers", "--scope", "worker")
	adminSecret, _ := s.token("--name", "admin", "--namespace", "*", "--scope", "admin")
	s.start()
	url := "http://" + s.addr
	admin := client.New(url, adminSecret)

	repo, _ := name.NewRepository(s.addr+"/team-a/app", name.Insecure)
	img, _ := random.Image(2048, 2)
	if err := remote.Write(repo.Tag("v1"), img, remote.WithAuth(&authn.Basic{Username: "alice", Password: alice})); err != nil {
		t.Fatalf("alice pushes: %v", err)
	}
	// A build, leased by a worker (through the API: no BuildKit needed).
	recipeDir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "a\n"})
	data := packDir(t, recipeDir)
	b, err := client.New(url, alice).Submit(t.Context(), client.SubmitOptions{Repo: "team-a/app", Tag: "built", Kind: "dockerfile", Platform: "linux/amd64"}, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	lease, err := client.New(url, workers).Lease(t.Context(), api.LeaseRequest{Name: "w", Platforms: []string{"linux/amd64"}})
	if err != nil || lease == nil || lease.Build.ID != b.ID {
		t.Fatalf("lease: %+v %v", lease, err)
	}

	// Every credential works before: pull, push, read builds.
	works := func(what, secret string) {
		t.Helper()
		auth := remote.WithAuth(&authn.Basic{Username: "u", Password: secret})
		if _, err := remote.Image(repo.Tag("v1"), auth); err != nil {
			t.Fatalf("%s does not pull while live: %v", what, err)
		}
		tok := registryToken(t, s.addr, secret, "team-a/app")
		if code := s.do("POST", "/v2/team-a/app/blobs/uploads/", nil, "Authorization", "Bearer "+tok); code != 202 {
			t.Fatalf("%s does not start an upload while live: %d", what, code)
		}
		if code := s.do("GET", "/v2/team-a/app/_pei/builds/"+b.ID, nil, "Authorization", "Bearer "+tok); code != 200 {
			t.Fatalf("%s does not read the build while live: %d", what, code)
		}
	}
	works("mallory's token", mallory)
	works("the build's credentials", lease.Password)
	malloryJWT := registryToken(t, s.addr, mallory, "team-a/app")
	jobJWT := registryToken(t, s.addr, lease.Password, "team-a/app")
	brief, _ := s.token("--name", "brief", "--namespace", "team-a", "--scope", "push,build", "--expires", "3s")
	briefJWT := registryToken(t, s.addr, brief, "team-a/app")
	if code := s.do("GET", "/v2/team-a/app/_pei/builds", nil, "Authorization", "Bearer "+briefJWT); code != 200 {
		t.Fatalf("a short-lived token while live: %d", code)
	}

	// Tokens signed by another key, or by the server's key (as leaked or
	// made by an older version) with claims it never issues.
	forged, control := forgeTokens(t, s.data, "team-a/app", aliceID)
	if code := s.do("GET", "/v2/team-a/app/_pei/builds", nil, "Authorization", "Bearer "+control); code != 200 {
		t.Fatalf("the forging control (alice's claims as /token makes them): %d", code)
	}

	// The credentials end: mallory's token is revoked, the build ends,
	// brief's token runs out.
	if out, err := exec.Command(pei, "token", "revoke", "--data", s.data, malloryID).CombinedOutput(); err != nil {
		t.Fatalf("pei token revoke: %v\n%s", err, out)
	}
	if err := client.New(url, workers).Finish(t.Context(), b.ID, "w", api.Finish{State: api.Failed, Error: "done"}); err != nil {
		t.Fatal(err)
	}
	stale := map[string]string{"mallory's registry token": malloryJWT, "the build's registry token": jobJWT, "brief's registry token": briefJWT}
	for n, tok := range forged {
		stale[n] = tok
	}
	// Within seconds everything stale is refused (polled, bounded).
	deadline := time.Now().Add(6 * time.Second)
	for n, tok := range stale {
		for s.do("GET", "/v2/team-a/app/_pei/builds", nil, "Authorization", "Bearer "+tok) != 401 {
			if time.Now().After(deadline) {
				t.Fatalf("%s still reads builds", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	before := snapshot(t, s.data, admin)
	evil, _ := random.Image(1024, 1)
	for n, tok := range stale {
		t.Run(n, func(t *testing.T) {
			bearer := []string{"Authorization", "Bearer " + tok}
			for _, a := range []struct {
				method, path string
				body         io.Reader
			}{
				{"GET", "/v2/team-a/app/manifests/v1", nil},
				{"HEAD", "/v2/team-a/app/manifests/v1", nil},
				{"POST", "/v2/team-a/app/blobs/uploads/", nil},
				{"PUT", "/v2/team-a/app/manifests/evil", strings.NewReader("{}")},
				{"DELETE", "/v2/team-a/app/manifests/v1", nil},
				{"GET", "/v2/team-a/app/_pei/builds", nil},
				{"GET", "/v2/team-a/app/_pei/builds/" + b.ID, nil},
				{"GET", "/v2/team-a/app/_pei/builds/" + b.ID + "/logs", nil},
				{"POST", "/v2/team-a/app/_pei/builds?kind=dockerfile", bytes.NewReader(data)},
				{"GET", "/v2/_catalog", nil},
			} {
				if code := s.do(a.method, a.path, a.body, bearer...); code != 401 {
					t.Errorf("%s %s: %d, want 401", a.method, a.path, code)
				}
			}
		})
	}
	// The pei secrets behind them: refused at /token, at the API, and
	// through a registry client.
	for n, secret := range map[string]string{"mallory's token": mallory, "brief's token": brief, "the build's credentials": lease.Password} {
		t.Run(n, func(t *testing.T) {
			if code := s.do("GET", "/token?service=pei&scope=repository:team-a/app:pull,push", nil, "Authorization", basicAuth(secret)); code != 401 {
				t.Errorf("/token: %d", code)
			}
			if code := s.do("GET", "/v2/team-a/app/_pei/builds", nil, "Authorization", basicAuth(secret)); code != 401 {
				t.Errorf("builds: %d", code)
			}
			auth := remote.WithAuth(&authn.Basic{Username: "u", Password: secret})
			if _, err := remote.Image(repo.Tag("v1"), auth); err == nil {
				t.Error("pulled")
			}
			if err := remote.Write(repo.Tag("evil"), evil, auth); err == nil {
				t.Error("pushed")
			}
			if _, err := client.New(url, secret).Submit(t.Context(), client.SubmitOptions{Repo: "team-a/app", Tag: "x", Kind: "dockerfile"}, bytes.NewReader(data), int64(len(data))); err == nil {
				t.Error("submitted a build")
			}
		})
	}
	if after := snapshot(t, s.data, admin); after != before {
		t.Errorf("refused attempts changed the data directory or the builds:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The control: alice, live, still pulls.
	if _, err := remote.Image(repo.Tag("v1"), remote.WithAuth(&authn.Basic{Username: "alice", Password: alice})); err != nil {
		t.Fatalf("alice after all that: %v", err)
	}

	t.Run("data directory private", func(t *testing.T) {
		var open []string
		files := 0
		filepath.WalkDir(s.data, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, _ := d.Info()
			if info.Mode().IsRegular() {
				files++
			}
			if info.Mode().Perm()&0o077 != 0 {
				open = append(open, p+" "+info.Mode().String())
			}
			return nil
		})
		if files < 10 || len(open) > 0 {
			t.Fatalf("%d files; open to other users:\n%s", files, strings.Join(open, "\n"))
		}
	})

	t.Run("webhook allow flag", func(t *testing.T) {
		var calls atomic.Int32
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
		defer recv.Close()
		for _, tc := range []struct {
			name  string
			flags []string
			want  int32
		}{
			{"default", nil, 0},
			{"--webhook-allow 127.0.0.0/8", []string{"--webhook-allow", "127.0.0.0/8"}, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				hs := &credsServer{t: t, pei: pei, data: t.TempDir(), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
				owner, _ := hs.token("--name", "o", "--namespace", "team-a", "--scope", "build")
				w, _ := hs.token("--name", "w", "--scope", "worker")
				hs.start(tc.flags...)
				u := "http://" + hs.addr
				before := calls.Load()
				b, err := client.New(u, owner).Submit(t.Context(), client.SubmitOptions{Repo: "team-a/hook", Kind: "dockerfile", Platform: "linux/amd64", Webhook: recv.URL}, bytes.NewReader(data), int64(len(data)))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := client.New(u, w).Lease(t.Context(), api.LeaseRequest{Name: "w", Platforms: []string{"linux/amd64"}}); err != nil {
					t.Fatal(err)
				}
				if err := client.New(u, w).Finish(t.Context(), b.ID, "w", api.Finish{State: api.Failed, Error: "x"}); err != nil {
					t.Fatal(err)
				}
				// The server logs each failed attempt; a delivery reaches the
				// receiver. Wait for one or the other (bounded).
				for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					if calls.Load() > before || strings.Contains(hs.log.String(), "refused: loopback") {
						break
					}
					if time.Now().After(end) {
						t.Fatalf("no delivery and no refusal:\n%s", hs.log)
					}
				}
				if got := calls.Load() - before; got != tc.want {
					t.Fatalf("%d deliveries, want %d\n%s", got, tc.want, hs.log)
				}
			})
		}
	})
}

// forgeTokens makes registry tokens the server must refuse: signed by
// another key, and signed by the server's own key (read from its data
// directory, as a leak would give it) for another audience or issuer,
// without an expiry, expired, not valid yet, or for a pei token that does
// not exist. Each differs from control, made the same way for the live
// token liveID, in one thing only.
func forgeTokens(t *testing.T, data, repo, liveID string) (forged map[string]string, control string) {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(data, "auth", "signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var jwks jose.JSONWebKeySet
	js, _ := os.ReadFile(filepath.Join(data, "auth", "jwks.json"))
	if err := json.Unmarshal(js, &jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("jwks: %v", err)
	}
	kid := jwks.Keys[0].KeyID
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer := func(k *ecdsa.PrivateKey) jose.Signer {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	type claims struct {
		jwt.Claims
		Access []map[string]any `json:"access"`
		NS     []string         `json:"pei_ns"`
		Scopes []string         `json:"pei_scopes"`
		TID    string           `json:"pei_tid,omitempty"`
	}
	base := func() claims {
		return claims{
			Claims: jwt.Claims{Issuer: "pei-serve", Subject: "mallory", Audience: jwt.Audience{"pei"},
				Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-time.Second)), IssuedAt: jwt.NewNumericDate(now)},
			Access: []map[string]any{{"type": "repository", "name": repo, "actions": []string{"pull", "push", "delete", "*"}}},
			NS:     []string{"team-a"}, Scopes: []string{"push", "build"}, TID: liveID,
		}
	}
	sign := func(k *ecdsa.PrivateKey, c claims) string {
		raw, err := jwt.Signed(signer(k)).Claims(c).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	out := map[string]string{}
	for n, tc := range map[string]struct {
		key *ecdsa.PrivateKey
		mod func(*claims)
	}{
		"another key's token":           {other, func(*claims) {}},
		"a foreign audience's token":    {key, func(c *claims) { c.Audience = jwt.Audience{"other"} }},
		"a foreign issuer's token":      {key, func(c *claims) { c.Issuer = "other" }},
		"a token without exp":           {key, func(c *claims) { c.Expiry = nil }},
		"a token of no pei token":       {key, func(c *claims) { c.TID = "t-000000000000000000000000" }},
		"a token with a future nbf":     {key, func(c *claims) { c.NotBefore = jwt.NewNumericDate(now.Add(20 * time.Second)) }},
		"an expired token (within 60s)": {key, func(c *claims) { c.Expiry = jwt.NewNumericDate(now.Add(-2 * time.Second)) }},
	} {
		c := base()
		tc.mod(&c)
		out[n] = sign(tc.key, c)
	}
	return out, sign(key, base())
}
