package service

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
	"github.com/pei-dev/pei/internal/testenv"
)

type harness struct {
	t    *testing.T
	srv  *Server
	ts   *httptest.Server
	host string
	data string
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	ts.Start()
	t.Cleanup(ts.Close)
	cfg := Config{DataDir: t.TempDir(), PublicURL: ts.URL, Lease: 3 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ts.Config.Handler = srv
	return &harness{t: t, srv: srv, ts: ts, host: ts.Listener.Addr().String(), data: cfg.DataDir}
}

func (h *harness) token(name string, namespaces []string, scopes ...string) string {
	h.t.Helper()
	_, secret, err := h.srv.Store().CreateToken(context.Background(), store.Token{Name: name, Namespaces: namespaces, Scopes: scopes})
	if err != nil {
		h.t.Fatal(err)
	}
	return secret
}

func (h *harness) ref(s string) name.Reference {
	r, err := name.ParseReference(h.host+"/"+s, name.Insecure)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func auth(secret string) remote.Option {
	if secret == "" {
		return remote.WithAuth(authn.Anonymous)
	}
	return remote.WithAuth(&authn.Basic{Username: "u", Password: secret})
}

// req sends a request with a pei token as Basic auth.
func (h *harness) req(method, path, secret string, body io.Reader, hdr ...string) *http.Response {
	h.t.Helper()
	r, err := http.NewRequest(method, h.ts.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if secret != "" {
		r.SetBasicAuth("u", secret)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	defer resp.Body.Close()
	var v T
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func errorCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	e := decode[api.Errors](t, resp)
	if len(e.Errors) == 0 {
		t.Fatalf("status %d without an errors body", resp.StatusCode)
	}
	return e.Errors[0].Code + ": " + e.Errors[0].Message
}

// tarGz packs files (name -> content; a "->" prefix makes a symlink).
func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for n, c := range files {
		hdr := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}
		if target, ok := strings.CutPrefix(c, "->"); ok {
			hdr = &tar.Header{Name: n, Linkname: target, Typeflag: tar.TypeSymlink, Mode: 0o777}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			tw.Write([]byte(c))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

const dockerfile = "FROM scratch\nCOPY hello /hello\n"

func TestRegistryTokenFlowAndTenants(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AnonymousPull = []string{"public"} })
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	bob := h.token("bob", []string{"team-b"}, api.ScopePush, api.ScopeBuild)
	reader := h.token("reader", []string{"team-a"}, api.ScopePull)
	admin := h.token("admin", []string{"*"}, api.ScopeAdmin)
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(h.ref("team-a/app:v1"), img, auth(alice)); err != nil {
		t.Fatalf("alice pushes to her namespace: %v", err)
	}
	if err := remote.Write(h.ref("team-b/tool:v1"), img, auth(bob)); err != nil {
		t.Fatalf("bob pushes to his: %v", err)
	}
	if err := remote.Write(h.ref("public/base:v1"), img, auth(admin)); err != nil {
		t.Fatalf("admin pushes anywhere: %v", err)
	}
	want, _ := img.Digest()
	for _, tc := range []struct {
		name, secret, ref string
		pull, push        bool
	}{
		{"owner", alice, "team-a/app:v1", true, true},
		{"pull-only token", reader, "team-a/app:v1", true, false},
		{"other tenant", bob, "team-a/app:v1", false, false},
		{"anonymous, private namespace", "", "team-a/app:v1", false, false},
		{"anonymous, public namespace", "", "public/base:v1", true, false},
		{"tenant in public namespace", alice, "public/base:v1", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := remote.Image(h.ref(tc.ref), auth(tc.secret))
			if tc.pull {
				if err != nil {
					t.Fatalf("pull: %v", err)
				}
				if d, _ := got.Digest(); d != want {
					t.Fatalf("pulled %s, pushed %s", d, want)
				}
			} else if err == nil {
				t.Fatalf("pull of %s allowed", tc.ref)
			}
			other, _ := random.Image(512, 1)
			err = remote.Write(h.ref(strings.Replace(tc.ref, ":v1", ":new", 1)), other, auth(tc.secret))
			if tc.push != (err == nil) {
				t.Fatalf("push allowed=%v, want %v (%v)", err == nil, tc.push, err)
			}
		})
	}
	// Cross-repository mounts: TestCrossRepositoryMount.

	t.Run("catalog lists only the caller's namespaces", func(t *testing.T) {
		for _, tc := range []struct {
			secret string
			want   []string
		}{
			{alice, []string{"public/base", "team-a/app"}},
			{bob, []string{"public/base", "team-b/tool"}},
			{admin, []string{"public/base", "team-a/app", "team-b/tool"}},
			{"", []string{"public/base"}},
		} {
			cat := decode[struct {
				Repositories []string `json:"repositories"`
			}](t, h.req("GET", "/v2/_catalog", tc.secret, nil))
			if strings.Join(cat.Repositories, ",") != strings.Join(tc.want, ",") {
				t.Errorf("catalog %v, want %v", cat.Repositories, tc.want)
			}
		}
		// Through the registry token flow (as crane catalog does).
		repos, err := remote.Catalog(context.Background(), h.ref("x/y").Context().Registry, auth(bob))
		if err != nil || strings.Join(repos, ",") != "public/base,team-b/tool" {
			t.Errorf("token-flow catalog %v, %v", repos, err)
		}
	})

	t.Run("bad and revoked tokens are refused", func(t *testing.T) {
		if _, err := remote.Image(h.ref("public/base:v1"), auth("pei_not-a-token")); err == nil {
			t.Fatal("unknown token accepted")
		}
		ts, _ := h.srv.Store().Tokens(context.Background())
		for _, tok := range ts {
			if tok.Name == "reader" {
				h.srv.Store().RevokeToken(context.Background(), tok.ID)
			}
		}
		if _, err := remote.Image(h.ref("team-a/app:v1"), auth(reader)); err == nil {
			t.Fatal("revoked token still pulls")
		}
	})
}

func TestSubmitChecksAndLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.MaxRecipeBytes = 64 << 10
		c.Limits.MaxActive = 2
	})
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	puller := h.token("puller", []string{"team-a"}, api.ScopePull)
	bob := h.token("bob", []string{"team-b"}, api.ScopeBuild)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	submit := func(secret, query string, body []byte) *http.Response {
		return h.req("POST", "/v2/team-a/app/_pei/builds?"+query, secret, bytes.NewReader(body))
	}
	recipes := func() int {
		ents, _ := os.ReadDir(filepath.Join(h.data, "recipes", "sha256"))
		return len(ents)
	}
	for _, tc := range []struct {
		name, secret, query string
		body                []byte
		status              int
		msg                 string
	}{
		{"anonymous", "", "kind=dockerfile", good, 401, "authentication required"},
		{"no build scope", puller, "kind=dockerfile", good, 403, `"puller" may not build in team-a/app`},
		{"other tenant", bob, "kind=dockerfile", good, 403, "may not build in team-a/app"},
		{"bad tag", alice, "kind=dockerfile&tag=-x", good, 400, `tag "-x"`},
		{"bad platform", alice, "kind=dockerfile&platform=linux/nope/x/y", good, 400, "platform"},
		{"platform with a separator", alice, "kind=dockerfile&platform=linux%2Famd64%3Brm", good, 400, `platform "linux/amd64;rm"`},
		{"stage of a Dockerfile", alice, "kind=dockerfile&stage=1", good, 400, "a Dockerfile build has no stages"},
		{"dockerfile of a pei project", alice, "kind=pei&dockerfile=Dockerfile", good, 400, "kind=pei builds user_config.yml"},
		{"bad kind", alice, "kind=make", good, 400, `kind "make"`},
		{"timeout over the limit", alice, "kind=dockerfile&timeout=100h", good, 400, "over this server's limit"},
		{"not gzip", alice, "kind=dockerfile", []byte("plain text"), 400, "not a gzip-compressed tar"},
		{"truncated", alice, "kind=dockerfile", good[:len(good)-20], 400, "truncated or corrupt"},
		{"path traversal", alice, "kind=dockerfile", tarGz(t, map[string]string{"Dockerfile": dockerfile, "../../etc/x": "x"}), 400, "leads out of the project"},
		{"absolute path", alice, "kind=dockerfile", tarGz(t, map[string]string{"Dockerfile": dockerfile, "/etc/x": "x"}), 400, "absolute path"},
		{"escaping symlink", alice, "kind=dockerfile", tarGz(t, map[string]string{"Dockerfile": dockerfile, "l": "->../../etc"}), 400, "leads out of the project"},
		{"no Dockerfile", alice, "kind=dockerfile", tarGz(t, map[string]string{"hello": "x"}), 400, "recipe has no file Dockerfile"},
		{"too large", alice, "kind=dockerfile", bytes.Repeat([]byte{1}, 65<<10), 413, "over the limit"},
		{"bad pei config", alice, "", tarGz(t, map[string]string{"user_config.yml": "stage_1:\n  image:\n    base: debian:bookworm\n    output: x:1\n  ssh:\n    enable: maybe\n"}), 400, "user_config.yml:6"},
		{"pei project without config", alice, "", tarGz(t, map[string]string{"hello": "x"}), 400, "user_config.yml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := submit(tc.secret, tc.query, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, errorCode(t, resp))
			}
			if msg := errorCode(t, resp); !strings.Contains(msg, tc.msg) {
				t.Fatalf("error %q does not say %q", msg, tc.msg)
			}
		})
	}
	if bs, _ := h.srv.Store().Builds(context.Background(), store.Filter{}); len(bs) != 0 {
		t.Fatalf("refused submissions queued %d builds", len(bs))
	}
	// Refused recipes may stay as content-addressed files only if they
	// passed the archive checks; none of the refused ones above is kept
	// under a name that a build refers to, and no temporary file is left.
	ents, _ := os.ReadDir(filepath.Join(h.data, "recipes", "sha256"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".upload-") {
			t.Errorf("temporary upload %s left behind", e.Name())
		}
	}
	before := recipes()

	var ids []string
	for i := 0; i < 2; i++ {
		resp := submit(alice, "kind=dockerfile&tag=v1", good)
		if resp.StatusCode != 202 {
			t.Fatalf("submit: %d %s", resp.StatusCode, errorCode(t, resp))
		}
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/v2/team-a/app/_pei/builds/b-") {
			t.Fatalf("Location %q", loc)
		}
		ids = append(ids, decode[api.BuildView](t, resp).ID)
	}
	if got := recipes(); got != before+1 {
		t.Errorf("two uploads of one recipe stored %d files, want 1 more than %d", got, before)
	}
	resp := submit(alice, "kind=dockerfile", good)
	if resp.StatusCode != 429 || !strings.Contains(errorCode(t, resp), "2 builds queued or running") {
		t.Fatalf("third active build: status %d", resp.StatusCode)
	}
	// Another tenant is not held up by team-a's limit.
	resp = h.req("POST", "/v2/team-b/x/_pei/builds?kind=dockerfile", bob, bytes.NewReader(good))
	if resp.StatusCode != 202 {
		t.Fatalf("team-b submit: %d", resp.StatusCode)
	}
	resp.Body.Close()

	// Status: visible to the tenant, not found for another (even by id).
	resp = h.req("GET", "/v2/team-a/app/_pei/builds/"+ids[0], alice, nil)
	if v := decode[api.BuildView](t, resp); v.State != api.Queued || v.Repository != "team-a/app" || v.Tag != "v1" || v.Kind != "dockerfile" {
		t.Fatalf("status %+v", v)
	}
	for _, path := range []string{"/v2/team-a/app/_pei/builds/" + ids[0], "/v2/team-b/x/_pei/builds/" + ids[0]} {
		resp = h.req("GET", path, bob, nil)
		if resp.StatusCode == 200 {
			t.Fatalf("bob read %s", path)
		}
		resp.Body.Close()
	}
	list := decode[struct {
		Builds []api.BuildView `json:"builds"`
	}](t, h.req("GET", "/v2/_pei/builds", bob, nil))
	if len(list.Builds) != 1 || list.Builds[0].Repository != "team-b/x" {
		t.Fatalf("bob's build list %+v", list.Builds)
	}

	// Cancel a queued build: it ends at once, and frees a slot.
	resp = h.req("DELETE", "/v2/team-a/app/_pei/builds/"+ids[0], alice, nil)
	if v := decode[api.BuildView](t, resp); v.State != api.Canceled {
		t.Fatalf("cancel: %+v", v)
	}
	resp = h.req("DELETE", "/v2/team-a/app/_pei/builds/"+ids[0], alice, nil)
	if resp.StatusCode != 409 {
		t.Fatalf("second cancel: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp = submit(alice, "kind=dockerfile", good)
	if resp.StatusCode != 202 {
		t.Fatalf("submit after cancel: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.RequestsPerSec = 1
		c.Limits.Burst = 3
	})
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	codes := map[int]int{}
	for i := 0; i < 6; i++ {
		resp := h.req("GET", "/v2/team-a/app/_pei/builds", alice, nil)
		codes[resp.StatusCode]++
		if resp.StatusCode == 429 {
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			if msg := errorCode(t, resp); !strings.Contains(msg, "TOOMANYREQUESTS") {
				t.Errorf("429 body %q", msg)
			}
			continue
		}
		resp.Body.Close()
	}
	if codes[200] < 3 || codes[429] < 2 {
		t.Fatalf("6 quick requests at 1/s with burst 3: %v", codes)
	}
}

// worker plays a pei worker through the API (the real one is tested end
// to end with BuildKit in package e2e).
type fakeWorker struct {
	h      *harness
	secret string
	name   string
}

func (w fakeWorker) lease(platforms ...string) *api.Lease {
	w.h.t.Helper()
	body, _ := json.Marshal(api.LeaseRequest{Name: w.name, Platforms: platforms, Wait: 0})
	resp := w.h.req("POST", "/v2/_pei/workers/lease", w.secret, bytes.NewReader(body))
	if resp.StatusCode == 204 {
		resp.Body.Close()
		return nil
	}
	if resp.StatusCode != 200 {
		w.h.t.Fatalf("lease: %d %s", resp.StatusCode, errorCode(w.h.t, resp))
	}
	l := decode[api.Lease](w.h.t, resp)
	return &l
}

func (w fakeWorker) post(id, what, body string) *http.Response {
	return w.h.req("POST", "/v2/_pei/workers/builds/"+id+"/"+what+"?worker="+w.name, w.secret, strings.NewReader(body))
}

func TestWorkerLeaseLogsAndWebhook(t *testing.T) {
	// The receiver is on loopback, which webhooks reach only when allowed.
	h := newHarness(t, func(c *Config) { c.WebhookAllow = loopbackHooks })
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)
	w1 := fakeWorker{h, wsec, "one"}
	w2 := fakeWorker{h, wsec, "two"}

	type delivery struct {
		sig  string
		body []byte
	}
	var mu sync.Mutex
	var got []delivery
	calls := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(500) // the first delivery fails and is retried
			return
		}
		got = append(got, delivery{r.Header.Get("Pei-Signature"), b})
	}))
	defer hook.Close()
	h.srv.hooks.backoff = 50 * time.Millisecond

	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/arm64&secret=npm&webhook="+hook.URL+"&webhook_secret=s3cret", alice, bytes.NewReader(good))
	b := decode[api.BuildView](t, resp)

	if l := w1.lease("linux/amd64"); l != nil {
		t.Fatal("an amd64 worker leased an arm64 build")
	}
	body, _ := json.Marshal(api.LeaseRequest{Name: "one", Platforms: []string{"linux/arm64"}})
	resp = h.req("POST", "/v2/_pei/workers/lease", wsec, bytes.NewReader(body))
	if resp.StatusCode != 204 {
		t.Fatalf("a worker without the build's secret got it: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp = h.req("POST", "/v2/_pei/workers/lease", alice, bytes.NewReader(body))
	if resp.StatusCode != 403 {
		t.Fatalf("a token without the worker scope leased: %d", resp.StatusCode)
	}
	resp.Body.Close()
	body, _ = json.Marshal(api.LeaseRequest{Name: "one", Platforms: []string{"linux/arm64"}, Secrets: []string{"npm"}})
	l := decode[api.Lease](t, h.req("POST", "/v2/_pei/workers/lease", wsec, bytes.NewReader(body)))
	if l.Build.ID != b.ID || l.Build.State != api.Running || l.Registry != h.host {
		t.Fatalf("lease %+v", l)
	}

	// The build's credentials pull in team-a, push only to team-a/app.
	img, _ := random.Image(256, 1)
	if err := remote.Write(h.ref("team-a/app:x"), img, auth(l.Password)); err != nil {
		t.Fatalf("job credentials push to the build's repository: %v", err)
	}
	if err := remote.Write(h.ref("team-a/other:x"), img, auth(l.Password)); err == nil {
		t.Fatal("job credentials pushed to another repository")
	}
	admin := h.token("admin", []string{"*"}, api.ScopeAdmin)
	remote.Write(h.ref("team-b/secret:x"), img, auth(admin))
	if _, err := remote.Image(h.ref("team-b/secret:x"), auth(l.Password)); err == nil {
		t.Fatal("job credentials read another tenant's image")
	}

	// Only the lease holder may write the log.
	resp = w2.post(b.ID, "logs", "intruder\n")
	if resp.StatusCode != 409 {
		t.Fatalf("another worker wrote the log: %d", resp.StatusCode)
	}
	resp.Body.Close()
	for _, line := range []string{"step 1\n", "step 2\nstep 3\n"} {
		resp = w1.post(b.ID, "logs", line)
		if resp.StatusCode != 204 {
			t.Fatalf("log: %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
	// SSE resumes after Last-Event-ID: only chunk 2 comes, then the end.
	done := make(chan string)
	go func() {
		resp := h.req("GET", "/v2/team-a/app/_pei/builds/"+b.ID+"/logs", alice, nil, "Accept", "text/event-stream", "Last-Event-ID", "1")
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(data)
	}()
	time.Sleep(200 * time.Millisecond)
	hb := decode[api.Heartbeat](t, w1.post(b.ID, "heartbeat", "{}"))
	if hb.Cancel || hb.State != api.Running {
		t.Fatalf("heartbeat %+v", hb)
	}
	resp = w1.post(b.ID, "finish", `{"state":"succeeded","digest":"not-a-digest"}`)
	if resp.StatusCode != 400 {
		t.Fatalf("finish with a bad digest: %d", resp.StatusCode)
	}
	resp.Body.Close()
	d, _ := img.Digest()
	resp = w1.post(b.ID, "finish", `{"state":"succeeded","digest":"`+d.String()+`"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("finish: %d", resp.StatusCode)
	}
	resp.Body.Close()
	var stream string
	select {
	case stream = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream did not end with the build")
	}
	if strings.Contains(stream, "step 1") || !strings.Contains(stream, "id: 2\nevent: log\ndata: step 2\ndata: step 3\n") || !strings.Contains(stream, "event: end\ndata: {") {
		t.Fatalf("event stream after id 1:\n%s", stream)
	}
	text := h.req("GET", "/v2/team-a/app/_pei/builds/"+b.ID+"/logs", alice, nil)
	all, _ := io.ReadAll(text.Body)
	text.Body.Close()
	if string(all) != "step 1\nstep 2\nstep 3\n" || api.State(text.Header.Get("Pei-Build-State")) != api.Succeeded {
		t.Fatalf("plain log %q (%s)", all, text.Header.Get("Pei-Build-State"))
	}
	// The job credentials die with the build.
	if err := remote.Write(h.ref("team-a/app:y"), img, auth(l.Password)); err == nil {
		t.Fatal("job credentials still push after the build ended")
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || calls != 2 {
		t.Fatalf("webhook: %d deliveries in %d calls, want 1 in 2 (one retry)", len(got), calls)
	}
	if got[0].sig != Sign("s3cret", got[0].body) || !strings.HasPrefix(got[0].sig, "sha256=") {
		t.Fatalf("signature %q does not match the body", got[0].sig)
	}
	var ev struct {
		Event string        `json:"event"`
		Build api.BuildView `json:"build"`
	}
	json.Unmarshal(got[0].body, &ev)
	if ev.Event != "build.succeeded" || ev.Build.Digest != d.String() || ev.Build.Image != h.host+"/team-a/app@"+d.String() {
		t.Fatalf("webhook body %s", got[0].body)
	}
}

func TestLostWorkerRequeuesThenFails(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Lease = 600 * time.Millisecond
		c.MaxAttempts = 2
	})
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	b := decode[api.BuildView](t, h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64", alice, bytes.NewReader(good)))
	w1 := fakeWorker{h, wsec, "one"}
	if l := w1.lease("linux/amd64"); l == nil || l.Build.ID != b.ID {
		t.Fatal("first lease")
	}
	// w1 dies: no heartbeat. The build goes back to the queue...
	var l2 *api.Lease
	for end := time.Now().Add(5 * time.Second); l2 == nil && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		l2 = fakeWorker{h, wsec, "two"}.lease("linux/amd64")
	}
	if l2 == nil || l2.Build.ID != b.ID || l2.Build.Attempts != 2 {
		t.Fatalf("the lost build was not handed to another worker: %+v", l2)
	}
	// ...and the first worker, back from the dead, has lost it.
	resp := w1.post(b.ID, "heartbeat", "{}")
	if resp.StatusCode != 409 {
		t.Fatalf("stale worker's heartbeat: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// The second worker dies too: after two attempts the build fails,
	// saying why.
	var v api.BuildView
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		v = decode[api.BuildView](t, h.req("GET", "/v2/team-a/app/_pei/builds/"+b.ID, alice, nil))
		if v.State != api.Running {
			break
		}
	}
	if v.State != api.Failed || !strings.Contains(v.Error, "stopped answering (attempt 2 of 2)") {
		t.Fatalf("after two lost workers: %s %q", v.State, v.Error)
	}
}

func TestCancelRunning(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	b := decode[api.BuildView](t, h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64", alice, bytes.NewReader(good)))
	w := fakeWorker{h, wsec, "one"}
	w.lease("linux/amd64")
	v := decode[api.BuildView](t, h.req("DELETE", "/v2/team-a/app/_pei/builds/"+b.ID, alice, nil))
	if v.State != api.Running || !v.Cancel {
		t.Fatalf("cancel of a running build: %+v", v)
	}
	if hb := decode[api.Heartbeat](t, w.post(b.ID, "heartbeat", "{}")); !hb.Cancel {
		t.Fatal("the worker was not told to stop")
	}
	w.post(b.ID, "finish", `{"state":"canceled","error":"canceled by request"}`).Body.Close()
	v = decode[api.BuildView](t, h.req("GET", "/v2/team-a/app/_pei/builds/"+b.ID, alice, nil))
	if v.State != api.Canceled {
		t.Fatalf("state %s", v.State)
	}
}

func TestRecipeArtifactQueuesBuild(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	pusher := h.token("pusher", []string{"team-a"}, api.ScopePush)
	layer := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	m := recipeManifest(t, h, alice, "team-a/app", layer, map[string]string{api.AnnotationKind: "dockerfile", api.AnnotationTag: "v2", api.AnnotationPlatform: "linux/amd64"})
	for _, tc := range []struct {
		name, secret string
		status       int
	}{
		{"push-only token may not trigger builds", pusher, 403},
		{"build token", alice, 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := putManifest(t, h, tc.secret, "team-a/app", "recipe", m)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 201 {
				id := resp.Header.Get("Pei-Build-Id")
				v := decode[api.BuildView](t, h.req("GET", "/v2/team-a/app/_pei/builds/"+id, alice, nil))
				if v.Tag != "v2" || v.Kind != "dockerfile" || v.Subject != resp.Header.Get("Docker-Content-Digest") || v.Subject == "" {
					t.Fatalf("build from artifact %+v", v)
				}
			}
			resp.Body.Close()
		})
	}
	// Without credentials the registry's challenge comes first, as for
	// any push.
	resp0 := h.req("PUT", "/v2/team-a/app/manifests/anon", "", bytes.NewReader(m), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp0.Body.Close()
	if resp0.StatusCode != 401 || !strings.HasPrefix(resp0.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Fatalf("anonymous recipe push: %d %q", resp0.StatusCode, resp0.Header.Get("WWW-Authenticate"))
	}
	// A bad recipe is refused whole: not stored, no build.
	bad := recipeManifest(t, h, alice, "team-a/app", tarGz(t, map[string]string{"../x": "x"}), map[string]string{api.AnnotationKind: "dockerfile"})
	resp := putManifest(t, h, alice, "team-a/app", "bad", bad)
	if resp.StatusCode != 400 {
		t.Fatalf("bad recipe artifact: %d", resp.StatusCode)
	}
	resp.Body.Close()
	if _, err := remote.Head(h.ref("team-a/app:bad"), auth(alice)); err == nil {
		t.Fatal("the refused recipe was stored")
	}
}

func recipeManifest(t *testing.T, h *harness, secret, repo string, layer []byte, ann map[string]string) []byte {
	t.Helper()
	ref := h.ref(repo + ":unused")
	lh, size, _ := v1.SHA256(bytes.NewReader(layer))
	if err := remote.WriteLayer(ref.Context(), staticLayer{layer, lh}, auth(secret)); err != nil {
		t.Fatal(err)
	}
	empty := []byte("{}")
	eh, _, _ := v1.SHA256(bytes.NewReader(empty))
	if err := remote.WriteLayer(ref.Context(), staticLayer{empty, eh}, auth(secret)); err != nil {
		t.Fatal(err)
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  api.RecipeArtifactType,
		"config":        map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": eh.String(), "size": 2},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.pei.recipe.v1.tar+gzip", "digest": lh.String(), "size": size}},
		"annotations":   ann,
	}
	b, _ := json.Marshal(m)
	return b
}

func putManifest(t *testing.T, h *harness, secret, repo, tag string, m []byte) *http.Response {
	t.Helper()
	// Get a registry token as a client would, then push the manifest.
	tok := decode[map[string]any](t, h.req("GET", "/token?service=pei&scope=repository:"+repo+":pull,push", secret, nil))
	return h.req("PUT", "/v2/"+repo+"/manifests/"+tag, "", bytes.NewReader(m),
		"Authorization", "Bearer "+tok["token"].(string), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
}

type staticLayer struct {
	data []byte
	h    v1.Hash
}

func (l staticLayer) Digest() (v1.Hash, error) { return l.h, nil }
func (l staticLayer) DiffID() (v1.Hash, error) { return l.h, nil }
func (l staticLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
func (l staticLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
func (l staticLayer) Size() (int64, error)                { return int64(len(l.data)), nil }
func (l staticLayer) MediaType() (types.MediaType, error) { return "application/octet-stream", nil }

// TestBadRegistryInput: a huge manifest and a blob with the wrong digest
// are refused with OCI errors and leave nothing behind.
func TestBadRegistryInput(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.MaxManifestBytes = 64 << 10 })
	alice := h.token("alice", []string{"team-a"}, api.ScopePush)
	tok := decode[map[string]any](t, h.req("GET", "/token?service=pei&scope=repository:team-a/app:pull,push", alice, nil))["token"].(string)
	bearer := []string{"Authorization", "Bearer " + tok}

	huge := append([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"`), bytes.Repeat([]byte("a"), 100<<10)...)
	huge = append(huge, []byte(`"}}`)...)
	resp := h.req("PUT", "/v2/team-a/app/manifests/huge", "", bytes.NewReader(huge), append(bearer, "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
	if resp.StatusCode != 413 || !strings.Contains(errorCode(t, resp), "SIZE_INVALID") {
		t.Fatalf("huge manifest: %d", resp.StatusCode)
	}

	resp = h.req("POST", "/v2/team-a/app/blobs/uploads/", "", nil, bearer...)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = h.ts.URL + loc
	}
	wrong := "sha256:" + strings.Repeat("0", 64)
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	r, _ := http.NewRequest("PUT", loc+sep+"digest="+wrong, strings.NewReader("some content"))
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || !strings.Contains(errorCode(t, resp), "DIGEST_INVALID") {
		t.Fatalf("blob with a wrong digest: %d", resp.StatusCode)
	}
	resp = h.req("HEAD", "/v2/team-a/app/blobs/"+wrong, "", nil, bearer...)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("the wrong-digest blob exists: %d", resp.StatusCode)
	}
	resp = h.req("GET", "/v2/team-a/app/tags/list", "", nil, bearer...)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("tags exist after refused pushes: %d", resp.StatusCode)
	}
}

// TestReplicasSharePostgres runs two servers on one PostgreSQL database
// and data directory: a build submitted to one is leased, logged and
// finished through the other, and tokens work on both.
func TestReplicasSharePostgres(t *testing.T) {
	testenv.Short(t, "PostgreSQL")
	dsn := testenv.Postgres(t)
	data := t.TempDir()
	one := newHarness(t, func(c *Config) { c.Database = dsn; c.DataDir = data })
	two := newHarness(t, func(c *Config) { c.Database = dsn; c.DataDir = data })
	alice := one.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	wsec := two.token("w", nil, api.ScopeWorker)

	img, _ := random.Image(1024, 1)
	if err := remote.Write(one.ref("team-a/app:v1"), img, auth(alice)); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(two.ref("team-a/app:v1"), auth(alice)); err != nil {
		t.Fatalf("the other replica does not serve the pushed image: %v", err)
	}
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	b := decode[api.BuildView](t, one.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64", alice, bytes.NewReader(good)))
	w := fakeWorker{two, wsec, "r2"}
	l := w.lease("linux/amd64")
	if l == nil || l.Build.ID != b.ID {
		t.Fatalf("replica two did not lease the build queued on one: %+v", l)
	}
	if l2 := (fakeWorker{one, wsec, "r1"}).lease("linux/amd64"); l2 != nil {
		t.Fatalf("the build was leased twice: %+v", l2)
	}
	// The recipe uploaded to one is served by two (shared data directory).
	resp := w.h.req("GET", "/v2/_pei/workers/builds/"+b.ID+"/recipe?worker=r2", wsec, nil)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, good) {
		t.Fatalf("recipe through replica two: %d bytes, want %d", len(got), len(good))
	}
	w.post(b.ID, "logs", "from two\n").Body.Close()
	d, _ := img.Digest()
	w.post(b.ID, "finish", `{"state":"succeeded","digest":"`+d.String()+`"}`).Body.Close()
	v := decode[api.BuildView](t, one.req("GET", "/v2/team-a/app/_pei/builds/"+b.ID, alice, nil))
	if v.State != api.Succeeded || v.Digest != d.String() {
		t.Fatalf("replica one sees %+v", v)
	}
	text := one.req("GET", "/v2/team-a/app/_pei/builds/"+b.ID+"/logs", alice, nil)
	log, _ := io.ReadAll(text.Body)
	text.Body.Close()
	if string(log) != "from two\n" {
		t.Fatalf("log through replica one: %q", log)
	}
}

// TestSlowUpload: a recipe upload that stalls past the upload timeout is
// answered 408 and nothing is queued.
func TestSlowUpload(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.UploadTimeout = 300 * time.Millisecond })
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte{0x1f, 0x8b})
		time.Sleep(2 * time.Second)
		pw.Close()
	}()
	resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile", alice, pr)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(errorCode(t, resp), "TIMEOUT") {
		t.Fatalf("stalled upload: %d", resp.StatusCode)
	}
	if bs, _ := h.srv.Store().Builds(context.Background(), store.Filter{}); len(bs) != 0 {
		t.Fatalf("a stalled upload queued %d builds", len(bs))
	}
}

