package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/buildkit"
	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/image"
	"github.com/pei-dev/pei/internal/recipe"
	"github.com/pei-dev/pei/internal/service"
	"github.com/pei-dev/pei/internal/store"
	"github.com/pei-dev/pei/internal/testenv"
	"github.com/pei-dev/pei/internal/worker"
)

// serveEnv is a pei serve on a loopback port with tokens and a BuildKit
// daemon for its workers.
type serveEnv struct {
	t       *testing.T
	srv     *service.Server
	url     string
	host    string
	builder string
	state   string
	alice   string // team-a: push, build
	bob     string // team-b: push, build
	worker  string // worker scope
	admin   string
}

func startServe(t *testing.T, mod func(*service.Config)) *serveEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &serveEnv{t: t, host: ln.Addr().String(), state: t.TempDir()}
	e.url = "http://" + e.host
	cfg := service.Config{DataDir: t.TempDir(), PublicURL: e.url, Lease: 3 * time.Second, Log: testLog{t}}
	if mod != nil {
		mod(&cfg)
	}
	e.srv, err = service.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: e.srv}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		e.srv.Close()
	})
	tok := func(n string, ns []string, scopes ...string) string {
		_, s, err := e.srv.Store().CreateToken(context.Background(), store.Token{Name: n, Namespaces: ns, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	e.alice = tok("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	e.bob = tok("bob", []string{"team-b"}, api.ScopePush, api.ScopeBuild)
	e.worker = tok("workers", nil, api.ScopeWorker)
	e.admin = tok("admin", []string{"*"}, api.ScopeAdmin)
	// One BuildKit daemon for the workers, as a site would run it.
	d, err := buildkitd.Find(t.Context(), buildkitd.Options{Builder: "auto", StateDir: filepath.Join(e.state, "buildkit"), Network: buildkitd.Network{Isolate: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	e.builder = d.Addr
	seedBases(t, e.state)
	return e
}

// seedBases puts baseImage into the base store of the pei state directory
// state, as an admin's `pei base` would on a worker: builds for pei serve
// take their bases from there or a registry, never from the worker's
// Docker engine.
func seedBases(t *testing.T, state string) {
	t.Helper()
	bases := filepath.Join(state, "bases")
	if err := os.MkdirAll(bases, 0o755); err != nil {
		t.Fatal(err)
	}
	img, done, err := image.FromEngine(t.Context(), baseImage, bases)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if err := (buildkit.BaseStore{Dir: bases}).Add(baseImage, img); err != nil {
		t.Fatal(err)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// startWorker runs a pei worker until the test ends or stop is called.
func (e *serveEnv) startWorker(name string, secrets map[string]string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := worker.Run(ctx, worker.Options{Server: e.url, Token: e.worker, Name: name, Builder: e.builder,
			Secrets: secrets, StateDir: e.state, Log: testLog{e.t}})
		if err != nil && ctx.Err() == nil {
			e.t.Errorf("worker %s: %v", name, err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *serveEnv) client(token string) *client.Client { return client.New(e.url, token) }

func packDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := recipe.Pack(dir, nil, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (e *serveEnv) submit(token string, o client.SubmitOptions, dir string) api.BuildView {
	e.t.Helper()
	data := packDir(e.t, dir)
	b, err := e.client(token).Submit(e.t.Context(), o, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		e.t.Fatalf("submit: %v", err)
	}
	return b
}

// follow waits for a build's end, collecting its log from the event stream.
func (e *serveEnv) follow(token, repo, id string) (api.BuildView, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Minute)
	defer cancel()
	var log strings.Builder
	end, err := e.client(token).Follow(ctx, repo, id, func(ev client.Event) { log.WriteString(ev.Data + "\n") })
	if err != nil {
		e.t.Fatalf("follow %s: %v", id, err)
	}
	return end, log.String()
}

// dockerLogin makes a Docker config with credentials for the server.
func (e *serveEnv) dockerLogin(user, token string) string {
	e.t.Helper()
	cfg := e.t.TempDir()
	cmd := exec.Command("docker", "--config", cfg, "login", e.host, "-u", user, "--password-stdin")
	cmd.Stdin = strings.NewReader(token)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("docker login: %v\n%s", err, out)
	}
	return cfg
}

func dockerfileDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		writeFile(t, filepath.Join(dir, n), c, 0o644)
	}
	return dir
}

// TestServe runs pei serve with real BuildKit workers: a pei project and a
// Dockerfile (base from this registry, a worker-held secret) built and
// pulled back with docker, skopeo and crane; a recipe artifact that
// triggers a build whose image refers back to it; a killed worker's build
// finished by another; a running build canceled; tenants kept apart.
func TestServe(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	testenv.Tools(t, "skopeo", "crane")
	e := startServe(t, func(c *service.Config) { c.SharedNamespace = "pei" })
	pei := peiBinary(t)

	t.Run("pei project", func(t *testing.T) {
		// Submitted, built and pulled back with docker, skopeo and crane.
		defer e.startWorker("w1", nil)()
		dir, _ := smallProject(t, "  custom:\n    on_build: ['stage-1/custom/mark.sh']\n", map[string]string{
			"stage-1/custom/mark.sh": "#!/bin/sh\necho built-by-pei-serve > /opt/mark\n",
		})
		b := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/proj", Tag: "v1"}, dir)
		end, log := e.follow(e.alice, "team-a/proj", b.ID)
		if end.State != api.Succeeded {
			t.Fatalf("build %s: %s\n%s", end.State, end.Error, log)
		}
		for _, want := range []string{"on_build: stage-1/custom/mark.sh", "pushed " + e.host + "/team-a/proj@" + end.Digest} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		if end.Image != e.host+"/team-a/proj@"+end.Digest || end.Attempts != 1 || end.Worker != "workers/w1" {
			t.Errorf("status %+v", end)
		}
		ref := e.host + "/team-a/proj:v1"
		cfg := e.dockerLogin("alice", e.alice)
		run(t, dir, "docker", "--config", cfg, "pull", ref)
		t.Cleanup(func() { runErr(dir, "docker", "rmi", "-f", ref) })
		if out := run(t, dir, "docker", "run", "--rm", ref, "cat", "/opt/mark"); strings.TrimSpace(out) != "built-by-pei-serve" {
			t.Errorf("/opt/mark = %q", out)
		}
		if got := strings.TrimSpace(run(t, dir, "docker", "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref)); got != e.host+"/team-a/proj@"+end.Digest {
			t.Errorf("docker pulled %s, build said %s", got, end.Digest)
		}
		sk := run(t, dir, "skopeo", "inspect", "--tls-verify=false", "--creds", "alice:"+e.alice, "docker://"+ref)
		if !strings.Contains(sk, end.Digest) {
			t.Errorf("skopeo inspect does not show %s:\n%s", end.Digest, sk)
		}
		crane := func(args ...string) (string, error) {
			cmd := exec.Command("crane", args...)
			cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := crane("digest", "--insecure", ref); err != nil || strings.TrimSpace(out) != end.Digest {
			t.Errorf("crane digest: %q %v", out, err)
		}
		// skopeo and crane push too: copy the image to another tag and back.
		run(t, dir, "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", "alice:"+e.alice,
			"--dest-creds", "alice:"+e.alice, "docker://"+ref, "docker://"+e.host+"/team-a/proj:skopeo")
		if out, err := crane("copy", "--insecure", e.host+"/team-a/proj:skopeo", e.host+"/team-a/proj:crane"); err != nil {
			t.Fatalf("crane copy: %v\n%s", err, out)
		}
		if out, _ := crane("digest", "--insecure", e.host+"/team-a/proj:crane"); strings.TrimSpace(out) != end.Digest {
			t.Errorf("after skopeo and crane copies the digest is %q, want %s", out, end.Digest)
		}

		// docker pushes too.
		run(t, dir, "docker", "tag", ref, e.host+"/team-a/proj:docker")
		t.Cleanup(func() { runErr(dir, "docker", "rmi", e.host+"/team-a/proj:docker") })
		run(t, dir, "docker", "--config", cfg, "push", e.host+"/team-a/proj:docker")
		if out, _ := crane("digest", "--insecure", e.host+"/team-a/proj:docker"); !strings.HasPrefix(strings.TrimSpace(out), "sha256:") {
			t.Errorf("docker push left no image: %q", out)
		}

		// Another tenant can read, push, build, list nothing of team-a.
		bobCfg := e.dockerLogin("bob", e.bob)
		if out, err := runErr(dir, "docker", "--config", bobCfg, "pull", ref); err == nil {
			t.Errorf("bob pulled team-a's image:\n%s", out)
		}
		run(t, dir, "docker", "tag", ref, e.host+"/team-a/proj:bob")
		t.Cleanup(func() { runErr(dir, "docker", "rmi", e.host+"/team-a/proj:bob") })
		if out, err := runErr(dir, "docker", "--config", bobCfg, "push", e.host+"/team-a/proj:bob"); err == nil {
			t.Errorf("bob pushed into team-a:\n%s", out)
		}
		if out, err := runErr(dir, "skopeo", "inspect", "--tls-verify=false", "--creds", "bob:"+e.bob, "docker://"+ref); err == nil {
			t.Errorf("skopeo with bob's token read team-a:\n%s", out)
		}
		if _, err := e.client(e.bob).Submit(t.Context(), client.SubmitOptions{Repo: "team-a/proj", Tag: "x"}, bytes.NewReader(packDir(t, dir)), -1); err == nil {
			t.Error("bob submitted a build into team-a")
		}
		if _, err := e.client(e.bob).Build(t.Context(), "team-a/proj", b.ID); err == nil {
			t.Error("bob read team-a's build")
		}
		cmd := exec.Command("crane", "catalog", "--insecure", e.host)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+bobCfg)
		if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "team-a") {
			t.Errorf("bob's catalog: %v\n%s", err, out)
		}
	})

	secretValue := "npm-token-" + fmt.Sprint(time.Now().UnixNano())
	secretFile := filepath.Join(t.TempDir(), "npm")
	writeFile(t, secretFile, secretValue, 0o600)

	t.Run("Dockerfile", func(t *testing.T) {
		// On a base from this registry, with a worker-held secret.
		stop := e.startWorker("w-secrets", map[string]string{"npm": secretFile})
		defer stop()
		base := e.host + "/team-a/debian:bookworm"
		run(t, "", "skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "alice:"+e.alice, "docker-daemon:"+baseImage, "docker://"+base)
		dir := dockerfileDir(t, map[string]string{
			"Dockerfile": "FROM " + base + "\nRUN --mount=type=secret,id=npm sha256sum /run/secrets/npm | cut -c1-64 > /npm.sum\nCOPY hello /hello\n",
			"hello":      "hello from a Dockerfile\n",
		})
		b := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/tool", Tag: "v1", Kind: "dockerfile", Dockerfile: "Dockerfile", Secrets: []string{"npm"}}, dir)
		end, log := e.follow(e.alice, "team-a/tool", b.ID)
		if end.State != api.Succeeded {
			t.Fatalf("build %s: %s\n%s", end.State, end.Error, log)
		}
		if strings.Contains(log, secretValue) {
			t.Error("the secret is in the build log")
		}
		ref := e.host + "/team-a/tool:v1"
		cfg := e.dockerLogin("alice", e.alice)
		run(t, dir, "docker", "--config", cfg, "pull", ref)
		t.Cleanup(func() { runErr(dir, "docker", "rmi", "-f", ref) })
		sum := sha256.Sum256([]byte(secretValue))
		if out := run(t, dir, "docker", "run", "--rm", ref, "cat", "/npm.sum", "/hello"); out != hex.EncodeToString(sum[:])+"\nhello from a Dockerfile\n" {
			t.Errorf("image files: %q", out)
		}
		for _, h := range scanImage(t, ref, map[string]string{"npm": secretValue}) {
			t.Errorf("secret found in %s", h.where)
		}

		// A build may not read another tenant's image through the
		// worker: its credentials are the submitter's.
		bobBase := e.host + "/team-b/private:v1"
		run(t, "", "skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "bob:"+e.bob, "docker-daemon:"+baseImage, "docker://"+bobBase)
		steal := dockerfileDir(t, map[string]string{"Dockerfile": "FROM " + bobBase + "\nRUN true\n"})
		b = e.submit(e.alice, client.SubmitOptions{Repo: "team-a/steal", Tag: "v1", Kind: "dockerfile", Dockerfile: "Dockerfile"}, steal)
		end, log = e.follow(e.alice, "team-a/steal", b.ID)
		if end.State != api.Failed || !strings.Contains(strings.ToLower(end.Error+log), "unauthorized") && !strings.Contains(strings.ToLower(end.Error+log), "denied") {
			t.Errorf("a build read team-b's image: %s %s\n%s", end.State, end.Error, log)
		}
	})

	t.Run("shared catalog", func(t *testing.T) { serveCatalog(t, e, pei) })

	t.Run("recipe artifact", func(t *testing.T) {
		// Pushed to the registry, it builds an image that refers to it.
		stop := e.startWorker("w-artifact", nil)
		defer stop()
		dir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY hello /hello\n", "hello": "from an artifact\n"})
		repo, err := name.NewRepository(e.host+"/team-a/fromartifact", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		layer := static.NewLayer(packDir(t, dir), types.MediaType(api.RecipeMediaType))
		ld, _ := layer.Digest()
		lsize, _ := layer.Size()
		auth := remote.WithAuth(&authn.Basic{Username: "alice", Password: e.alice})
		if err := remote.WriteLayer(repo, layer, auth); err != nil {
			t.Fatal(err)
		}
		empty := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
		if err := remote.WriteLayer(repo, empty, auth); err != nil {
			t.Fatal(err)
		}
		ed, _ := empty.Digest()
		manifest, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": api.RecipeArtifactType,
			"config":      map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed.String(), "size": 2},
			"layers":      []any{map[string]any{"mediaType": api.RecipeMediaType, "digest": ld.String(), "size": lsize}},
			"annotations": map[string]string{api.AnnotationKind: "dockerfile", api.AnnotationTag: "built"},
		})
		if err := remote.Put(repo.Tag("recipe"), rawManifest{manifest}, auth); err != nil {
			t.Fatalf("push the recipe artifact: %v", err)
		}
		recipeDigest, _, _ := v1.SHA256(bytes.NewReader(manifest))
		var build api.BuildView
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			list, err := e.client(e.alice).Builds(t.Context(), "team-a/fromartifact")
			if err == nil && len(list) == 1 {
				build = list[0]
				break
			}
		}
		if build.ID == "" || build.Subject != recipeDigest.String() {
			t.Fatalf("no build queued for the artifact (%+v)", build)
		}
		end, log := e.follow(e.alice, "team-a/fromartifact", build.ID)
		if end.State != api.Succeeded {
			t.Fatalf("build %s: %s\n%s", end.State, end.Error, log)
		}
		idx, err := remote.Referrers(repo.Digest(recipeDigest.String()), auth)
		if err != nil {
			t.Fatalf("referrers: %v", err)
		}
		im, _ := idx.IndexManifest()
		if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != end.Digest {
			t.Fatalf("referrers of the recipe %+v, want the built image %s", im.Manifests, end.Digest)
		}
		img, err := remote.Image(repo.Tag("built"), auth)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		if m.Subject == nil || m.Subject.Digest != recipeDigest {
			t.Fatalf("built image's subject %+v", m.Subject)
		}
	})

	t.Run("shared cache", func(t *testing.T) {
		// A step built by one worker is reused by a worker on another
		// BuildKit daemon, through the cache the workers keep in the
		// registry (REPO/buildcache).
		dir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM " + e.host + "/team-a/debian:bookworm\nRUN head -c 16 /dev/urandom | od -x > /stamp\n"})
		stop := e.startWorker("cache-1", nil)
		b := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/cached", Tag: "one", Kind: "dockerfile", Dockerfile: "Dockerfile"}, dir)
		if end, log := e.follow(e.alice, "team-a/cached", b.ID); end.State != api.Succeeded {
			t.Fatalf("first build: %s\n%s", end.Error, log)
		}
		stop()
		fresh, err := buildkitd.Find(t.Context(), buildkitd.Options{Builder: "auto", StateDir: filepath.Join(t.TempDir(), "buildkit"), Network: buildkitd.Network{Isolate: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fresh.Stop() })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			worker.Run(ctx, worker.Options{Server: e.url, Token: e.worker, Name: "cache-2", Builder: fresh.Addr, StateDir: t.TempDir(), Log: testLog{t}})
		}()
		defer func() { cancel(); <-done }()
		b2 := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/cached", Tag: "two", Kind: "dockerfile", Dockerfile: "Dockerfile"}, dir)
		end, log := e.follow(e.alice, "team-a/cached", b2.ID)
		if end.State != api.Succeeded || end.Worker != "workers/cache-2" {
			t.Fatalf("second build: %s on %s %s\n%s", end.State, end.Worker, end.Error, log)
		}
		if !strings.Contains(log, "importing cache manifest from "+e.host+"/team-a/cached/buildcache:linux-amd64") {
			t.Errorf("the cache was not imported:\n%s", log)
		}
		auth := remote.WithAuth(&authn.Basic{Username: "alice", Password: e.alice})
		layers := func(tag string) string {
			ref, _ := name.ParseReference(e.host+"/team-a/cached:"+tag, name.Insecure)
			img, err := remote.Image(ref, auth)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := img.Manifest()
			var ds []string
			for _, l := range m.Layers {
				ds = append(ds, l.Digest.String())
			}
			return strings.Join(ds, ",")
		}
		if one, two := layers("one"), layers("two"); one != two {
			t.Errorf("the random step differs: the cache was not used\n%s\n%s", one, two)
		}
	})

	slow := dockerfileDir(t, map[string]string{"Dockerfile": "FROM " + e.host + "/team-a/debian:bookworm\nRUN sleep 25 && echo slept > /slept\n"})

	t.Run("stopped and killed workers", func(t *testing.T) {
		// A worker stopped (SIGTERM) gives its build back at once; one
		// killed with SIGKILL loses it when its lease runs out; a third
		// worker finishes it.
		b := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/slow", Tag: "v1", Kind: "dockerfile", Dockerfile: "Dockerfile"}, slow)
		stopA := e.startWorker("stopping", nil)
		waitState(t, e, "team-a/slow", b.ID, func(v api.BuildView) bool { return v.State == api.Running && v.Worker == "workers/stopping" })
		time.Sleep(time.Second)
		stopA()
		if v, _ := e.client(e.alice).Build(t.Context(), "team-a/slow", b.ID); v.State != api.Queued || !strings.Contains(v.Error, "stopping stopped; queued again") {
			t.Fatalf("after a graceful stop: %s %q", v.State, v.Error)
		}

		cmd := exec.Command(pei, "worker", "--server", e.url, "--builder", e.builder, "--name", "doomed")
		cmd.Env = append(os.Environ(), "PEI_TOKEN="+e.worker, "HOME="+t.TempDir())
		var wlog bytes.Buffer
		cmd.Stdout, cmd.Stderr = &wlog, &wlog
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitState(t, e, "team-a/slow", b.ID, func(v api.BuildView) bool { return v.State == api.Running && v.Worker == "workers/doomed" })
		time.Sleep(2 * time.Second)
		cmd.Process.Kill() // SIGKILL: no word to the server
		cmd.Wait()
		defer e.startWorker("rescuer", nil)()
		end, log := e.follow(e.alice, "team-a/slow", b.ID)
		if end.State != api.Succeeded || end.Attempts != 3 || end.Worker != "workers/rescuer" {
			t.Fatalf("after the workers went: %s attempts=%d worker=%s %s\n%s\nkilled worker:\n%s", end.State, end.Attempts, end.Worker, end.Error, log, wlog.String())
		}
		if !strings.Contains(log, "pei worker stopping is stopping; the build goes back to the queue") {
			t.Errorf("the stopped worker's last words are not in the log:\n%s", log)
		}
	})

	t.Run("cancel running", func(t *testing.T) {
		defer e.startWorker("w2", nil)()
		slow2 := dockerfileDir(t, map[string]string{"Dockerfile": "FROM " + e.host + "/team-a/debian:bookworm\nRUN sleep 120\n"})
		b := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/slow", Tag: "v2", Kind: "dockerfile", Dockerfile: "Dockerfile"}, slow2)
		waitState(t, e, "team-a/slow", b.ID, func(v api.BuildView) bool { return v.State == api.Running })
		time.Sleep(2 * time.Second)
		start := time.Now()
		if _, err := e.client(e.alice).Cancel(t.Context(), "team-a/slow", b.ID); err != nil {
			t.Fatal(err)
		}
		end, _ := e.follow(e.alice, "team-a/slow", b.ID)
		if end.State != api.Canceled {
			t.Fatalf("state %s (%s)", end.State, end.Error)
		}
		if waited := time.Since(start); waited > 60*time.Second {
			t.Errorf("the cancel took %s", waited)
		}
	})

	t.Run("pei submit", func(t *testing.T) {
		// The CLI: upload, follow the log, print the image; a failed
		// build exits 1 with its reason; a build past its timeout fails.
		defer e.startWorker("w3", nil)()
		submit := func(dir string, args ...string) (string, string, error) {
			cmd := exec.Command(pei, append([]string{"submit", "-p", dir, "--server", e.url}, args...)...)
			cmd.Env = append(os.Environ(), "PEI_TOKEN="+e.alice)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			return stdout.String(), stderr.String(), err
		}
		ok := dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY hello /hello\n", "hello": "cli\n"})
		out, errOut, err := submit(ok, "--tag", "team-a/cli:v1", "--dockerfile", "Dockerfile", "--follow")
		if err != nil {
			t.Fatalf("pei submit: %v\n%s", err, errOut)
		}
		if !strings.HasPrefix(out, e.host+"/team-a/cli@sha256:") || strings.Count(out, "\n") != 1 {
			t.Errorf("stdout %q, want the image reference alone", out)
		}
		for _, want := range []string{"queued (" + e.url + "/v2/team-a/cli/_pei/builds/b-", "COPY hello /hello", "pushed "} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
		bad := dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY missing /x\n"})
		_, errOut, err = submit(bad, "--tag", "team-a/cli:bad", "--dockerfile", "Dockerfile", "--follow")
		if code := exitCode(err); code != 1 || !strings.Contains(errOut, "failed") || !strings.Contains(errOut, "missing") {
			t.Errorf("a failing build: exit %d\n%s", code, errOut)
		}
		late := dockerfileDir(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s/team-a/debian:bookworm\nRUN echo %d; sleep 60\n", e.host, time.Now().UnixNano())})
		_, errOut, err = submit(late, "--tag", "team-a/cli:late", "--dockerfile", "Dockerfile", "--timeout", "4s", "--follow")
		if code := exitCode(err); code != 1 || !strings.Contains(errOut, "timed out after 4s") {
			t.Errorf("a build past its timeout: exit %d\n%s", code, errOut)
		}
		badCfg := t.TempDir()
		writeFile(t, filepath.Join(badCfg, "user_config.yml"), "stage_1:\n  image: {base: debian:bookworm, output: 'x:1'}\n  ssh: {enable: maybe}\n", 0o644)
		_, errOut, err = submit(badCfg, "--tag", "team-a/cli:cfg")
		if err == nil || !strings.Contains(errOut, "user_config.yml:3") {
			t.Errorf("a bad config: %v\n%s", err, errOut)
		}
	})

	t.Run("multi-platform", func(t *testing.T) {
		// Two platforms in one submission: one worker that builds both
		// pushes one image index.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			worker.Run(ctx, worker.Options{Server: e.url, Token: e.worker, Name: "multi", Builder: e.builder,
				Platforms: []string{"linux/amd64", "linux/arm64"}, StateDir: e.state, Log: testLog{t}})
		}()
		defer func() { cancel(); <-done }()
		dir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY hello /hello\n", "hello": "both\n"})
		b := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/multi", Tag: "v1", Kind: "dockerfile", Dockerfile: "Dockerfile", Platform: "linux/arm64, linux/amd64"}, dir)
		if b.Platform != "linux/arm64,linux/amd64" {
			t.Errorf("platform %q", b.Platform)
		}
		end, log := e.follow(e.alice, "team-a/multi", b.ID)
		if end.State != api.Succeeded || end.Worker != "workers/multi" {
			t.Fatalf("build: %s on %s %s\n%s", end.State, end.Worker, end.Error, log)
		}
		ref, _ := name.ParseReference(e.host+"/team-a/multi:v1", name.Insecure)
		idx, err := remote.Index(ref, remote.WithAuth(&authn.Basic{Username: "alice", Password: e.alice}))
		if err != nil {
			t.Fatalf("not an index: %v", err)
		}
		if d, _ := idx.Digest(); d.String() != end.Digest {
			t.Errorf("tag %s, build said %s", d, end.Digest)
		}
		m, _ := idx.IndexManifest()
		var plats []string
		for _, d := range m.Manifests {
			if d.Platform != nil {
				plats = append(plats, d.Platform.OS+"/"+d.Platform.Architecture)
			}
		}
		if strings.Join(plats, " ") != "linux/arm64 linux/amd64" && strings.Join(plats, " ") != "linux/amd64 linux/arm64" {
			t.Errorf("index platforms %v", plats)
		}
	})

	t.Run("conformance", func(t *testing.T) {
		// The OCI distribution-spec conformance suite: pull, push, content
		// discovery and management.
		_, tok, err := e.srv.Store().CreateToken(context.Background(), store.Token{Name: "conformance", Namespaces: []string{"conformance"}, Scopes: []string{api.ScopeAdmin}})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Tools(t, "oci-conformance")
		res := t.TempDir()
		cmd := exec.Command("oci-conformance")
		cmd.Dir = res
		cmd.Env = append(os.Environ(), "OCI_REGISTRY="+e.host, "OCI_TLS=disabled", "OCI_USERNAME=conformance", "OCI_PASSWORD="+tok,
			"OCI_RESULTS_DIR="+res, "OCI_API_BLOBS_UPLOAD_CANCEL=true",
			// The registry library stores sha256 content only.
			"OCI_DATA_SHA512=false")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("conformance suite failed: %v\n%s", err, out)
		}
		for _, want := range []string{"Referrers.....................:       Pass", "Blob chunked..................:       Pass", "Manifest put with subject.....:       Pass", "FAIL..........................:          0"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("conformance output lacks %q:\n%s", want, out)
			}
		}
	})
}

func waitState(t *testing.T, e *serveEnv, repo, id string, ok func(api.BuildView) bool) {
	t.Helper()
	var v api.BuildView
	var err error
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if v, err = e.client(e.alice).Build(t.Context(), repo, id); err == nil && ok(v) {
			return
		}
	}
	t.Fatalf("build %s never reached the wanted state: %+v %v", id, v, err)
}

type rawManifest struct{ b []byte }

func (m rawManifest) RawManifest() ([]byte, error) { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
