package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// withUmask runs the rest of a test under umask mask (the process's, so
// these tests do not run in parallel).
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// TestDatabaseFilesPrivate: the SQLite database and its -wal and -shm
// files are 0600 whatever the umask (SQLite alone makes them 0644 less
// the umask: world-readable under 0 or 022), and a database left readable
// by an older pei is made private when opened.
func TestDatabaseFilesPrivate(t *testing.T) {
	withUmask(t, 0)
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, db string)
	}{
		{"new", func(*testing.T, string) {}},
		{"left readable", func(t *testing.T, db string) {
			s, err := Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			// SQLite removed its companions on close: leave readable
			// ones, as a crash would.
			for _, f := range []string{db + "-wal", db + "-shm"} {
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range []string{db, db + "-wal", db + "-shm"} {
				if err := os.Chmod(f, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "pei.db")
			tc.prepare(t, db)
			s, err := Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// The database works (and has written its WAL).
			_, secret, err := s.CreateToken(context.Background(), Token{Name: "a", Namespaces: []string{"x"}, Scopes: []string{"pull"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.TokenBySecret(context.Background(), secret); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{db, db + "-wal", db + "-shm"} {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatalf("%s: %v", filepath.Base(f), err)
				}
				if perm := fi.Mode().Perm(); perm != 0o600 {
					t.Errorf("%s is %04o, want 0600", filepath.Base(f), perm)
				}
			}
		})
	}
}

// TestTokenByID: a live token is found by id; a revoked, expired or
// unknown one is not (registry tokens are checked this way per request).
func TestTokenByID(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		live, _, err := s.CreateToken(ctx, Token{Name: "live", Namespaces: []string{"a"}, Scopes: []string{"pull"}})
		if err != nil {
			t.Fatal(err)
		}
		revoked, _, _ := s.CreateToken(ctx, Token{Name: "revoked", Namespaces: []string{"a"}, Scopes: []string{"pull"}})
		if err := s.RevokeToken(ctx, revoked.ID); err != nil {
			t.Fatal(err)
		}
		expired, _, _ := s.CreateToken(ctx, Token{Name: "expired", Namespaces: []string{"a"}, Scopes: []string{"pull"}, Expires: live.Created.Add(-1)})
		if got, err := s.TokenByID(ctx, live.ID); err != nil || got.Name != "live" {
			t.Fatalf("live token: %+v %v", got, err)
		}
		for _, id := range []string{revoked.ID, expired.ID, "t-unknown"} {
			if got, err := s.TokenByID(ctx, id); err != ErrNotFound {
				t.Errorf("%s: %+v %v, want ErrNotFound", id, got, err)
			}
		}
	})
}

// TestPrivateDBEveryFile: privateDB itself takes group and other
// permissions from the database and each companion SQLite may have left
// (SQLite happens to reset the -wal and -shm it reopens, which would hide
// a loop that stopped at the first file), and leaves private ones as
// they are.
func TestPrivateDBEveryFile(t *testing.T) {
	withUmask(t, 0)
	db := filepath.Join(t.TempDir(), "pei.db")
	modes := map[string]os.FileMode{db: 0o644, db + "-wal": 0o640, db + "-shm": 0o604, db + "-journal": 0o666}
	for f, m := range modes {
		if err := os.WriteFile(f, nil, m); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := privateDB(db); err != nil {
		t.Fatal(err)
	}
	for f, m := range modes {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if want := m &^ 0o077; fi.Mode().Perm() != want {
			t.Errorf("%s is %04o, want %04o", filepath.Base(f), fi.Mode().Perm(), want)
		}
	}
	// A missing database is made, 0600; missing companions are no error.
	fresh := filepath.Join(t.TempDir(), "new.db")
	if err := privateDB(fresh); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("a new database: %v, %v", fi, err)
	}
}
