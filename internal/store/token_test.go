package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// TestTokenStatus is what pei token list says of a token.
func TestTokenStatus(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		tok  Token
		want string
	}{
		{"no expiry", Token{}, "active"},
		{"expires later", Token{Expires: now.Add(time.Hour)}, "expires 2026-01-02T04:04:05Z"},
		{"expired", Token{Expires: now.Add(-time.Second)}, "expired"},
		{"expires this instant", Token{Expires: now}, "expires 2026-01-02T03:04:05Z"},
		{"revoked", Token{Revoked: true}, "revoked"},
		{"revoked and expired", Token{Revoked: true, Expires: now.Add(-time.Hour)}, "revoked"},
	} {
		if got := tc.tok.Status(now); got != tc.want {
			t.Errorf("%s: Status = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestCreateTokenChecksTheGrant: the store refuses a token whose
// namespaces or scopes api.CheckGrant refuses, whoever asks (not only
// pei token create), and stores nothing for it.
func TestCreateTokenChecksTheGrant(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "pei.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		namespaces []string
		scopes     []string
		want       string // in the error; "" is stored
	}{
		{"valid", []string{"team-a"}, []string{api.ScopePush}, ""},
		{"every namespace", []string{"*"}, []string{api.ScopeAdmin}, ""},
		{"worker alone", nil, []string{api.ScopeWorker}, ""},
		{"upper case", []string{"Team-A"}, []string{api.ScopePull}, `namespace "Team-A"`},
		{"a repository, not a namespace", []string{"team-a/app"}, []string{api.ScopePull}, `namespace "team-a/app"`},
		{"empty namespace", []string{""}, []string{api.ScopePull}, `namespace ""`},
		{"unknown scope", []string{"team-a"}, []string{"root"}, `scope "root"`},
		{"no namespace", nil, []string{api.ScopeBuild}, "name the namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := s.Tokens(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = s.CreateToken(ctx, Token{Name: tc.name, Namespaces: tc.namespaces, Scopes: tc.scopes})
			after, _ := s.Tokens(ctx)
			if tc.want == "" {
				if err != nil || len(after) != len(before)+1 {
					t.Fatalf("error %v, %d tokens after %d: want it stored", err, len(after), len(before))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if len(after) != len(before) {
				t.Fatalf("%d tokens after %d: a refused token was stored", len(after), len(before))
			}
			var se *api.ScopeError
			if strings.HasPrefix(tc.want, "scope") != errors.As(err, &se) {
				t.Fatalf("error %v: want the *api.ScopeError kept", err)
			}
		})
	}
}
