package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/testenv"
	"github.com/pei-dev/pei/internal/worker"
)

// restartBudget bounds how long pei serve may take to come up. The lease
// is five times longer: a worker heartbeats every third of the lease and
// keeps trying while the server is down, so a lease renewed at most a third
// of a lease before the kill is renewed again at most a third of a lease
// after the restart, and a downtime under a third of the lease cannot lose
// it. A build running across the restart therefore keeps its first attempt
// by construction, whatever the machine's speed.
const (
	restartBudget = 15 * time.Second
	crashLease    = 5 * restartBudget
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

// start starts pei serve and waits, within restartBudget, until it answers.
func (s *crashServer) start() {
	s.t.Helper()
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(s.pei, "serve", "--addr", s.addr, "--data", s.data, "--lease", crashLease.String())
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for end := time.Now().Add(restartBudget); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + s.addr + "/v2/"); err == nil {
			resp.Body.Close()
			return
		}
	}
	s.t.Fatalf("pei serve did not answer within %s:\n%s", restartBudget, s.log)
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

		// Start a 64 MiB upload (one random MiB, repeated), send 16 MiB of
		// it, wait until the server has written at least 8 MiB, and kill
		// the server in the middle of the request.
		const mib, total, sent = 1 << 20, 64, 16
		chunk := make([]byte, mib)
		rand.Read(chunk)
		prefix := func(n int64) v1.Hash { // digest of the first n bytes of the upload
			h := sha256.New()
			for ; n > 0; n -= min(n, mib) {
				h.Write(chunk[:min(n, mib)])
			}
			return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
		}
		tok := registryToken(t, s.addr, alice, "team-a/data")
		abs := func(url string) string {
			if strings.HasPrefix(url, "http") {
				return url
			}
			return "http://" + s.addr + url
		}
		bearer := func(method, url string, body io.Reader) *http.Response {
			t.Helper()
			req, _ := http.NewRequest(method, abs(url), body)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, url, err)
			}
			return resp
		}
		// received asks the server how much of an upload it holds (the
		// Range of an upload status), and the Location to go on from.
		received := func(loc string) (int64, string, int) {
			t.Helper()
			resp := bearer("GET", loc, nil)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				return 0, "", resp.StatusCode
			}
			var last int64
			if _, err := fmt.Sscanf(resp.Header.Get("Range"), "0-%d", &last); err != nil {
				t.Fatalf("upload status Range %q: %v", resp.Header.Get("Range"), err)
			}
			return last + 1, resp.Header.Get("Location"), resp.StatusCode
		}
		resp := bearer("POST", "/v2/team-a/data/blobs/uploads/", nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %d", resp.StatusCode)
		}
		loc := resp.Header.Get("Location")
		pr, pw := io.Pipe()
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest("PATCH", abs(loc), pr)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				err = fmt.Errorf("the cut PATCH was answered %d", resp.StatusCode)
			}
			errc <- err
		}()
		go func() {
			// Never more than sent: the rest of the 64 MiB never comes.
			for i := 0; i < sent; i++ {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
		}()
		var had int64
		for end := time.Now().Add(time.Minute); had < 8*mib; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("the server holds %d bytes of the upload after a minute", had)
			}
			had, _, _ = received(loc)
		}
		s.kill9()
		pw.CloseWithError(io.ErrUnexpectedEOF)
		if err := <-errc; err == nil {
			t.Fatal("the PATCH cut by the kill succeeded")
		}
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

		// The cut upload is not a blob: no prefix of it, nor the whole it
		// was meant to be, can be had from the repository; a blob that is
		// there can (so 404 means absent, not refused).
		ackedLayers, _ := got.Layers()
		ackedBlob, _ := ackedLayers[0].Digest()
		if resp := bearer("HEAD", "/v2/team-a/data/blobs/"+ackedBlob.String(), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("control: HEAD of an acknowledged blob: %d", resp.StatusCode)
		}
		held, next, status := received(loc)
		if status != http.StatusNoContent && status != http.StatusNotFound {
			t.Fatalf("status of the cut upload after the restart: %d", status)
		}
		t.Logf("the server held %d bytes before the kill, %d after the restart (upload status %d)", had, held, status)
		cut := map[string]v1.Hash{
			"all 64 MiB":          prefix(total * mib),
			"the 16 MiB sent":     prefix(sent * mib),
			"what the server had": prefix(had),
		}
		if held > 0 {
			cut["what the server still has"] = prefix(held)
		}
		for what, d := range cut {
			for _, method := range []string{"HEAD", "GET"} {
				resp := bearer(method, "/v2/team-a/data/blobs/"+d.String(), nil)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("%s of %s (%s) after the crash: %d, want 404", method, what, d, resp.StatusCode)
				}
			}
		}
		// Nor can the session be completed as the whole: the server holds
		// only part of it, so the digest does not match.
		for _, l := range []string{next, loc} {
			if l == "" {
				continue
			}
			sep := "?"
			if strings.Contains(l, "?") {
				sep = "&"
			}
			resp := bearer("PUT", l+sep+"digest="+cut["all 64 MiB"].String(), nil)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 4 {
				t.Errorf("completing the cut upload as all 64 MiB: %d, want a 4xx refusal: %s", resp.StatusCode, body)
			}
			if l == next && !strings.Contains(string(body), "DIGEST_INVALID") {
				t.Errorf("completing the cut upload from its current offset: %d %s, want DIGEST_INVALID", resp.StatusCode, body)
			}
		}
		if resp := bearer("HEAD", "/v2/team-a/data/blobs/"+cut["all 64 MiB"].String(), nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("the refused completion left a blob: HEAD %d", resp.StatusCode)
		}
		// Pushing works again.
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
		// The step prints a mark no earlier build printed (and that its
		// command line, which BuildKit logs too, does not hold), then runs
		// on: the server is killed once the mark is in the log, so while
		// the step runs.
		nonce := rand.Text()
		mark := "running-" + nonce
		dir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN n=" + nonce + "; echo \"running-$n\"; sleep 30; echo after > /after\n"})
		data := packDir(t, dir)
		queued, err := c.Submit(t.Context(), client.SubmitOptions{Repo: "team-a/queued", Tag: "v1", Kind: "dockerfile", Platform: "linux/s390x"}, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Submit(t.Context(), client.SubmitOptions{Repo: "team-a/crash", Tag: "v1", Kind: "dockerfile"}, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
			l, err := c.Log(t.Context(), "team-a/crash", b.ID)
			if err == nil && strings.Contains(l, mark) {
				break
			}
			if time.Now().After(end) {
				v, verr := c.Build(t.Context(), "team-a/crash", b.ID)
				t.Fatalf("the build's step did not start within 3 minutes: %+v %v\n%s", v, verr, l)
			}
		}
		down := time.Now()
		s.kill9()
		s.start()
		if d := time.Since(down); d >= crashLease/3 {
			t.Fatalf("the server was down %s, a third of the lease (%s) or more: the lease may have run out", d, crashLease)
		}

		var log strings.Builder
		fctx, fcancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer fcancel()
		end, err := c.Follow(fctx, "team-a/crash", b.ID, func(ev client.Event) { log.WriteString(ev.Data + "\n") })
		if err != nil {
			t.Fatal(err)
		}
		if end.State != api.Succeeded || end.Attempts != 1 {
			t.Fatalf("the build across the restart: %s attempts=%d %s\n%s\nserver:\n%s", end.State, end.Attempts, end.Error, log.String(), s.log)
		}
		if !strings.Contains(log.String(), "pushed ") {
			t.Errorf("log incomplete:\n%s", log.String())
		}
		if _, err := remote.Image(repo.Registry.Repo("team-a", "crash").Tag("v1"), auth); err != nil {
			t.Errorf("the image is not in the registry: %v", err)
		}
		q, err := c.Build(t.Context(), "team-a/queued", queued.ID)
		if err != nil || q.State != api.Queued {
			t.Fatalf("the queued build after the crash: %+v %v", q, err)
		}
		if q, err = c.Cancel(t.Context(), "team-a/queued", queued.ID); err != nil || q.State != api.Canceled {
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