func TestHealth(t *testing.T) {
	h := newHarness(t, nil)
	resp := h.req("GET", "/healthz", "", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("healthy: %d %q", resp.StatusCode, body)
	}
	h.srv.Store().Close() // the database goes away
	resp = h.req("GET", "/healthz", "", nil)
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("without a database: %d", resp.StatusCode)
	}
}

// TestWebhookSurvivesRestart: a webhook call that failed before the server
// stopped is made by the server started next on the same state, and one
// that keeps failing is given up after its attempts, saying why.
func TestWebhookSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	var mu sync.Mutex
	up := false
	var delivered []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			w.WriteHeader(503)
			return
		}
		delivered = append(delivered, r.Header.Get("Pei-Delivery"))
	}))
	defer hook.Close()

	one := newHarness(t, func(c *Config) { c.DataDir, c.WebhookAllow = data, loopbackHooks })
	one.srv.hooks.backoff = 100 * time.Millisecond
	alice := one.token("alice", []string{"team-a"}, api.ScopeBuild)
	wsec := one.token("w", nil, api.ScopeWorker)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	b := decode[api.BuildView](t, one.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64&webhook="+hook.URL, alice, bytes.NewReader(good)))
	w := fakeWorker{one, wsec, "w"}
	w.lease("linux/amd64")
	w.post(b.ID, "finish", `{"state":"failed","error":"broken"}`).Body.Close()
	waitFor(t, func() bool {
		n, _, _, _, _ := one.srv.Store().WebhookState(context.Background(), b.ID)
		return n >= 1
	})
	one.srv.Close()

	mu.Lock()
	up = true
	mu.Unlock()
	two := newHarness(t, func(c *Config) { c.DataDir, c.WebhookAllow = data, loopbackHooks })
	waitFor(t, func() bool {
		_, ok, _, _, _ := two.srv.Store().WebhookState(context.Background(), b.ID)
		return ok
	})
	mu.Lock()
	if len(delivered) != 1 || !strings.HasPrefix(delivered[0], b.ID+".") {
		t.Fatalf("deliveries %v", delivered)
	}
	up = false
	mu.Unlock()

	// A hook that never answers 2xx is given up after its attempts.
	two.srv.hooks.attempts = 3
	two.srv.hooks.backoff = 10 * time.Millisecond
	b2 := decode[api.BuildView](t, two.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64&webhook="+hook.URL, alice, bytes.NewReader(good)))
	w2 := fakeWorker{two, wsec, "w"}
	w2.lease("linux/amd64")
	w2.post(b2.ID, "finish", `{"state":"canceled"}`).Body.Close()
	waitFor(t, func() bool {
		_, _, gaveUp, _, _ := two.srv.Store().WebhookState(context.Background(), b2.ID)
		return gaveUp
	})
	n, _, _, lastErr, _ := two.srv.Store().WebhookState(context.Background(), b2.ID)
	if n != 3 || !strings.Contains(lastErr, "503") {
		t.Fatalf("gave up after %d attempts (%q)", n, lastErr)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("timed out waiting")
}

// TestRegistryConfigStorage: --registry-config takes the storage of a
// distribution configuration file (here the in-memory driver) instead of
// the data directory.
func TestRegistryConfigStorage(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "registry.yml")
	os.WriteFile(cfgFile, []byte("version: 0.1\nstorage:\n  inmemory: {}\n"), 0o644)
	h := newHarness(t, func(c *Config) { c.RegistryConfig = cfgFile })
	alice := h.token("alice", []string{"team-a"}, api.ScopePush)
	img, _ := random.Image(1024, 1)
	if err := remote.Write(h.ref("team-a/mem:v1"), img, auth(alice)); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(h.ref("team-a/mem:v1"), auth(alice)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.data, "registry")); !os.IsNotExist(err) {
		t.Fatalf("blobs went to the data directory: %v", err)
	}

	// A bad storage section is an error from New, not a panic.
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("version: 0.1\nstorage:\n  nosuchdriver: {}\n"), 0o644)
	_, err := New(context.Background(), Config{DataDir: t.TempDir(), PublicURL: "http://127.0.0.1:1", RegistryConfig: bad})
	if err == nil || !strings.Contains(err.Error(), "nosuchdriver") {
		t.Fatalf("bad storage: %v", err)
	}
}

// TestWebhookRefusesMetadataAddresses: a webhook aimed at a link-local
// address (where cloud metadata services live) is never called.
func TestWebhookRefusesMetadataAddresses(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.hooks.attempts = 1
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	b := decode[api.BuildView](t, h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64&webhook=http://169.254.169.254/latest/meta-data/", alice, bytes.NewReader(good)))
	w := fakeWorker{h, wsec, "w"}
	w.lease("linux/amd64")
	w.post(b.ID, "finish", `{"state":"failed","error":"x"}`).Body.Close()
	waitFor(t, func() bool {
		_, _, gaveUp, _, _ := h.srv.Store().WebhookState(context.Background(), b.ID)
		return gaveUp
	})
	if _, _, _, lastErr, _ := h.srv.Store().WebhookState(context.Background(), b.ID); !strings.Contains(lastErr, "169.254.169.254 refused") {
		t.Fatalf("last error %q", lastErr)
	}
}
