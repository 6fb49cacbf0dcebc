package service

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// timedHarness is a harness served by the server's own http.Server
// (Server.HTTPServer) with short timeouts.
func timedHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	cfg := Config{DataDir: t.TempDir(), PublicURL: url, Lease: 3 * time.Second,
		Timeouts: Timeouts{ReadHeader: 500 * time.Millisecond, Stall: 500 * time.Millisecond, Idle: time.Second}}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &harness{t: t, srv: srv, ts: &httptest.Server{URL: url, Listener: ln, Config: hs}, host: ln.Addr().String(), data: cfg.DataDir}
}

// trickle is a request body that sends n chunks, one every gap; after
// the chunk numbered pauseAt it waits for resume (or a timeout) first.
func trickle(chunks [][]byte, gap time.Duration, pauseAt int, resume <-chan struct{}) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for i, c := range chunks {
			if i == pauseAt {
				select {
				case <-resume:
				case <-time.After(10 * time.Second):
				}
			}
			time.Sleep(gap)
			if _, err := pw.Write(c); err != nil {
				return
			}
		}
		pw.Close()
	}()
	return pr
}

func randomChunks(n, size int) ([][]byte, string) {
	h := sha256.New()
	var out [][]byte
	for i := 0; i < n; i++ {
		c := make([]byte, size)
		rand.Read(c)
		h.Write(c)
		out = append(out, c)
	}
	return out, "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// startUpload opens a blob upload and returns its location.
func startUpload(t *testing.T, h *harness, tok string) string {
	t.Helper()
	resp := h.req("POST", "/v2/team-a/app/blobs/uploads/", "", nil, "Authorization", "Bearer "+tok)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("start upload: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = h.ts.URL + loc
	}
	return loc
}

// TestUploadOutlivesStallTimeout: a blob upload that takes three times
// the stall timeout but keeps sending completes; one that stops sending
// for longer than it is cut, and its blob is not there.
func TestUploadOutlivesStallTimeout(t *testing.T) {
	h := timedHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopePush)
	tok := h.registryToken("alice", alice, "repository:team-a/app:pull,push")
	for _, tc := range []struct {
		name    string
		pauseAt int
		ok      bool
	}{
		{"steady", -1, true},
		{"stalled", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunks, dgst := randomChunks(15, 4096)
			loc := startUpload(t, h, tok)
			resume := make(chan struct{})
			req, _ := http.NewRequest("PATCH", loc, trickle(chunks, 100*time.Millisecond, tc.pauseAt, resume))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/octet-stream")
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			close(resume)
			took := time.Since(start)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if !tc.ok {
				if err == nil && resp.StatusCode == 202 {
					t.Fatalf("a stalled upload was taken (%s)", took)
				}
				if code := h.bearer("HEAD", "/v2/team-a/app/blobs/"+dgst, tok, nil); code != 404 {
					t.Fatalf("the stalled upload's blob: %d", code)
				}
				return
			}
			if err != nil || resp.StatusCode != 202 {
				t.Fatalf("steady upload over %s: %v %v", took, err, resp)
			}
			if took < 3*h.srv.cfg.Timeouts.Stall {
				t.Fatalf("the upload took %s: not longer than the stall timeout, the test proves nothing", took)
			}
			loc = resp.Header.Get("Location")
			if !strings.HasPrefix(loc, "http") {
				loc = h.ts.URL + loc
			}
			sep := "?"
			if strings.Contains(loc, "?") {
				sep = "&"
			}
			req, _ = http.NewRequest("PUT", loc+sep+"digest="+dgst, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err = http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 201 {
				t.Fatalf("commit: %v %v", err, resp)
			}
			resp.Body.Close()
			if code := h.bearer("HEAD", "/v2/team-a/app/blobs/"+dgst, tok, nil); code != 200 {
				t.Fatalf("the blob: %d", code)
			}
		})
	}
}

// TestRecipeUploadCapped: a recipe trickling in is cut at the upload
// time however it progresses (progress moves the stall deadline, never
// past the cap).
func TestRecipeUploadCapped(t *testing.T) {
	h := timedHarness(t, func(c *Config) { c.Limits.UploadTimeout = 700 * time.Millisecond })
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	chunks := make([][]byte, 30)
	for i := range chunks {
		chunks[i] = []byte{0}
	}
	resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile", alice, trickle(chunks, 100*time.Millisecond, -1, nil))
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(errorCode(t, resp), "TIMEOUT") {
		t.Fatalf("a recipe trickling past the upload time: %d", resp.StatusCode)
	}
}

// TestLongPollAndLogStreamOutliveStallTimeout: a worker's long poll that
// waits longer than the stall timeout is answered, and a log followed for
// several times the stall timeout (kept open by comments) gets its end.
func TestLongPollAndLogStreamOutliveStallTimeout(t *testing.T) {
	h := timedHarness(t, nil)
	stall := h.srv.cfg.Timeouts.Stall
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)

	body, _ := json.Marshal(api.LeaseRequest{Name: "w", Platforms: []string{"linux/amd64"}, Wait: 2})
	start := time.Now()
	resp := h.req("POST", "/v2/_pei/workers/lease", wsec, bytes.NewReader(body))
	resp.Body.Close()
	if resp.StatusCode != 204 || time.Since(start) < 4*stall {
		t.Fatalf("a 2 s long poll: %d after %s", resp.StatusCode, time.Since(start))
	}

	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	b := decode[api.BuildView](t, h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64", alice, bytes.NewReader(good)))
	w := fakeWorker{h, wsec, "w"}
	w.lease("linux/amd64")
	stream := make(chan string, 1)
	go func() {
		r, _ := http.NewRequest("GET", h.ts.URL+"/v2/team-a/app/_pei/builds/"+b.ID+"/logs", nil)
		r.SetBasicAuth("u", alice)
		r.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			stream <- err.Error()
			return
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			data = append(data, "\nread error: "+err.Error()...)
		}
		stream <- string(data)
	}()
	// Quiet for four times the stall timeout, heartbeating the lease.
	for end := time.Now().Add(4 * stall); time.Now().Before(end); time.Sleep(stall / 2) {
		w.post(b.ID, "heartbeat", "{}").Body.Close()
	}
	w.post(b.ID, "logs", "late line\n").Body.Close()
	w.post(b.ID, "finish", `{"state":"failed","error":"x"}`).Body.Close()
	var got string
	select {
	case got = <-stream:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end")
	}
	events := parseEventStream(got)
	if len(events) != 2 || events[0].data != "late line" || events[1].typ != "end" {
		t.Fatalf("events %q from:\n%s", events, got)
	}
	if !strings.Contains(got, ": keepalive") {
		t.Fatalf("no keepalive in a quiet stream:\n%s", got)
	}
}

// TestSlowHeadersCut: a client that does not finish its request headers
// within ReadHeader is disconnected.
func TestSlowHeadersCut(t *testing.T) {
	h := timedHarness(t, nil)
	c, err := net.Dial("tcp", h.host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server kept a connection with unfinished headers open for 5 s")
	}
	if took := time.Since(start); took < h.srv.cfg.Timeouts.ReadHeader/2 {
		t.Fatalf("closed after %s, before the header timeout", took)
	}
}
