package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WantErr checks err against a table case's expected error: with want
// set, err must say it (and the case is over: WantErr returns true); with
// want empty, err must be nil.
func WantErr(t testing.TB, err error, want string) (done bool) {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want it to say %q", err, want)
		}
		return true
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	return false
}

// Snapshot maps each file under dir (by its path relative to dir) to its
// mode and content: what a test compares before and after a change.
func Snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = info.Mode().String() + "\n" + string(b)
		}
		return nil
	})
	return out
}
