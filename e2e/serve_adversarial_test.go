package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/testenv"
	"github.com/pei-dev/pei/internal/worker"
)

// attacker is a tenant's HTTP client that keeps every answer it got, so
// that the test can look for secrets in all of them at the end.
type attacker struct {
	t       *testing.T
	base    string
	mu      sync.Mutex
	answers []string
}

// do sends a request and returns the status and the body.
func (a *attacker) do(method, path string, body []byte, hdr ...string) (int, string) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		// A path Go will not send is no attack on the server.
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	a.keep(fmt.Sprintf("%s %s -> %d %v\n%s", method, path, resp.StatusCode, resp.Header, b))
	return resp.StatusCode, string(b)
}

func (a *attacker) keep(s string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answers = append(a.answers, s)
}

// tarEntry is one entry of a hand-made recipe archive.
type tarEntry struct {
	name string
	kind byte // tar.TypeReg, TypeDir, TypeSymlink, TypeLink
	link string
	body string
	mode int64
}

// hostileRecipe packs entries as a recipe (tar+gzip) exactly as given: no
// check a packer would make.
func hostileRecipe(t *testing.T, es ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.kind, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// treeState is every file under the roots (mode, size, SHA-256, link
// target), one per line; skip leaves out paths (relative to their root)
// that refused attempts may legitimately touch.
func treeState(t *testing.T, skip func(rel string) bool, roots ...string) string {
	t.Helper()
	var lines []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && p == root {
					return nil
				}
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if skip != nil && skip(rel) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			line := fmt.Sprintf("%s %s", p, info.Mode())
			switch {
			case info.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				line += fmt.Sprintf(" %d %s", len(b), hex.EncodeToString(sum[:8]))
			case info.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				line += " -> " + target
			}
			lines = append(lines, line)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// sseEvents parses an event stream as the HTML standard says (lines end
// with \r\n, \n or a lone \r), independently of internal/client: the
// events a spec-following browser would dispatch.
func sseEvents(body string) (events []string, data []string) {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\r", "\n")
	ev, buf := "", []string(nil)
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(buf) > 0 {
				if ev == "" {
					ev = "message"
				}
				events = append(events, ev)
				data = append(data, strings.Join(buf, "\n"))
			}
			ev, buf = "", nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev = value
		case "data":
			buf = append(buf, value)
		}
	}
	return events, data
}

