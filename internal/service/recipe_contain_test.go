//go:build linux

package service

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

// Recipe checks read nothing outside the recipe. Each test puts canaries
// beside the server's scratch directory (TMPDIR, where recipes are
// unpacked): files holding a secret, a directory, and a FIFO preloaded with
// the secret, which any read through a link would drain. A check that
// refuses must name the entry and carry none of the secret; nothing
// outside may change, and the scratch directory must be gone after.

// outside is the canaries beside a server's scratch directory.
type outside struct {
	top, tmp string
	secret   []byte
	fifo     *os.File
	before   map[string]string
}

func newOutside(t *testing.T) *outside {
	t.Helper()
	top := t.TempDir()
	o := &outside{top: top, tmp: filepath.Join(top, "tmp"), secret: []byte(fmt.Sprintf("canary-%x", rand.Uint64()))}
	for _, d := range []string{"tmp", "cdir"} {
		if err := os.Mkdir(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"secret", "cdir/user_config.yml", "cdir/Dockerfile", "cdir/key.pub", "cdir/a.sh"} {
		if err := os.WriteFile(filepath.Join(top, f), o.secret, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(top, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo, err := os.OpenFile(filepath.Join(top, "fifo"), os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A reader that drained the FIFO would then block, as the test holds a
	// writer: closing it after a generous minute ends that read (and
	// shows as a drained FIFO) instead of hanging the test.
	watchdog := time.AfterFunc(time.Minute, func() { fifo.Close() })
	t.Cleanup(func() { watchdog.Stop(); fifo.Close() })
	if _, err := fifo.Write(o.secret); err != nil {
		t.Fatal(err)
	}
	o.fifo = fifo
	t.Setenv("TMPDIR", o.tmp)
	o.before = o.snapshot(t)
	return o
}

// snapshot describes everything under top, following no link; the FIFO
// is described by what it holds, not its times.
func (o *outside) snapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(o.top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeNamedPipe != 0:
			desc = fi.Mode().String()
		case p == o.tmp:
			// Scratch directories come and go in it; none may stay.
			desc = fi.Mode().String()
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (o *outside) check(t *testing.T, msg string) {
	t.Helper()
	if bytes.Contains([]byte(msg), o.secret) {
		t.Fatalf("the answer carries the canary secret: %s", msg)
	}
	after := o.snapshot(t)
	for p, d := range o.before {
		if after[p] != d {
			t.Errorf("%s changed: %q, was %q", p, after[p], d)
		}
	}
	for p := range after {
		if _, ok := o.before[p]; !ok {
			t.Errorf("%s was left behind", p)
		}
	}
	buf := make([]byte, len(o.secret)+1)
	n, _ := o.fifo.Read(buf)
	if !bytes.Equal(buf[:n], o.secret) {
		t.Errorf("the canary FIFO was read: %d of %d bytes left", n, len(o.secret))
	}
	if _, err := o.fifo.Write(buf[:n]); err != nil {
		t.Fatal(err)
	}
}

// entry is one tar entry: "->" starts a symbolic link's target, "=>" a
// hard link's, "/" ending the name a directory; @OUT is the canaries' top.
type entry struct{ name, content string }

func recipeArchive(t testing.TB, top string, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		c := strings.ReplaceAll(e.content, "@OUT", top)
		hdr := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(c))}
		switch {
		case strings.HasSuffix(e.name, "/"):
			hdr = &tar.Header{Name: e.name, Typeflag: tar.TypeDir, Mode: 0o755}
		case strings.HasPrefix(c, "->"):
			hdr = &tar.Header{Name: e.name, Typeflag: tar.TypeSymlink, Linkname: c[2:], Mode: 0o777}
		case strings.HasPrefix(c, "=>"):
			hdr = &tar.Header{Name: e.name, Typeflag: tar.TypeLink, Linkname: c[2:], Mode: 0o644}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			io.WriteString(tw, c)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// checker is a server with only what checking a recipe needs.
func checker(t *testing.T, limits Limits) *Server {
	fillLimits(&limits)
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "pei.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Server{cfg: Config{Limits: limits}, store: st, unpacks: make(chan struct{}, limits.MaxUnpacks)}
}

const (
	honestConfig = "stage_1:\n  image: {base: debian:bookworm, output: x:1}\n" +
		"  ssh:\n    users:\n      me: {pubkey_file: stage-1/key.pub}\n" +
		"  custom: {on_build: [stage-1/a.sh]}\n"
	testPubkey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGlwZ2ZhbHNlZmFsc2VmYWxzZWZhbHNlZmFsc2VmYWxz test\n"
)

func TestRecipeCheckReadsNothingOutside(t *testing.T) {
	t.Setenv("PEI_TEST_SERVER_ENV", "server-env-value")
	key := entry{"installation/stage-1/key.pub", testPubkey}
	hook := entry{"installation/stage-1/a.sh", "echo hi\n"}
	cfg := entry{"user_config.yml", honestConfig}
	pei := buildRequest{kind: "pei"}
	df := buildRequest{kind: "dockerfile", dockerfile: "Dockerfile"}
	for _, tc := range []struct {
		name    string
		req     buildRequest
		entries []entry
		want    string // "" is accepted
	}{
		{"an honest pei project", pei, []entry{cfg, key, hook}, ""},
		{"a pei project with a hook linked inside", pei, []entry{cfg, key, {"installation/real.sh", "echo\n"}, {"installation/stage-1/a.sh", "->../real.sh"}}, ""},
		{"a config linked outside, absolute", pei, []entry{{"user_config.yml", "->@OUT/cdir/user_config.yml"}}, "user_config.yml: symbolic link to the absolute path"},
		{"a config linked outside, relative", pei, []entry{{"user_config.yml", "->../secret"}}, "user_config.yml: symbolic link ../secret leads out of the project"},
		{"a config linked outside through a chain", pei, []entry{{"a", "->."}, {"b", "->a/.."}, {"user_config.yml", "->b/../cdir/user_config.yml"}}, "leads out of the project (through other links)"},
		{"a config linked inside", pei, []entry{{"real.yml", honestConfig}, {"user_config.yml", "->real.yml"}, key, hook}, "user_config.yml: is a symbolic link in the recipe"},
		{"a config hard-linked to a link", pei, []entry{{"l", "->real.yml"}, {"user_config.yml", "=>l"}}, "user_config.yml: hard link to l, which is a symbolic link"},
		{"a config that is a directory", pei, []entry{{"user_config.yml/", ""}, {"user_config.yml/x", "y"}}, "user_config.yml: is a directory"},
		{"a hook linked outside", pei, []entry{cfg, key, {"installation/stage-1/a.sh", "->@OUT/cdir/a.sh"}}, "installation/stage-1/a.sh: symbolic link to the absolute path"},
		{"a hook under a directory linked outside", pei, []entry{{"installation/stage-1", "->../../cdir"}, cfg}, "installation/stage-1: symbolic link ../../cdir leads out of the project"},
		{"a key linked outside", pei, []entry{cfg, hook, {"installation/stage-1/key.pub", "->@OUT/cdir/key.pub"}}, "installation/stage-1/key.pub: symbolic link to the absolute path"},
		{"a key linked to the FIFO", pei, []entry{cfg, hook, {"installation/stage-1/key.pub", "->../../../fifo"}}, "leads out of the project"},
		{"the server's environment is not read", pei, []entry{{"user_config.yml", "stage_1:\n  image: {base: \"${PEI_TEST_SERVER_ENV:?must be set}\", output: x:1}\n"}}, "must be set"},
		{"a config secret from the environment, not submitted", pei, []entry{{"user_config.yml", "secrets: {npm: {env: NPM_TOKEN}}\nstage_1:\n  image: {base: debian:bookworm, output: x:1}\n"}}, "submit with --secret npm"},
		{"a config secret from an absolute file, not submitted", pei, []entry{{"user_config.yml", "secrets: {npm: {file: /etc/npm}}\nstage_1:\n  image: {base: debian:bookworm, output: x:1}\n"}}, "submit with --secret npm"},
		{"a config secret from the environment, submitted", buildRequest{kind: "pei", secrets: []string{"npm"}}, []entry{{"user_config.yml", "secrets: {npm: {env: NPM_TOKEN}}\nstage_1:\n  image: {base: debian:bookworm, output: x:1}\n"}}, ""},

		{"an honest Dockerfile", df, []entry{{"Dockerfile", "FROM scratch\n"}, {"hello", "hi"}}, ""},
		{"a Dockerfile elsewhere", buildRequest{kind: "dockerfile", dockerfile: "build/Dockerfile"}, []entry{{"build/Dockerfile", "FROM scratch\n"}}, ""},
		{"a Dockerfile linked outside", df, []entry{{"Dockerfile", "->@OUT/cdir/Dockerfile"}}, "Dockerfile: symbolic link to the absolute path"},
		{"a Dockerfile linked to the FIFO", df, []entry{{"Dockerfile", "->../../fifo"}}, "Dockerfile: symbolic link ../../fifo leads out of the project"},
		{"a Dockerfile linked inside", df, []entry{{"real", "FROM scratch\n"}, {"Dockerfile", "->real"}}, "dockerfile Dockerfile: is a symbolic link in the recipe"},
		{"a Dockerfile under a link inside", buildRequest{kind: "dockerfile", dockerfile: "l/Dockerfile"}, []entry{{"real/Dockerfile", "FROM scratch\n"}, {"l", "->real"}}, "lies under the symbolic link l"},
		{"a Dockerfile that is a directory", df, []entry{{"Dockerfile/", ""}}, "dockerfile Dockerfile: is a directory"},
		{"a Dockerfile path leaving the context", buildRequest{kind: "dockerfile", dockerfile: "../Dockerfile"}, []entry{{"Dockerfile", "FROM scratch\n"}}, "leaves the project directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOutside(t)
			_, herr := checker(t, Limits{}).checkRecipeReader(context.Background(), bytes.NewReader(recipeArchive(t, o.top, tc.entries...)), tc.req)
			msg := ""
			if herr != nil {
				msg = herr.msg
			}
			o.check(t, msg)
			if tc.want == "" {
				if herr != nil {
					t.Fatalf("refused: %d %s", herr.status, herr.msg)
				}
				return
			}
			if herr == nil || !strings.Contains(herr.msg, tc.want) {
				t.Fatalf("answer %v, want it to say %q", herr, tc.want)
			}
			if herr.status != http.StatusBadRequest || herr.code != "RECIPE_INVALID" {
				t.Errorf("status %d %s, want 400 RECIPE_INVALID", herr.status, herr.code)
			}
		})
	}
}

// TestRecipeCheckProperty checks random recipes whose config, hook, key
// and Dockerfile are files, links (inside, outside, absolute, chained,
// to the FIFO) and hard links, with the oracle above. PEI_RECIPE_SEED
// replays a run.
func TestRecipeCheckProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PEI_RECIPE_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (PEI_RECIPE_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	files := map[string]string{
		"user_config.yml":              honestConfig,
		"Dockerfile":                   "FROM scratch\n",
		"installation/stage-1/key.pub": testPubkey,
		"installation/stage-1/a.sh":    "echo\n",
	}
	names := []string{"user_config.yml", "Dockerfile", "installation/stage-1/key.pub", "installation/stage-1/a.sh"}
	targets := []string{"->@OUT/secret", "->@OUT/fifo", "->@OUT/cdir/", "->../secret", "->../../fifo", "->../../../fifo", "->../../../../cdir/a.sh",
		"->a/..", "->b/../secret", "->b/../fifo", "->b/../cdir/user_config.yml", "->../b/../../cdir/a.sh", "->../../b/../cdir/key.pub",
		"->real", "->installation", "=>real", "=>l", "=>@OUT/secret", "=>../secret"}
	n := 150
	if testing.Short() {
		n = 30
	}
	accepted := 0
	for i := range n {
		var es []entry
		es = append(es, entry{"real", "x"}, entry{"a", "->."}, entry{"b", "->a/.."}, entry{"l", "->real"})
		for _, name := range names {
			if rng.IntN(3) == 0 {
				es = append(es, entry{name, targets[rng.IntN(len(targets))]})
			} else {
				es = append(es, entry{name, files[name]})
			}
		}
		// The chain's links a, b are refused outright: drop them half the time.
		if rng.IntN(2) == 0 {
			es = append(es[:1], es[3:]...)
		}
		req := buildRequest{kind: "pei"}
		if rng.IntN(2) == 0 {
			req = buildRequest{kind: "dockerfile", dockerfile: "Dockerfile"}
		}
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			o := newOutside(t)
			_, herr := checker(t, Limits{}).checkRecipeReader(context.Background(), bytes.NewReader(recipeArchive(t, o.top, es...)), req)
			msg := ""
			if herr != nil {
				msg = herr.msg
			} else {
				accepted++
			}
			o.check(t, msg)
			if t.Failed() {
				t.Logf("%s recipe: %q", req.kind, es)
			}
		})
	}
	if accepted == 0 || accepted == n {
		t.Fatalf("%d of %d random recipes accepted: the generator no longer reaches both sides", accepted, n)
	}
	t.Logf("%d of %d random recipes accepted", accepted, n)
}

// Recipe checks are bounded: with every place taken a submission waits
// Limits.UnpackWait, then gets 503 with Retry-After; with a place free the
// same submission is accepted.
func TestRecipeChecksBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.MaxUnpacks = 1
		c.Limits.UnpackWait = 50 * time.Millisecond
	})
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	h.srv.unpacks <- struct{}{} // another check holds the only place
	resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile", alice, bytes.NewReader(good))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with no place free: status %d, want 503: %s", resp.StatusCode, errorCode(t, resp))
	}
	if ra := resp.Header.Get("Retry-After"); ra != strconv.Itoa(int(busyRetry/time.Second)) {
		t.Errorf("Retry-After %q", ra)
	}
	if msg := errorCode(t, resp); !strings.Contains(msg, "UNAVAILABLE: the server is checking 1 recipes") {
		t.Errorf("error %q", msg)
	}
	<-h.srv.unpacks
	resp = h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile", alice, bytes.NewReader(good))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("with a place free: status %d: %s", resp.StatusCode, errorCode(t, resp))
	}
	resp.Body.Close()
	if n := len(h.srv.unpacks); n != 0 {
		t.Fatalf("%d places still taken after the check", n)
	}
}

