package service

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
)

func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// openEntries lists what under dir other users could read or enter.
func openEntries(t *testing.T, dir string) (open []string, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			files++
		}
		if info.Mode().Perm()&0o077 != 0 {
			rel, _ := filepath.Rel(dir, p)
			open = append(open, rel+" "+info.Mode().Perm().String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return open, files
}

// TestDataDirPrivate: under a umask of 0, everything pei serve writes in
// its data directory (the database and its WAL, the keys, recipes, the
// registry's blobs, manifests, upload state) is private to its user.
func TestDataDirPrivate(t *testing.T) {
	withUmask(t, 0)
	data := filepath.Join(t.TempDir(), "new", "data")
	h := newHarness(t, func(c *Config) { c.DataDir = data })
	alice := h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild)
	img, _ := random.Image(4096, 2)
	if err := remote.Write(h.ref("team-a/app:v1"), img, auth(alice)); err != nil {
		t.Fatal(err)
	}
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64&webhook=https://example.com/hook&webhook_secret=s", alice, bytes.NewReader(good))
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("submit: %d", resp.StatusCode)
	}
	// An upload left open: its state files too.
	tok := h.registryToken("alice", alice, "repository:team-a/app:pull,push")
	if code := h.bearer("POST", "/v2/team-a/app/blobs/uploads/", tok, nil); code != 202 {
		t.Fatalf("start an upload: %d", code)
	}
	open, files := openEntries(t, data)
	// The positive control: what was written is there.
	for _, want := range []string{"pei.db", "pei.db-wal", "auth/signing-key.pem", "auth/jwks.json", "auth/http-secret", "auth/job-key", "registry/docker/registry/v2/repositories/team-a/app/_manifests/tags/v1/current/link"} {
		if _, err := os.Stat(filepath.Join(data, want)); err != nil {
			t.Errorf("%s: %v", want, err)
		}
	}
	if recipes, _ := os.ReadDir(filepath.Join(data, "recipes", "sha256")); len(recipes) != 1 || files < 20 {
		t.Errorf("%d recipes, %d files in all", len(recipes), files)
	}
	if len(open) > 0 {
		t.Fatalf("open to other users:\n%s", strings.Join(open, "\n"))
	}
}

// TestDataDirTightened: a data directory an older pei left open (0755,
// files 0644) is made private when the server starts, saying so; a link
// out of it is not followed; a private one is left alone, silently.
func TestDataDirTightened(t *testing.T) {
	withUmask(t, 0o022)
	data := filepath.Join(t.TempDir(), "data")
	outside := filepath.Join(t.TempDir(), "elsewhere")
	for _, f := range []string{"recipes/sha256/abc", "registry/docker/registry/v2/blobs/sha256/ab/abc/data", "notes"} {
		p := filepath.Join(data, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	os.WriteFile(outside, []byte("x"), 0o644)
	os.Symlink(outside, filepath.Join(data, "link"))
	os.Chmod(data, 0o755)
	// Named through a link, as an admin may.
	viaLink := filepath.Join(t.TempDir(), "data-link")
	os.Symlink(data, viaLink)
	var log bytes.Buffer
	srv, err := New(context.Background(), Config{DataDir: viaLink, PublicURL: "http://127.0.0.1:1", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if open, files := openEntries(t, data); len(open) > 0 || files < 4 {
		t.Fatalf("%d files; still open:\n%s", files, strings.Join(open, "\n"))
	}
	if fi, _ := os.Stat(data); fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory %s", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o644 {
		t.Errorf("a file outside, behind a link, became %s", fi.Mode().Perm())
	}
	if !strings.Contains(log.String(), "was open to other users (mode 0755): made it 0700") {
		t.Errorf("log %q", log.String())
	}
	log.Reset()
	srv, err = New(context.Background(), Config{DataDir: data, PublicURL: "http://127.0.0.1:1", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if strings.Contains(log.String(), "open to other users") {
		t.Errorf("a private data directory was reported: %q", log.String())
	}
}
