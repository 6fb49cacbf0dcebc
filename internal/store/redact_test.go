package store

import (
	"context"
	"strings"
	"testing"
)

// TestRedact: a PostgreSQL password never reaches an error message.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://pei:s3cret@db.example:5432/pei", "postgres://***@db.example:5432/pei"},
		{"postgresql://pei:p@ss@db/pei", "postgresql://***@db/pei"},
		{"postgres://db.example/pei", "postgres://db.example/pei"},
		{"/var/lib/pei/pei.db", "/var/lib/pei/pei.db"},
	} {
		if got := redact(tc.dsn); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
	// Nothing listens on port 1 of loopback: opening fails at once.
	_, err := Open(context.Background(), "postgres://pei:s3cret@127.0.0.1:1/pei?connect_timeout=5")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "postgres://***@127.0.0.1:1/pei") {
		t.Fatalf("error %v: want one naming the database without its password", err)
	}
}
