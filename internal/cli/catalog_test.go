package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/service"
	"github.com/pei-dev/pei/internal/store"
)

// TestCatalogCommands: pei catalog against an in-process pei serve whose
// shared catalog is namespace pei: an admin publishes an item there, a
// tenant may not, the tenant sets its own, lists both, reads, submits a
// project taking them and removes its item.
func TestCatalogCommands(t *testing.T) {
	ts := httptest.NewUnstartedServer(nil)
	ts.Start()
	t.Cleanup(ts.Close)
	srv, err := service.New(context.Background(), service.Config{DataDir: t.TempDir(), PublicURL: ts.URL, SharedNamespace: "pei"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ts.Config.Handler = srv
	token := func(name, ns string, scopes ...string) string {
		_, secret, err := srv.Store().CreateToken(context.Background(), store.Token{Name: name, Namespaces: []string{ns}, Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	admin, alice := token("admin", "pei", api.ScopeAdmin), token("alice", "team-a", api.ScopePush, api.ScopeBuild)
	host := strings.TrimPrefix(ts.URL, "http://")
	for secret, refs := range map[string][]string{
		admin: {"pei/dev-base:bookworm", "pei/lang-python:3.11-bookworm"},
		alice: {"team-a/dev-base:bookworm", "team-a/lang-node:18-bookworm"},
	} {
		for _, r := range refs {
			img, err := random.Image(64, 1)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.ParseReference(host+"/"+r, name.Insecure)
			if err == nil {
				err = remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "u", Password: secret}))
			}
			if err != nil {
				t.Fatalf("push %s: %v", r, err)
			}
		}
	}
	as := func(secret string, args ...string) (string, string, error) {
		t.Helper()
		t.Setenv("PEI_TOKEN", secret)
		return run(t, append(args, "--server", ts.URL)...)
	}

	_, stderr, err := as(admin, "catalog", "set", "pei/python", "--lower", "pei/dev-base:bookworm", "--upper", "pei/lang-python:3.11-bookworm", "--exclude", "/pei-init")
	if err != nil || stderr != "catalog item pei/python: lower pei/dev-base:bookworm, upper pei/lang-python:3.11-bookworm, exclude /pei-init\n" {
		t.Fatalf("admin sets a shared item: %v\nstderr %q", err, stderr)
	}
	_, _, err = as(alice, "catalog", "set", "pei/python", "--lower", "pei/dev-base:bookworm", "--upper", "pei/lang-python:3.11-bookworm")
	if err == nil || !strings.HasPrefix(err.Error(), "server answered 403 ") || !strings.Contains(err.Error(), "the shared catalog: admin tokens only") {
		t.Fatalf("a tenant writes the shared catalog: %v", err)
	}
	_, stderr, err = as(alice, "catalog", "set", "team-a/node", "--lower", "team-a/dev-base:bookworm", "--upper", "team-a/lang-node:18-bookworm")
	if err != nil || stderr != "catalog item team-a/node: lower team-a/dev-base:bookworm, upper team-a/lang-node:18-bookworm, exclude -\n" {
		t.Fatalf("a tenant sets its item: %v\nstderr %q", err, stderr)
	}
	_, _, err = as(alice, "catalog", "set", "team-a/ruby", "--lower", "team-a/dev-base:bookworm", "--upper", "team-a/lang-ruby:3.1")
	if err == nil || !strings.HasPrefix(err.Error(), "server answered 400 CATALOG_INVALID: catalog item team-a/ruby: upper: ") || !strings.Contains(err.Error(), "push it first") {
		t.Fatalf("an item whose image is not pushed: %v", err)
	}

	stdout, _, err := as(alice, "catalog", "list", "team-a")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(stdout, "\n")
	for i, re := range []string{
		`^NAME +LOWER +UPPER +EXCLUDE +UPDATED BY$`,
		`^node +team-a/dev-base:bookworm +team-a/lang-node:18-bookworm +- +alice$`,
		`^$`,
		`^from the shared catalog \(namespace pei\):$`,
		`^NAME +LOWER +UPPER +EXCLUDE +UPDATED BY$`,
		`^python +pei/dev-base:bookworm +pei/lang-python:3.11-bookworm +/pei-init +admin$`,
		`^$`,
	} {
		if len(lines) != 7 || !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Fatalf("list: line %d is not like %s:\n%s", i+1, re, stdout)
		}
	}

	stdout, _, err = as(alice, "catalog", "get", "team-a/node")
	var it api.CatalogItem
	if err != nil || json.Unmarshal([]byte(stdout), &it) != nil || it.Name != "node" || it.Namespace != "team-a" ||
		it.Lower != "team-a/dev-base:bookworm" || it.Upper != "team-a/lang-node:18-bookworm" || it.UpdatedBy != "alice" || it.Updated.IsZero() {
		t.Fatalf("get: %v\n%s", err, stdout)
	}

	// pei submit checks the project with the server's catalog: the
	// namespace's item and the shared one are there, another is not.
	project := func(items ...string) string {
		dir := t.TempDir()
		layers := "{image: debian:bookworm}"
		for _, it := range items {
			layers += ", {catalog: " + it + "}"
		}
		os.WriteFile(filepath.Join(dir, "user_config.yml"), fmt.Appendf(nil,
			"stage_1:\n  image: {base: debian:bookworm, output: 'x:1'}\ncompose:\n  rt:\n    output: rt:1\n    layers: [%s]\n", layers), 0o644)
		return dir
	}
	stdout, _, err = as(alice, "submit", "-p", project("node", "python"), "--tag", "team-a/app:1", "--stage", "rt")
	if err != nil || !regexp.MustCompile(`^b-[0-9a-f]+\n$`).MatchString(stdout) {
		t.Fatalf("submit taking served items: %v, stdout %q", err, stdout)
	}
	_, _, err = as(alice, "submit", "-p", project("perl"), "--tag", "team-a/app:1")
	if err == nil || !strings.Contains(err.Error(), `no catalog item "perl" (pei serve's catalog has: node, python)`) {
		t.Fatalf("submit taking an item nobody has: %v", err)
	}

	_, stderr, err = as(alice, "catalog", "rm", "team-a/node")
	if err != nil || stderr != "removed catalog item team-a/node\n" {
		t.Fatalf("rm: %v, stderr %q", err, stderr)
	}
	_, _, err = as(alice, "catalog", "get", "team-a/node")
	if err == nil || err.Error() != `server answered 404 CATALOG_UNKNOWN: the catalog of team-a has no item "node"` {
		t.Fatalf("get a removed item: %v", err)
	}
	stdout, _, err = as(alice, "catalog", "list", "team-a")
	if err != nil || !regexp.MustCompile(`^NAME +LOWER +UPPER +EXCLUDE +UPDATED BY\n\nfrom the shared catalog \(namespace pei\):\n`).MatchString(stdout) {
		t.Fatalf("list after rm: %v\n%s", err, stdout)
	}

	// The server from $PEI_SERVER when --server is not given.
	t.Setenv("PEI_SERVER", ts.URL)
	if stdout, _, err := run(t, "catalog", "get", "pei/python"); err != nil || !strings.Contains(stdout, `"upper": "pei/lang-python:3.11-bookworm"`) {
		t.Fatalf("get with $PEI_SERVER: %v\n%s", err, stdout)
	}
}

// TestCatalogArgErrors: arguments refused before anything is sent.
func TestCatalogArgErrors(t *testing.T) {
	t.Setenv("PEI_SERVER", "")
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"no item name", []string{"catalog", "get", "team-a", "--server", "http://127.0.0.1:1"}, `"team-a": give NS/NAME, a namespace and an item name (letters, digits, '_', '.', '-'), e.g. team-a/python`},
		{"a bad item name", []string{"catalog", "rm", "team-a/py/thon", "--server", "http://127.0.0.1:1"}, `"team-a/py/thon": give NS/NAME, a namespace and an item name (letters, digits, '_', '.', '-'), e.g. team-a/python`},
		{"no server", []string{"catalog", "list", "team-a"}, "--server: give pei serve's URL (or set PEI_SERVER)"},
		{"set without upper", []string{"catalog", "set", "team-a/python", "--lower", "team-a/dev:1", "--server", "http://127.0.0.1:1"}, `required flag(s) "upper" not set`},
		{"serve with a bad shared catalog", []string{"serve", "--data", t.TempDir(), "--shared-catalog", "*"}, `--shared-catalog "*": give one namespace, a repository name's first component (lower-case letters, digits and separators ., _, -)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.args...)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}
