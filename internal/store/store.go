package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // pure-Go SQLite driver "sqlite"

	"github.com/pei-dev/pei/internal/api"
)

// ErrNotFound is returned when a token or build does not exist.
var ErrNotFound = errors.New("not found")

// Store is an open database.
type Store struct {
	db       *sql.DB
	postgres bool
}

// Open opens (and creates or migrates) the database named by dsn:
// "postgres://..." or "postgresql://..." for PostgreSQL, otherwise a
// SQLite file path.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.postgres = true
		s.db, err = sql.Open("pgx", dsn)
	} else {
		if err := privateDB(dsn); err != nil {
			return nil, fmt.Errorf("open database %s: %w", dsn, err)
		}
		// WAL lets status reads run while a writer holds the lock; the busy
		// timeout queues writers instead of failing them.
		s.db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate")
		if err == nil {
			s.db.SetMaxOpenConns(4)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open database %s: %w", redact(dsn), err)
	}
	return s, nil
}

// privateDB makes a SQLite database file 0600 before SQLite opens it:
// SQLite creates it 0644 less the umask, and its -wal and -shm files with
// the database's mode, and it holds webhook secrets and every tenant's
// logs. An existing database and its companions lose group and other
// permissions.
func privateDB(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, perm&^0o077); err != nil {
				return err
			}
		}
	}
	return nil
}

// redact hides a password in a PostgreSQL URL for error messages.
func redact(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.LastIndex(dsn, "@"); at > i {
			return dsn[:i+3] + "***" + dsn[at:]
		}
	}
	return dsn
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Postgres reports whether the store is PostgreSQL.
func (s *Store) Postgres() bool { return s.postgres }

const schema = `
CREATE TABLE IF NOT EXISTS tokens (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	namespaces TEXT NOT NULL,
	scopes TEXT NOT NULL,
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL DEFAULT 0,
	revoked BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS builds (
	id TEXT PRIMARY KEY,
	repo TEXT NOT NULL,
	namespace TEXT NOT NULL,
	tag TEXT NOT NULL,
	platform TEXT NOT NULL,
	kind TEXT NOT NULL,
	stage TEXT NOT NULL DEFAULT '',
	recipe TEXT NOT NULL,
	recipe_size BIGINT NOT NULL DEFAULT 0,
	subject TEXT NOT NULL DEFAULT '',
	secrets TEXT NOT NULL DEFAULT '',
	webhook TEXT NOT NULL DEFAULT '',
	webhook_secret TEXT NOT NULL DEFAULT '',
	submitter TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL,
	created BIGINT NOT NULL,
	started BIGINT NOT NULL DEFAULT 0,
	finished BIGINT NOT NULL DEFAULT 0,
	worker TEXT NOT NULL DEFAULT '',
	lease_until BIGINT NOT NULL DEFAULT 0,
	attempts INTEGER NOT NULL DEFAULT 0,
	timeout_s BIGINT NOT NULL DEFAULT 0,
	cancel INTEGER NOT NULL DEFAULT 0,
	digest TEXT NOT NULL DEFAULT '',
	error TEXT NOT NULL DEFAULT '',
	hook_attempts INTEGER NOT NULL DEFAULT 0,
	hook_next BIGINT NOT NULL DEFAULT 0,
	hook_done INTEGER NOT NULL DEFAULT 0,
	hook_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS builds_queue ON builds (state, created);
CREATE INDEX IF NOT EXISTS builds_repo ON builds (repo, created);
CREATE INDEX IF NOT EXISTS builds_hooks ON builds (hook_done, hook_next);
CREATE TABLE IF NOT EXISTS referrers (
	repo TEXT NOT NULL,
	subject TEXT NOT NULL,
	digest TEXT NOT NULL,
	media_type TEXT NOT NULL,
	artifact_type TEXT NOT NULL DEFAULT '',
	size BIGINT NOT NULL,
	annotations TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (repo, subject, digest)
);
CREATE TABLE IF NOT EXISTS catalog (
	namespace TEXT NOT NULL,
	name TEXT NOT NULL,
	lower_ref TEXT NOT NULL,
	upper_ref TEXT NOT NULL,
	exclude TEXT NOT NULL DEFAULT '[]',
	updated BIGINT NOT NULL,
	updated_by TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (namespace, name)
);
CREATE TABLE IF NOT EXISTS build_catalog (
	build_id TEXT PRIMARY KEY,
	items TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_logs (
	build_id TEXT NOT NULL,
	seq BIGINT NOT NULL,
	data TEXT NOT NULL,
	PRIMARY KEY (build_id, seq)
);
`

