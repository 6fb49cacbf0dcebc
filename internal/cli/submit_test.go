package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// TestSubmitCommand: pei submit's output, on stdout the build id (or with
// --follow the image), on stderr the queued line and the log, and a
// failed build's error, against a server that answers as pei serve does.
func TestSubmitCommand(t *testing.T) {
	var end atomic.Value
	end.Store(`{"id":"b-1","state":"succeeded","image":"reg/team-a/app@sha256:1"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v2/team-a/app/_pei/builds":
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"id":"b-1","state":"queued","links":{"self":"/v2/team-a/app/_pei/builds/b-1","logs":"/v2/team-a/app/_pei/builds/b-1/logs"}}`)
		case r.URL.Path == "/v2/team-a/app/_pei/builds/b-1/logs":
			fmt.Fprintf(w, "id: 1\nevent: log\ndata: step 1\n\nevent: end\ndata: %s\n\n", end.Load())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	args := []string{"submit", "-p", dir, "--server", srv.URL, "--tag", "team-a/app:v1", "--dockerfile", "Dockerfile"}
	queued := regexp.MustCompile(`^build b-1 queued \(` + regexp.QuoteMeta(srv.URL) + `/v2/team-a/app/_pei/builds/b-1, recipe \d+B\)\n`)

	stdout, stderr, err := run(t, args...)
	if err != nil || stdout != "b-1\n" || !queued.MatchString(stderr) {
		t.Fatalf("submit: %v\nstdout %q\nstderr %q", err, stdout, stderr)
	}
	stdout, stderr, err = run(t, append(args, "--follow")...)
	if err != nil || stdout != "reg/team-a/app@sha256:1\n" || !queued.MatchString(stderr) || !strings.HasSuffix(stderr, ")\nstep 1\n") {
		t.Fatalf("submit --follow: %v\nstdout %q\nstderr %q", err, stdout, stderr)
	}
	end.Store(`{"id":"b-1","state":"failed","error":"step 1 failed"}`)
	stdout, _, err = run(t, append(args, "--follow")...)
	if err == nil || err.Error() != "build b-1 failed: step 1 failed" || stdout != "" {
		t.Fatalf("a failed build: %v, stdout %q", err, stdout)
	}
}