// TestServeAdversarial runs the pei binary's serve and attacks it as
// alice, a tenant of team-a holding push and build, through every input
// its API takes — recipes, recipe artifacts, repository names and tags,
// webhook URLs, log lines and query strings — aiming at the server's
// signing and job keys, a file outside its data directory, and team-b's
// repository, builds and recipe. Every attempt is refused; no answer and
// no line of the server's log holds a byte of what it aimed at; nothing of
// the server's keys, of team-b or outside changes on disk; team-a's own
// tags and manifests change only by what alice may do. The same kind of
// request with honest values succeeds first (the controls). Expired,
// revoked and foreign tokens are TestServeCredentials'.
func TestServeAdversarial(t *testing.T) {
	testenv.Root(t)
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	testenv.Tools(t, "skopeo")
	pei := peiBinary(t)
	work := t.TempDir()
	s := &credsServer{t: t, pei: pei, data: filepath.Join(work, "data"), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	alice, _ := s.token("--name", "alice", "--namespace", "team-a", "--scope", "push,build")
	bob, _ := s.token("--name", "bob", "--namespace", "team-b", "--scope", "push,build")
	workers, _ := s.token("--name", "workers", "--scope", "worker")
	adminSecret, _ := s.token("--name", "admin", "--namespace", "*", "--scope", "admin")

	// A webhook receiver on site (127.0.0.2, opened by --webhook-allow;
	// the positive control) that redirects, and a canary on the server's
	// loopback that nothing may reach.
	var canaryHits, redirectHits, okHits atomic.Int32
	canaryLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	canary := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { canaryHits.Add(1) })}
	go canary.Serve(canaryLn)
	t.Cleanup(func() { canary.Close() })
	canaryURL := "http://" + canaryLn.Addr().String() + "/hook"
	recvLn, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	receiver := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			redirectHits.Add(1)
			http.Redirect(w, r, canaryURL, http.StatusTemporaryRedirect)
		case "/ok":
			okHits.Add(1)
		}
	})}
	go receiver.Serve(recvLn)
	t.Cleanup(func() { receiver.Close() })
	receiverURL := "http://" + recvLn.Addr().String()
	s.start("--webhook-allow", "127.0.0.2/32")
	base := "http://" + s.addr
	admin := client.New(base, adminSecret)
	a := &attacker{t: t, base: base}

	// What alice is after. The server's keys, every file under DATA/auth;
	// a file outside the data directory; team-b's image, build and
	// recipe, known to the test by markers alice never learns.
	outside := filepath.Join(work, "outside")
	canaryText := "outside-canary-" + rand.Text()
	writeFile(t, filepath.Join(outside, "canary.txt"), canaryText, 0o644)
	keyPath := filepath.Join(s.data, "auth", "signing-key.pem")
	var secrets []string
	filepath.WalkDir(filepath.Join(s.data, "auth"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".json") {
			b, _ := os.ReadFile(p)
			for _, line := range strings.Split(string(b), "\n") {
				if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
					secrets = append(secrets, line)
				}
			}
		}
		return nil
	})
	if len(secrets) < 2 {
		t.Fatalf("found %d secret lines under DATA/auth: the test no longer sees the keys", len(secrets))
	}
	secrets = append(secrets, canaryText)
	bobRepo, _ := name.NewRepository(s.addr+"/team-b/private", name.Insecure)
	bobImg, _ := random.Image(1024, 1)
	if err := remote.Write(bobRepo.Tag("v1"), bobImg, remote.WithAuth(&authn.Basic{Username: "bob", Password: bob})); err != nil {
		t.Fatal(err)
	}
	bobDigest, _ := bobImg.Digest()
	bobConfig, _ := bobImg.ConfigName()
	bobMarker := "bob-recipe-" + rand.Text()
	bobRecipe := packDir(t, dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nLABEL marker=" + bobMarker + "\n"}))
	// A secret no worker holds keeps bob's build queued for the whole test.
	bobBuild, err := client.New(base, bob).Submit(t.Context(), client.SubmitOptions{Repo: "team-b/private", Tag: "v2", Kind: "dockerfile", Platform: "linux/amd64", Secrets: []string{"held-by-nobody"}}, bytes.NewReader(bobRecipe), int64(len(bobRecipe)))
	if err != nil {
		t.Fatal(err)
	}
	// bob's manifest digest is not among them: alice sends it herself
	// (as a guess) and an answer may quote it back; his config's digest
	// only comes from his manifest.
	secrets = append(secrets, bobConfig.String(), bobMarker)

	// alice's honest use of her own namespace, before any attack.
	aliceRepo, _ := name.NewRepository(s.addr+"/team-a/app", name.Insecure)
	aliceAuth := remote.WithAuth(&authn.Basic{Username: "alice", Password: alice})
	aliceImg, _ := random.Image(1024, 1)
	if err := remote.Write(aliceRepo.Tag("v1"), aliceImg, aliceAuth); err != nil {
		t.Fatalf("control: alice pushes to team-a: %v", err)
	}
	// The base of the build whose log lines attack, pushed now: the
	// repository is alice's before the attacks start.
	baseRef := s.addr + "/team-a/debian:bookworm"
	run(t, "", "skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "alice:"+alice, "docker-daemon:"+baseImage, "docker://"+baseRef)
	goodRecipe := packDir(t, dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "a\n"}))
	if code, body := a.do("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&tag=good&platform=linux/amd64&secret=held-by-nobody", goodRecipe, "Authorization", basicAuth(alice)); code != http.StatusAccepted {
		t.Fatalf("control: alice submits an honest recipe: %d %s", code, body)
	}
	aliceTok := func(scope string) string {
		t.Helper()
		code, body := a.do("GET", "/token?service=pei&scope="+url.QueryEscape(scope), nil, "Authorization", basicAuth(alice))
		var tok struct{ Token string }
		if code != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
			t.Fatalf("/token %s: %d %s", scope, code, body)
		}
		return tok.Token
	}
	if code, _ := a.do("GET", "/v2/team-a/app/manifests/v1", nil, "Authorization", "Bearer "+aliceTok("repository:team-a/app:pull")); code != 200 {
		t.Fatalf("control: alice pulls her manifest with a registry token: %d", code)
	}

	// What must not change: the server's keys, team-b's repository and
	// builds, the recipes stored, what lies outside, and team-a's tags and
	// manifests (alice may add layers to her own repository, not tags).
	repos := filepath.Join(s.data, "registry", "docker", "registry", "v2", "repositories")
	type disk struct{ fixed, teamA, recipes, teamABuilds, teamBBuilds string }
	builds := func(repo string) string {
		bs, err := admin.Builds(t.Context(), repo)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range bs {
			out = append(out, fmt.Sprintf("%s %s %s %s", b.ID, b.Repository, b.State, b.Digest))
		}
		sort.Strings(out)
		return strings.Join(out, "\n")
	}
	diskState := func() disk {
		return disk{
			fixed: treeState(t, nil, filepath.Join(s.data, "auth"), filepath.Join(repos, "team-b"), outside),
			teamA: treeState(t, func(rel string) bool {
				return strings.Contains(rel, "_layers") || strings.Contains(rel, "_uploads")
			}, filepath.Join(repos, "team-a")),
			recipes:     treeState(t, nil, filepath.Join(s.data, "recipes")),
			teamABuilds: builds("team-a/app"),
			teamBBuilds: builds("team-b/private"),
		}
	}
	before := diskState()
	if !strings.Contains(before.teamBBuilds, bobBuild.ID) || !strings.Contains(before.fixed, "canary.txt") || !strings.Contains(before.teamA, "v1") {
		t.Fatalf("the state does not see bob's build, the canary or alice's tag:\n%+v", before)
	}
	bearer := []string{"Authorization", basicAuth(alice)}

	// Recipes: the config, the Dockerfile or any entry reaching a file
	// of the server's or outside, by absolute and relative links, chains
	// of links each inside on its own, hard links to files and to links,
	// and config fields naming such files.
	up := strings.Repeat("../", 24)
	chain := []tarEntry{{name: "l0", kind: tar.TypeSymlink, link: "."}}
	for i := 1; i <= 24; i++ {
		chain = append(chain, tarEntry{name: fmt.Sprintf("l%d", i), kind: tar.TypeSymlink, link: fmt.Sprintf("l%d/..", i-1)})
	}
	validConfig := func(field string) tarEntry {
		return tarEntry{name: "user_config.yml", body: "stage_1:\n  image: {base: debian:bookworm, output: 'x:1'}\n  ssh:\n    enable: true\n    users:\n      me:\n        password: '123456'\n        " + field + "\n"}
	}
	recipes := []struct {
		name, query string
		entries     []tarEntry
	}{
		{"config links to the signing key", "kind=pei", []tarEntry{{name: "user_config.yml", kind: tar.TypeSymlink, link: keyPath}}},
		{"config links up and out", "kind=pei", []tarEntry{{name: "user_config.yml", kind: tar.TypeSymlink, link: up + keyPath[1:]}}},
		{"config at the end of a chain of links", "kind=pei", append(append([]tarEntry{}, chain...), tarEntry{name: "user_config.yml", kind: tar.TypeSymlink, link: "l24" + keyPath})},
		{"config hard-linked to the signing key", "kind=pei", []tarEntry{{name: "user_config.yml", kind: tar.TypeLink, link: keyPath}}},
		{"config hard-linked to a link out", "kind=pei", []tarEntry{{name: "s", kind: tar.TypeSymlink, link: up + keyPath[1:]}, {name: "user_config.yml", kind: tar.TypeLink, link: "s"}}},
		{"config names the key as a public key", "kind=pei", []tarEntry{validConfig("pubkey_file: " + keyPath)}},
		{"config names the key by a relative path", "kind=pei", []tarEntry{validConfig("pubkey_file: " + up + keyPath[1:])}},
		{"config names a key through a link out", "kind=pei", []tarEntry{{name: "installation/k", kind: tar.TypeSymlink, link: keyPath}, validConfig("privkey_file: k")}},
		{"config's secret file outside", "kind=pei", []tarEntry{{name: "user_config.yml", body: "stage_1:\n  image: {base: debian:bookworm, output: 'x:1'}\nsecrets:\n  k: {file: " + keyPath + "}\n"}}},
		{"dockerfile= names the key", "kind=dockerfile&dockerfile=" + url.QueryEscape(keyPath), []tarEntry{{name: "Dockerfile", body: "FROM scratch\n"}}},
		{"dockerfile= climbs out", "kind=dockerfile&dockerfile=" + url.QueryEscape(up+keyPath[1:]), []tarEntry{{name: "Dockerfile", body: "FROM scratch\n"}}},
		{"Dockerfile links to the key", "kind=dockerfile", []tarEntry{{name: "Dockerfile", kind: tar.TypeSymlink, link: keyPath}}},
		{"entry climbs out", "kind=dockerfile", []tarEntry{{name: "Dockerfile", body: "FROM scratch\n"}, {name: up + outside[1:] + "/evil", body: "x"}}},
		{"absolute entry", "kind=dockerfile", []tarEntry{{name: "Dockerfile", body: "FROM scratch\n"}, {name: outside + "/evil", body: "x"}}},
		{"entry written through a link", "kind=pei", []tarEntry{{name: "d", kind: tar.TypeSymlink, link: outside}, {name: "d/evil", body: "x"}, validConfig("password2: x")}},
		{"directory entry over a link", "kind=pei", []tarEntry{{name: "d", kind: tar.TypeSymlink, link: outside}, {name: "d", kind: tar.TypeDir, mode: 0o777}, validConfig("password2: x")}},
		{"entry through a chain of links", "kind=pei", append(append([]tarEntry{}, chain...), tarEntry{name: "l24" + outside + "/evil", body: "x"}, validConfig("password2: x"))},
	}
	for _, r := range recipes {
		t.Run("recipe/"+r.name, func(t *testing.T) {
			code, body := a.do("POST", "/v2/team-a/app/_pei/builds?platform=linux/amd64&"+r.query, hostileRecipe(t, r.entries...), bearer...)
			if code != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %s", code, body)
			}
		})
	}

	// The same archives as recipe artifacts pushed through the registry.
	artifactTok := aliceTok("repository:team-a/app:pull,push")
	artifactRepo := aliceRepo
	pushArtifact := func(layer []byte, kind string) (int, string) {
		t.Helper()
		l := static.NewLayer(layer, "application/vnd.pei.recipe.v1.tar+gzip")
		e := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
		for _, x := range []v1.Layer{l, e} {
			if err := remote.WriteLayer(artifactRepo, x, aliceAuth); err != nil {
				t.Fatalf("alice uploads a blob to her repository: %v", err)
			}
		}
		ld, _ := l.Digest()
		ed, _ := e.Digest()
		m, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "artifactType": api.RecipeArtifactType,
			"config":      map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed.String(), "size": 2},
			"layers":      []any{map[string]any{"mediaType": "application/vnd.pei.recipe.v1.tar+gzip", "digest": ld.String(), "size": len(layer)}},
			"annotations": map[string]string{api.AnnotationKind: kind, api.AnnotationPlatform: "linux/amd64", api.AnnotationSecrets: "held-by-nobody"},
		})
		return a.do("PUT", "/v2/team-a/app/manifests/recipe-"+kind, m, "Authorization", "Bearer "+artifactTok, "Content-Type", string(types.OCIManifestSchema1))
	}
	if code, body := pushArtifact(goodRecipe, "dockerfile"); code != http.StatusCreated {
		t.Fatalf("control: alice pushes an honest recipe artifact: %d %s", code, body)
	}
	before = diskState() // the control added a tag and a build
	for _, r := range recipes {
		kind := "pei"
		if strings.Contains(r.query, "kind=dockerfile") {
			if strings.Contains(r.query, "dockerfile=") {
				continue // the artifact has no dockerfile= (its annotation is the Dockerfile's name)
			}
			kind = "dockerfile"
		}
		t.Run("artifact/"+r.name, func(t *testing.T) {
			if code, body := pushArtifact(hostileRecipe(t, r.entries...), kind); code/100 != 4 {
				t.Errorf("status %d, want 4xx: %s", code, body)
			}
		})
	}

	// Names and tags: other namespaces by path tricks, tags that are
	// paths, and team-b's things by id through team-a's routes.
	for _, p := range []struct{ method, path string }{
		{"POST", "/v2/team-b/private/_pei/builds?kind=dockerfile"},
		{"POST", "/v2/team-a/../team-b/private/_pei/builds?kind=dockerfile"},
		{"POST", "/v2/team-a/%2e%2e/team-b/private/_pei/builds?kind=dockerfile"},
		{"POST", "/v2/team-a%2f..%2fteam-b/private/_pei/builds?kind=dockerfile"},
		{"POST", "/v2//team-b/private/_pei/builds?kind=dockerfile"},
		{"POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&tag=..%2f..%2fteam-b"},
		{"POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&tag=a%0Ab"},
		{"POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&tag=" + strings.Repeat("x", 200)},
		{"POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&stage=..%2f..&platform=linux/amd64"},
		{"POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux%2Famd64%3Brm"},
		{"GET", "/v2/team-b/private/manifests/v1"},
		{"GET", "/v2/team-b/private/tags/list"},
		{"GET", "/v2/team-a/../team-b/private/manifests/v1"},
		{"GET", "/v2/team-b/private/blobs/" + bobDigest.String()},
		{"GET", "/v2/team-b/private/_pei/builds"},
		{"GET", "/v2/team-b/private/_pei/builds/" + bobBuild.ID},
		{"GET", "/v2/team-a/app/_pei/builds/" + bobBuild.ID},
		{"GET", "/v2/team-a/app/_pei/builds/" + bobBuild.ID + "/logs"},
		{"DELETE", "/v2/team-a/app/_pei/builds/" + bobBuild.ID},
		{"DELETE", "/v2/team-b/private/_pei/builds/" + bobBuild.ID},
		{"GET", "/v2/_pei/workers/builds/" + bobBuild.ID + "/recipe?worker=w"},
		{"POST", "/v2/_pei/workers/builds/" + bobBuild.ID + "/logs?worker=w"},
		{"POST", "/v2/_pei/workers/builds/" + bobBuild.ID + "/finish?worker=w"},
		{"POST", "/v2/_pei/workers/lease"},
	} {
		t.Run("path "+p.method+" "+p.path, func(t *testing.T) {
			var body []byte
			if p.method == "POST" {
				body = goodRecipe
				if strings.Contains(p.path, "/finish") {
					body = []byte(`{"state":"succeeded","digest":"sha256:` + strings.Repeat("0", 64) + `"}`)
				}
			}
			if code, resp := a.do(p.method, p.path, body, bearer...); code/100 != 4 {
				t.Errorf("status %d, want 4xx: %s", code, resp)
			}
		})
	}
	// A registry token asked for more than alice holds grants none of it.
	for _, scope := range []string{
		"repository:team-b/private:pull,push",
		"repository:team-a/../team-b/private:pull",
		"repository:team-a/app:pull,push,delete,*",
		"registry:catalog:*",
	} {
		t.Run("token scope "+scope, func(t *testing.T) {
			tok := aliceTok(scope)
			for _, p := range []struct{ method, path string }{
				{"GET", "/v2/team-b/private/manifests/v1"},
				{"DELETE", "/v2/team-a/app/manifests/v1"},
				{"GET", "/v2/team-b/private/_pei/builds/" + bobBuild.ID},
			} {
				if code, body := a.do(p.method, p.path, nil, "Authorization", "Bearer "+tok); code/100 != 4 {
					t.Errorf("%s %s with it: %d %s", p.method, p.path, code, body)
				}
			}
		})
	}

	// Query strings on the listings: whatever alice asks, team-b is not
	// in the answer.
	for _, q := range []string{
		"/v2/_catalog", "/v2/_catalog?n=100000&last=team-a", "/v2/_catalog?last=team-b%2F", "/v2/_catalog?n=-1",
		"/v2/_pei/builds", "/v2/_pei/builds?n=100000", "/v2/_pei/builds?n=-5", "/v2/_pei/builds?state=queued",
		"/v2/_pei/builds?state=%27%20OR%201%3D1%20--", "/v2/_pei/builds?namespace=team-b", "/v2/_pei/builds?repo=team-b/private",
		"/v2/team-a/app/_pei/builds?state=queued&n=1000", "/v2/team-a/app/_pei/builds?repo=team-b/private",
		"/v2/_pei/repositories", "/v2/_pei/repositories?namespace=team-b&n=1000",
		"/v2/team-a/app/referrers/" + bobDigest.String() + "?artifactType=" + url.QueryEscape("' OR 1=1"),
	} {
		t.Run("query "+q, func(t *testing.T) {
			code, body := a.do("GET", q, nil, "Authorization", basicAuth(alice))
			if code >= 500 {
				t.Errorf("status %d: %s", code, body)
			}
			for _, leak := range []string{"team-b", bobBuild.ID} {
				if strings.Contains(body, leak) {
					t.Errorf("%q in the answer: %s", leak, body)
				}
			}
		})
	}

	// Webhook URLs: the server's loopback by every spelling, metadata
	// addresses, other schemes, and a redirect from an allowed receiver to
	// loopback. Each refused at submission or at delivery; none reaches
	// the canary. The allowed receiver (the control) is called.
	_, cport, _ := net.SplitHostPort(canaryLn.Addr().String())
	hooks := []string{
		canaryURL,
		"http://localhost:" + cport + "/hook",
		"http://[::ffff:127.0.0.1]:" + cport + "/hook",
		"http://127.1:" + cport + "/hook",
		"http://0x7f000001:" + cport + "/hook",
		"http://2130706433:" + cport + "/hook",
		"http://[::1]:" + cport + "/hook",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"file://" + keyPath,
		"gopher://127.0.0.1:" + cport + "/_hook",
		receiverURL + "/redirect",
	}
	var hookBuilds []string
	for _, h := range hooks {
		q := url.Values{"kind": {"dockerfile"}, "platform": {"linux/amd64"}, "webhook": {h}, "tag": {"hook"}}
		code, body := a.do("POST", "/v2/team-a/app/_pei/builds?"+q.Encode(), goodRecipe, bearer...)
		switch code {
		case http.StatusBadRequest:
		case http.StatusAccepted:
			var b api.BuildView
			if err := json.Unmarshal([]byte(body), &b); err != nil {
				t.Fatal(err)
			}
			hookBuilds = append(hookBuilds, b.ID)
		default:
			t.Errorf("webhook %s: %d %s", h, code, body)
		}
	}
	control, err := client.New(base, alice).Submit(t.Context(), client.SubmitOptions{Repo: "team-a/app", Tag: "hook", Kind: "dockerfile", Platform: "linux/amd64", Webhook: receiverURL + "/ok"}, bytes.NewReader(goodRecipe), int64(len(goodRecipe)))
	if err != nil {
		t.Fatal(err)
	}
	// The builds end (failed by a worker through the API: no BuildKit
	// needed) and their webhooks are tried.
	wc := client.New(base, workers)
	for {
		l, err := wc.Lease(t.Context(), api.LeaseRequest{Name: "w", Platforms: []string{"linux/amd64"}})
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			break // every build a worker may take has ended
		}
		if err := wc.Finish(t.Context(), l.Build.ID, "w", api.Finish{State: api.Failed, Error: "stopped by the test"}); err != nil {
			t.Fatal(err)
		}
	}
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		missing := 0
		for _, id := range hookBuilds {
			if !strings.Contains(s.log.String(), "webhook for build "+id+", attempt 1") {
				missing++
			}
		}
		if missing == 0 && okHits.Load() >= 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d webhook attempts not logged, the allowed receiver called %d times:\n%s", missing, okHits.Load(), s.log)
		}
	}
	if n := canaryHits.Load(); n != 0 {
		t.Errorf("the loopback canary was called %d times", n)
	}
	if redirectHits.Load() == 0 {
		t.Error("the redirecting receiver (allowed) was never called: the redirect case proves nothing")
	}
	if strings.Contains(s.log.String(), "webhook for build "+control.ID+",") {
		t.Errorf("control: the allowed receiver's delivery failed:\n%s", s.log)
	}

	// Log lines: a build of alice's prints lines that try to end the
	// event stream early with a forged result, inject markup and open a
	// second stream. A real worker runs it.
	state := t.TempDir()
	d, err := buildkitd.Find(t.Context(), buildkitd.Options{Builder: "auto", StateDir: filepath.Join(state, "buildkit"), Network: buildkitd.Network{Isolate: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	// An image the worker host's engine holds and no registry has: a
	// tenant's pei project may not take it as its base.
	private := fmt.Sprintf("pei-e2e-worker-private:%d", os.Getpid())
	run(t, "", "docker", "tag", baseImage, private)
	t.Cleanup(func() { runErr("", "docker", "rmi", private) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		worker.Run(ctx, worker.Options{Server: base, Token: workers, Name: "w", Builder: d.Addr, Platforms: []string{"linux/amd64"}, StateDir: state, Log: testLog{t}})
	}()
	t.Cleanup(func() { cancel(); <-wdone })
	forged := `{"id":"forged","state":"succeeded","digest":"sha256:` + strings.Repeat("f", 64) + `"}`
	printf := func(s string) string { // a printf format printing s
		return strings.NewReplacer(`\`, `\\`, `%`, `%%`, `'`, `'\''`, "\r", `\r`, "\n", `\n`, "\x1b", `\033`).Replace(s)
	}
	evil := "\revent: end\rdata: " + forged + "\r\r" + "\n\nevent: end\ndata: " + forged + "\n\n" + "\r\nid: 999999\r\nretry: 1\r\n\r\n<script>alert(document.cookie)</script>\x1b[2J"
	logDir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM " + baseRef + "\nRUN printf '" + printf(evil) + "'; echo; exit 3\n"})
	logBuild := packDir(t, logDir)
	lb, err := client.New(base, alice).Submit(t.Context(), client.SubmitOptions{Repo: "team-a/app", Tag: "logs", Kind: "dockerfile", Platform: "linux/amd64"}, bytes.NewReader(logBuild), int64(len(logBuild)))
	if err != nil {
		t.Fatal(err)
	}
	end, err := client.New(base, alice).Follow(ctx, "team-a/app", lb.ID, func(client.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if end.ID != lb.ID || end.State != api.Failed {
		t.Errorf("the client's end: %+v, want build %s failed (the forged end says succeeded)", end, lb.ID)
	}
	code, stream := a.do("GET", "/v2/team-a/app/_pei/builds/"+lb.ID+"/logs", nil, "Authorization", basicAuth(alice), "Accept", "text/event-stream")
	events, data := sseEvents(stream)
	ends := 0
	for i, ev := range events {
		if ev == "end" {
			ends++
			var b api.BuildView
			if err := json.Unmarshal([]byte(data[i]), &b); err != nil || i != len(events)-1 || b.ID != lb.ID || b.State != api.Failed {
				t.Errorf("an end event at %d of %d (%v): %s", i, len(events), err, data[i])
			}
		}
	}
	if code != 200 || ends != 1 || !strings.Contains(stream, "script>alert") {
		t.Errorf("status %d, %d end events (want 1), the printed line in the stream: %v\n%s", code, ends, strings.Contains(stream, "script>alert"), stream)
	}
	code, plain := a.do("GET", "/v2/team-a/app/_pei/builds/"+lb.ID+"/logs", nil, "Authorization", basicAuth(alice))
	if code != 200 || !strings.Contains(plain, "<script>alert(document.cookie)</script>") {
		t.Errorf("plain log: %d\n%s", code, plain)
	}
	req, _ := http.NewRequest("GET", base+"/v2/team-a/app/_pei/builds/"+lb.ID+"/logs", nil)
	req.Header.Set("Authorization", basicAuth(alice))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct, nosniff := resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"); !strings.HasPrefix(ct, "text/plain") || nosniff != "nosniff" {
		t.Errorf("the log is served as %q (nosniff %q): a browser could take it for a page", ct, nosniff)
	}

	// The worker host's own images are not a tenant's bases.
	if _, err := runErr("", "docker", "image", "inspect", private); err != nil {
		t.Fatalf("control: the engine does not hold %s: %v", private, err)
	}
	projDir := dockerfileDir(t, map[string]string{"user_config.yml": "stage_1:\n  image: {base: '" + private + "', output: 'x:stage-1'}\n"})
	pb := packDir(t, projDir)
	pbv, err := client.New(base, alice).Submit(t.Context(), client.SubmitOptions{Repo: "team-a/app", Tag: "private-base", Stage: "1", Platform: "linux/amd64"}, bytes.NewReader(pb), int64(len(pb)))
	if err != nil {
		t.Fatal(err)
	}
	pend, err := client.New(base, alice).Follow(ctx, "team-a/app", pbv.ID, func(client.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if pend.State != api.Failed || !strings.Contains(pend.Error, "never takes images from the worker's Docker engine") {
		t.Errorf("a recipe on the worker engine's image: %s %q", pend.State, pend.Error)
	}

	// Nothing alice aimed at moved, and nothing of it came back. alice's
	// own new builds (and their recipes) are hers to make; everything
	// else is as it was.
	after := diskState()
	if !strings.Contains(after.teamBBuilds, bobBuild.ID+" team-b/private queued") {
		t.Errorf("bob's build is no longer queued:\n%s", after.teamBBuilds)
	}
	for _, c := range []struct {
		what          string
		before, after string
		grows         bool
	}{
		{"the keys, team-b's repository and outside", before.fixed, after.fixed, false},
		{"team-a's tags and manifests", before.teamA, after.teamA, false},
		{"team-b's builds", before.teamBBuilds, after.teamBBuilds, false},
		{"stored recipes", before.recipes, after.recipes, true},
		{"team-a's builds", before.teamABuilds, after.teamABuilds, true},
	} {
		if c.before == c.after {
			continue
		}
		if !c.grows {
			t.Errorf("%s changed:\nbefore:\n%s\nafter:\n%s", c.what, c.before, c.after)
			continue
		}
		for _, l := range strings.Split(c.before, "\n") {
			if !slices.Contains(strings.Split(c.after, "\n"), l) {
				t.Errorf("%s: %q gone or changed", c.what, l)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "evil")); err == nil {
		t.Error("a recipe wrote outside")
	}
	a.mu.Lock()
	all := strings.Join(a.answers, "\n")
	a.mu.Unlock()
	all += "\n" + s.log.String()
	for _, sec := range secrets {
		if strings.Contains(all, sec) {
			t.Errorf("a secret (%.12s…) is in an answer or the server's log", sec)
		}
	}
	// The control: bob still has what is his.
	if _, err := remote.Image(bobRepo.Tag("v1"), remote.WithAuth(&authn.Basic{Username: "bob", Password: bob})); err != nil {
		t.Errorf("bob pulls his image after the attacks: %v", err)
	}
}