// One namespace's recipes take at most MaxUnpacksPerNamespace places: with
// team-a's place taken, team-a's next submission waits, then gets 503,
// while team-b's is checked and accepted in a place still free; once
// team-a's place is given back its submission is accepted, and no place
// and no namespace entry is left behind.
func TestRecipeChecksPerNamespace(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.MaxUnpacks = 2
		c.Limits.MaxUnpacksPerNamespace = 1
		c.Limits.UnpackWait = 50 * time.Millisecond
	})
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	bob := h.token("bob", []string{"team-b"}, api.ScopeBuild)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	submit := func(token, repo string) *http.Response {
		return h.req("POST", "/v2/"+repo+"/_pei/builds?kind=dockerfile", token, bytes.NewReader(good))
	}
	held := h.srv.namespaceUnpacks("team-a")
	held <- struct{}{} // a check of team-a's holds its place
	resp := submit(alice, "team-a/app")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("team-a with its place taken: status %d, want 503: %s", resp.StatusCode, errorCode(t, resp))
	}
	if msg := errorCode(t, resp); !strings.Contains(msg, "checking 1 recipes for team-a, its limit per namespace") {
		t.Errorf("error %q", msg)
	}
	if resp := submit(bob, "team-b/app"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("team-b while team-a waits: status %d: %s", resp.StatusCode, errorCode(t, resp))
	}
	<-held
	h.srv.dropNamespaceUnpacks("team-a", held)
	if resp := submit(alice, "team-a/app"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("team-a with its place free: status %d: %s", resp.StatusCode, errorCode(t, resp))
	}
	if n := len(h.srv.unpacks); n != 0 {
		t.Errorf("%d places still taken", n)
	}
	h.srv.nsUnpacksMu.Lock()
	defer h.srv.nsUnpacksMu.Unlock()
	if len(h.srv.nsUnpacks) != 0 {
		t.Errorf("namespaces left behind: %v", h.srv.nsUnpacks)
	}
}