func (s *Store) migrate(ctx context.Context) error {
	for _, stmt := range strings.Split(schema, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	return nil
}

// q rewrites ? placeholders to $1, $2... for PostgreSQL.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// NewID returns a random identifier with a prefix, e.g. "b-3f9a...".
func NewID(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return prefix + hex.EncodeToString(b[:])
}

// Token is an API token: the secret is shown once at creation and only
// its SHA-256 is stored.
type Token struct {
	ID         string
	Name       string
	Namespaces []string // "*" is every namespace
	Scopes     []string // api.ValidScopes
	Created    time.Time
	Expires    time.Time // zero: never
	Revoked    bool
}

// Status says whether the token works at now: active, revoked, expired,
// or expires (when).
func (t Token) Status(now time.Time) string {
	switch {
	case t.Revoked:
		return "revoked"
	case !t.Expires.IsZero() && now.After(t.Expires):
		return "expired"
	case !t.Expires.IsZero():
		return "expires " + t.Expires.Format(time.RFC3339)
	}
	return "active"
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// CreateToken stores a new token and returns its secret. What it grants
// must pass api.CheckGrant: a namespace no repository name can start with
// (Team-A, team-a/app) would silently grant nothing.
func (s *Store) CreateToken(ctx context.Context, t Token) (Token, string, error) {
	if err := api.CheckGrant(t.Namespaces, t.Scopes); err != nil {
		return Token{}, "", fmt.Errorf("token %s: %w", t.Name, err)
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Token{}, "", err
	}
	secret := "pei_" + hex.EncodeToString(b[:])
	t.ID = NewID("t-")
	t.Created = time.Now().UTC().Truncate(time.Second)
	var exp int64
	if !t.Expires.IsZero() {
		exp = t.Expires.Unix()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tokens (id, name, hash, namespaces, scopes, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		t.ID, t.Name, hashSecret(secret), strings.Join(t.Namespaces, ","), strings.Join(t.Scopes, ","), t.Created.Unix(), exp)
	if err != nil {
		return Token{}, "", fmt.Errorf("store token: %w", err)
	}
	return t, secret, nil
}

// TokenBySecret finds a live (not revoked, not expired) token by its secret.
func (s *Store) TokenBySecret(ctx context.Context, secret string) (Token, error) {
	row := s.db.QueryRowContext(ctx, s.q(`SELECT id, name, namespaces, scopes, created, expires, revoked FROM tokens WHERE hash = ?`), hashSecret(secret))
	t, err := scanToken(row)
	if err != nil {
		return Token{}, err
	}
	if t.Revoked || (!t.Expires.IsZero() && time.Now().After(t.Expires)) {
		return Token{}, ErrNotFound
	}
	return t, nil
}

// TokenByID finds a live (not revoked, not expired) token by its id.
func (s *Store) TokenByID(ctx context.Context, id string) (Token, error) {
	row := s.db.QueryRowContext(ctx, s.q(`SELECT id, name, namespaces, scopes, created, expires, revoked FROM tokens WHERE id = ?`), id)
	t, err := scanToken(row)
	if err != nil {
		return Token{}, err
	}
	if t.Revoked || (!t.Expires.IsZero() && time.Now().After(t.Expires)) {
		return Token{}, ErrNotFound
	}
	return t, nil
}

// Tokens lists every token (without secrets).
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, namespaces, scopes, created, expires, revoked FROM tokens ORDER BY created, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes a token by id.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE tokens SET revoked = ? WHERE id = ?`), time.Now().Unix(), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

func scanToken(r scanner) (Token, error) {
	var t Token
	var ns, scopes string
	var created, expires, revoked int64
	if err := r.Scan(&t.ID, &t.Name, &ns, &scopes, &created, &expires, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Token{}, ErrNotFound
		}
		return Token{}, err
	}
	t.Namespaces = splitList(ns)
	t.Scopes = splitList(scopes)
	t.Created = time.Unix(created, 0).UTC()
	if expires > 0 {
		t.Expires = time.Unix(expires, 0).UTC()
	}
	t.Revoked = revoked > 0
	return t, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
