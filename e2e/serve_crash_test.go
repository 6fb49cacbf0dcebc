package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/store"
	"github.com/pei-dev/pei/internal/testenv"
	"github.com/pei-dev/pei/internal/worker"
)

// crashServer runs the pei binary's serve in a process the test can kill -9.
type crashServer struct {
	t    *testing.T
	pei  string
	data string
	addr string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

func (s *crashServer) start() {
	s.t.Helper()
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(s.pei, "serve", "--addr", s.addr, "--data", s.data, "--lease", "4s")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + s.addr + "/v2/"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("pei serve did not start:\n%s", s.log)
}

func (s *crashServer) kill9() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

func (s *crashServer) token(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.pei, append([]string{"token", "create", "--data", s.data}, args...)...).Output()
	if err != nil {
		s.t.Fatalf("pei token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestServeCrash kills pei serve with SIGKILL during a blob upload and
// during a build and restarts it: no acknowledged blob or manifest is lost,
// the interrupted upload is not taken for a blob, the running build goes
// on with its worker, and a queued build is still queued.
func TestServeCrash(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	testenv.Tools(t, "skopeo")
	work := t.TempDir()
	s := &crashServer{t: t, pei: peiBinary(t), data: filepath.Join(work, "data"), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	alice := s.token("--name", "alice", "--namespace", "team-a", "--scope", "push,build")
	workerTok := s.token("--name", "workers", "--scope", "worker")
	s.start()
	t.Cleanup(func() { s.kill9() })
	auth := remote.WithAuth(&authn.Basic{Username: "alice", Password: alice})
	repo, _ := name.NewRepository(s.addr+"/team-a/data", name.Insecure)

	t.Run("during a blob upload", func(t *testing.T) {
		img, _ := random.Image(4<<20, 3)
		if err := remote.Write(repo.Tag("acked"), img, auth); err != nil {
			t.Fatal(err)
		}
		want, _ := img.Digest()

		// Start a 64 MiB upload, send part of it, and kill the server.
		tok := registryToken(t, s.addr, alice, "team-a/data")
		req, _ := http.NewRequest("POST", "http://"+s.addr+"/v2/team-a/data/blobs/uploads/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			t.Fatalf("start upload: %v %v", err, resp)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "http") {
			loc = "http://" + s.addr + loc
		}
		pr, pw := io.Pipe()
		patch, _ := http.NewRequest("PATCH", loc, pr)
		patch.Header.Set("Authorization", "Bearer "+tok)
		patch.Header.Set("Content-Type", "application/octet-stream")
		errc := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(patch)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		chunk := make([]byte, 1<<20)
		rand.Read(chunk)
		for i := 0; i < 20; i++ {
			if _, err := pw.Write(chunk); err != nil {
				t.Fatalf("upload write: %v", err)
			}
		}
		s.kill9()
		pw.CloseWithError(io.ErrUnexpectedEOF)
		<-errc
		s.start()

		got, err := remote.Image(repo.Tag("acked"), auth)
		if err != nil {
			t.Fatalf("the acknowledged image is gone: %v", err)
		}
		if d, _ := got.Digest(); d != want {
			t.Fatalf("digest %s, want %s", d, want)
		}
		if err := validate.Image(got); err != nil {
			t.Fatalf("the acknowledged image is damaged: %v", err)
		}
		// The cut upload is not a blob, and pushing works again.
		cat := decodeCatalog(t, s.addr, alice)
		if !strings.Contains(cat, "team-a/data") {
			t.Errorf("catalog after restart: %s", cat)
		}
		img2, _ := random.Image(8<<20, 2)
		if err := remote.Write(repo.Tag("after"), img2, auth); err != nil {
			t.Fatalf("push after the crash: %v", err)
		}
	})

	t.Run("during a build", func(t *testing.T) {
		state := t.TempDir()
		d, err := buildkitd.Find(t.Context(), buildkitd.Options{Builder: "auto", StateDir: filepath.Join(state, "buildkit"), Network: buildkitd.Network{Isolate: true}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Stop() })
		base := s.addr + "/team-a/debian:bookworm"
		run(t, "", "skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "alice:"+alice, "docker-daemon:"+baseImage, "docker://"+base)
		ctx, cancel := context.WithCancel(context.Background())
		wdone := make(chan struct{})
		go func() {
			defer close(wdone)
			worker.Run(ctx, worker.Options{Server: "http://" + s.addr, Token: workerTok, Name: "w", Builder: d.Addr, Platforms: []string{"linux/amd64"}, StateDir: state, Log: testLog{t}})
		}()
		t.Cleanup(func() { cancel(); <-wdone })

		c := client.New("http://"+s.addr, alice)
		dir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo before; sleep 12; echo after > /after\n"})
		data := packDir(t, dir)
		queued, err := c.Submit(t.Context(), client.SubmitOptions{Repo: "team-a/queued", Tag: "v1", Kind: "dockerfile", Platform: "linux/s390x"}, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Submit(t.Context(), client.SubmitOptions{Repo: "team-a/crash", Tag: "v1", Kind: "dockerfile"}, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
			v, err := c.Build(t.Context(), "team-a/crash", b.ID)
			if err == nil && v.State == store.Running {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("the build never started: %+v %v", v, err)
			}
		}
		time.Sleep(3 * time.Second)
		s.kill9()
		time.Sleep(time.Second)
		s.start()

		var log strings.Builder
		fctx, fcancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer fcancel()
		end, err := c.Follow(fctx, "team-a/crash", b.ID, func(ev client.Event) { log.WriteString(ev.Data + "\n") })
		if err != nil {
			t.Fatal(err)
		}
		if end.State != store.Succeeded || end.Attempts != 1 {
			t.Fatalf("the build across the restart: %s attempts=%d %s\n%s\nserver:\n%s", end.State, end.Attempts, end.Error, log.String(), s.log)
		}
		if !strings.Contains(log.String(), "pushed ") {
			t.Errorf("log incomplete:\n%s", log.String())
		}
		if _, err := remote.Image(repo.Registry.Repo("team-a", "crash").Tag("v1"), auth); err != nil {
			t.Errorf("the image is not in the registry: %v", err)
		}
		q, err := c.Build(t.Context(), "team-a/queued", queued.ID)
		if err != nil || q.State != store.Queued {
			t.Fatalf("the queued build after the crash: %+v %v", q, err)
		}
		if q, err = c.Cancel(t.Context(), "team-a/queued", queued.ID); err != nil || q.State != store.Canceled {
			t.Fatalf("cancel the queued build: %+v %v", q, err)
		}
	})

	t.Run("SIGTERM", func(t *testing.T) {
		// A clean stop ends the long-lived requests (a log stream here)
		// and exits 0 within seconds.
		c := client.New("http://"+s.addr, alice)
		dir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY Dockerfile /\n"})
		data := packDir(t, dir)
		b, err := c.Submit(t.Context(), client.SubmitOptions{Repo: "team-a/term", Kind: "dockerfile", Platform: "linux/s390x"}, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", "http://"+s.addr+"/v2/team-a/term/_pei/builds/"+b.ID+"/logs", nil)
		req.SetBasicAuth("u", alice)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		streamDone := make(chan struct{})
		go func() {
			io.Copy(io.Discard, resp.Body)
			close(streamDone)
		}()
		start := time.Now()
		s.cmd.Process.Signal(syscall.SIGTERM)
		err = s.cmd.Wait()
		if err != nil || time.Since(start) > 10*time.Second {
			t.Fatalf("pei serve after SIGTERM: %v in %s\n%s", err, time.Since(start), s.log)
		}
		select {
		case <-streamDone:
		case <-time.After(5 * time.Second):
			t.Fatal("the log stream outlived the server")
		}
		s.start() // for the cleanup's kill
	})
}

func registryToken(t *testing.T, addr, secret, repo string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/token?service=pei&scope=repository:"+repo+":pull,push", nil)
	req.SetBasicAuth("u", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Token string `json:"token"`
	}
	if err := jsonDecode(resp.Body, &v); err != nil || v.Token == "" {
		t.Fatalf("token: %v", err)
	}
	return v.Token
}

func decodeCatalog(t *testing.T, addr, secret string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/v2/_catalog", nil)
	req.SetBasicAuth("u", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