// Through the API: a submitted recipe and a pushed recipe artifact whose
// config or Dockerfile links to a canary are refused naming the entry,
// with none of the canary in the answer; the honest ones are accepted.
func TestRecipeLinksRefusedThroughTheAPI(t *testing.T) {
	o := newOutside(t)
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	for _, tc := range []struct {
		name, query string
		entries     []entry
		status      int
		want        string
	}{
		{"an honest Dockerfile", "kind=dockerfile", []entry{{"Dockerfile", "FROM scratch\n"}}, 202, ""},
		{"a Dockerfile linked to a canary", "kind=dockerfile", []entry{{"Dockerfile", "->@OUT/cdir/Dockerfile"}}, 400, "Dockerfile: symbolic link to the absolute path"},
		{"an honest pei project", "", []entry{{"user_config.yml", honestConfig}, {"installation/stage-1/key.pub", testPubkey}, {"installation/stage-1/a.sh", "echo\n"}}, 202, ""},
		{"a config linked to a canary", "", []entry{{"user_config.yml", "->@OUT/cdir/user_config.yml"}}, 400, "user_config.yml: symbolic link to the absolute path"},
		{"a config linked inside", "", []entry{{"c.yml", honestConfig}, {"user_config.yml", "->c.yml"}}, 400, "user_config.yml: is a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.req("POST", "/v2/team-a/app/_pei/builds?"+tc.query, alice, bytes.NewReader(recipeArchive(t, o.top, tc.entries...)))
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			o.check(t, string(body))
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("status %d %s, want %d saying %q", resp.StatusCode, body, tc.status, tc.want)
			}
			// The same recipe pushed as an artifact is checked alike.
			layer := recipeArchive(t, o.top, tc.entries...)
			ann := map[string]string{api.AnnotationTag: "v1", api.AnnotationKind: "pei"}
			if tc.query != "" {
				ann[api.AnnotationKind] = "dockerfile"
			}
			m := recipeManifest(t, h, alice, "team-a/app", layer, ann)
			resp = putManifest(t, h, alice, "team-a/app", "r-"+strconv.Itoa(len(tc.name)), m)
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			o.check(t, string(body))
			want := http.StatusCreated
			if tc.status != 202 {
				want = tc.status
			}
			if resp.StatusCode != want || !strings.Contains(string(body), tc.want) {
				t.Fatalf("artifact: status %d %s, want %d saying %q", resp.StatusCode, body, want, tc.want)
			}
		})
	}
}
