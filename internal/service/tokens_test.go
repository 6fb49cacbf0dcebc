package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

// TestNewChecksAnonymousNamespaces: the server refuses to start with an
// anonymous-pull namespace no repository can be in, as pei serve's flag
// does, whoever configures it.
func TestNewChecksAnonymousNamespaces(t *testing.T) {
	for _, tc := range []struct {
		ns []string
		ok bool
	}{
		{[]string{"public"}, true},
		{[]string{"public", "*"}, true},
		{[]string{"Public"}, false},
		{[]string{"public", "team-a/app"}, false},
		{[]string{""}, false},
	} {
		t.Run(strings.Join(tc.ns, ","), func(t *testing.T) {
			srv, err := New(context.Background(), Config{DataDir: t.TempDir(), PublicURL: "http://127.0.0.1:1", AnonymousPull: tc.ns})
			if err == nil {
				srv.Close()
			}
			var ne *api.NamespaceError
			if tc.ok != (err == nil) || !tc.ok && (!errors.As(err, &ne) || !strings.HasPrefix(err.Error(), "anonymous pull: namespace ")) {
				t.Fatalf("error %v, want ok %v (else an anonymous pull *api.NamespaceError)", err, tc.ok)
			}
		})
	}
}

// TestTokens: pei token's create, list and revoke on a data directory,
// which the first of them makes private; a refused grant makes nothing.
func TestTokens(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	a := Tokens{DataDir: data}
	for _, bad := range []store.Token{
		{Name: "x", Namespaces: []string{"Team"}, Scopes: []string{api.ScopePull}},
		{Name: "x", Namespaces: []string{"team-a"}, Scopes: []string{"all"}},
		{Name: "x", Scopes: []string{api.ScopeBuild}},
	} {
		if _, _, err := a.Create(ctx, bad); err == nil {
			t.Fatalf("created %+v", bad)
		}
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused token made the data directory (%v)", err)
	}
	tok, secret, err := a.Create(ctx, store.Token{Name: "alice", Namespaces: []string{"team-a"}, Scopes: []string{api.ScopePush}})
	if err != nil || secret == "" || tok.ID == "" {
		t.Fatalf("create: %+v %q %v", tok, secret, err)
	}
	if fi, err := os.Stat(data); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v %v, want mode 0700", fi, err)
	}
	// The server on that directory knows the token.
	srv, err := New(ctx, Config{DataDir: data, PublicURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := srv.Store().TokenBySecret(ctx, secret)
	srv.Close()
	if err != nil || got.ID != tok.ID {
		t.Fatalf("the server finds %+v, %v; want token %s", got, err, tok.ID)
	}
	if err := a.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, "t-none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke an unknown token: %v", err)
	}
	ts, err := a.List(ctx)
	if err != nil || len(ts) != 1 || ts[0].ID != tok.ID || !ts[0].Revoked {
		t.Fatalf("list: %+v %v", ts, err)
	}
}
