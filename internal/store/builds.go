package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// Build is one build job.
type Build struct {
	ID         string
	Repo       string // repository the image is pushed to, e.g. team-a/app
	Namespace  string // the tenant: Repo's first path component
	Tag        string
	Platform   string // e.g. linux/amd64
	Kind       string // "pei" (a pei project) or "dockerfile"
	Stage      string // pei build --stage; "" for the default
	Recipe     string // digest of the recipe blob in the registry
	RecipeSize int64
	// Subject is the digest of a recipe artifact manifest the built image
	// points back to (referrers API); "" when the recipe was uploaded.
	Subject string
	Secrets []string // secret ids the build needs; workers supply them
	Webhook string
	// WebhookSecret keys the HMAC-SHA256 signature of webhook calls.
	WebhookSecret string
	// HookAttempts counts webhook deliveries tried (DueWebhooks only).
	HookAttempts int
	Submitter    string // token name
	State        api.State
	Created      time.Time
	Started      time.Time
	Finished     time.Time
	Worker       string
	LeaseUntil   time.Time
	Attempts     int
	Timeout      time.Duration
	Cancel       bool
	Digest       string // the pushed image's manifest (or index) digest
	Error        string
	// Catalog is the catalog items the build takes from pei serve's
	// catalog, resolved at submission (written by CreateBuild only; read
	// with BuildCatalog).
	Catalog []api.CatalogItem
}

// Done reports whether the build has ended.
func (b Build) Done() bool { return b.State.Done() }

const buildCols = `id, repo, namespace, tag, platform, kind, stage, recipe, recipe_size, subject, secrets, webhook, webhook_secret, submitter, state, created, started, finished, worker, lease_until, attempts, timeout_s, cancel, digest, error`

// scanBuild reads a row of buildCols, then any extra columns into extra.
func scanBuild(r scanner, extra ...any) (Build, error) {
	var b Build
	var secrets string
	var created, started, finished, lease, timeout int64
	var cancel int
	dest := []any{&b.ID, &b.Repo, &b.Namespace, &b.Tag, &b.Platform, &b.Kind, &b.Stage, &b.Recipe, &b.RecipeSize, &b.Subject, &secrets, &b.Webhook, &b.WebhookSecret, &b.Submitter,
		&b.State, &created, &started, &finished, &b.Worker, &lease, &b.Attempts, &timeout, &cancel, &b.Digest, &b.Error}
	err := r.Scan(append(dest, extra...)...)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Build{}, ErrNotFound
		}
		return Build{}, err
	}
	b.Secrets = splitList(secrets)
	b.Created = unix(created)
	b.Started = unix(started)
	b.Finished = unix(finished)
	b.LeaseUntil = unix(lease)
	b.Timeout = time.Duration(timeout) * time.Second
	b.Cancel = cancel != 0
	return b, nil
}

func unix(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// CreateBuild queues a build; ID, State and Created are set here.
func (s *Store) CreateBuild(ctx context.Context, b Build) (Build, error) {
	b.ID = NewID("b-")
	b.State = api.Queued
	b.Created = time.Now().UTC().Truncate(time.Millisecond)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Build{}, fmt.Errorf("queue build: %w", err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO builds (id, repo, namespace, tag, platform, kind, stage, recipe, recipe_size, subject, secrets, webhook, webhook_secret, submitter, state, created, timeout_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		b.ID, b.Repo, b.Namespace, b.Tag, b.Platform, b.Kind, b.Stage, b.Recipe, b.RecipeSize, b.Subject, strings.Join(b.Secrets, ","), b.Webhook, b.WebhookSecret, b.Submitter, b.State, ms(b.Created), int64(b.Timeout/time.Second))
	if err != nil {
		return Build{}, fmt.Errorf("queue build: %w", err)
	}
	if len(b.Catalog) > 0 {
		data, err := json.Marshal(b.Catalog)
		if err != nil {
			return Build{}, err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO build_catalog (build_id, items) VALUES (?, ?)`), b.ID, string(data)); err != nil {
			return Build{}, fmt.Errorf("queue build: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Build{}, fmt.Errorf("queue build: %w", err)
	}
	return b, nil
}

// Build returns one build.
func (s *Store) Build(ctx context.Context, id string) (Build, error) {
	return scanBuild(s.db.QueryRowContext(ctx, s.q(`SELECT `+buildCols+` FROM builds WHERE id = ?`), id))
}

// Filter selects builds for Builds.
type Filter struct {
	Repo       string
	Namespaces []string // any of them; none means all
	State      api.State
	Limit      int
}

// Builds lists builds, newest first.
func (s *Store) Builds(ctx context.Context, f Filter) ([]Build, error) {
	where := []string{"1=1"}
	var args []any
	if f.Repo != "" {
		where = append(where, "repo = ?")
		args = append(args, f.Repo)
	}
	if len(f.Namespaces) > 0 {
		where = append(where, "namespace IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(f.Namespaces)), ", ")+")")
		for _, ns := range f.Namespaces {
			args = append(args, ns)
		}
	}
	if f.State != "" {
		where = append(where, "state = ?")
		args = append(args, f.State)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+buildCols+` FROM builds WHERE `+strings.Join(where, " AND ")+fmt.Sprintf(` ORDER BY created DESC, id DESC LIMIT %d`, f.Limit)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Build
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Active counts a namespace's queued and running builds.
func (s *Store) Active(ctx context.Context, namespace string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM builds WHERE namespace = ? AND state IN ('queued', 'running')`), namespace).Scan(&n)
	return n, err
}

// Lease gives the oldest queued build a worker can take (it builds every
// platform the build names, it has every secret the build names) to that
// worker until now+lease. It returns ErrNotFound when there is none.
func (s *Store) Lease(ctx context.Context, worker string, platforms, secrets []string, lease time.Duration) (Build, error) {
	if len(platforms) == 0 {
		return Build{}, ErrNotFound
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Build{}, err
	}
	defer tx.Rollback()
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(platforms)), ", ")
	args := []any{api.Queued}
	for _, p := range platforms {
		args = append(args, p)
	}
	// Multi-platform builds (a comma-separated list) are matched below.
	query := `SELECT ` + buildCols + ` FROM builds WHERE state = ? AND (platform IN (` + marks + `) OR platform LIKE '%,%') ORDER BY created, id LIMIT 50`
	if s.postgres {
		// Replicas leasing at once skip each other's rows instead of
		// waiting on them or handing one build out twice.
		query += ` FOR UPDATE SKIP LOCKED`
	}
	rows, err := tx.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return Build{}, err
	}
	var pick *Build
	for rows.Next() && pick == nil {
		b, err := scanBuild(rows)
		if err != nil {
			rows.Close()
			return Build{}, err
		}
		if hasAll(secrets, b.Secrets) && hasAll(platforms, strings.Split(b.Platform, ",")) {
			pick = &b
		}
	}
	rows.Close()
	if pick == nil {
		return Build{}, ErrNotFound
	}
	now := time.Now().UTC()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE builds SET state = ?, worker = ?, lease_until = ?, started = ?, attempts = attempts + 1 WHERE id = ? AND state = ?`),
		api.Running, worker, ms(now.Add(lease)), ms(now), pick.ID, api.Queued)
	if err != nil {
		return Build{}, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Build{}, ErrNotFound
	}
	if err := tx.Commit(); err != nil {
		return Build{}, err
	}
	return s.Build(ctx, pick.ID)
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// ErrLeaseLost is returned to a worker whose lease has gone to another
// worker or whose build has ended.
var ErrLeaseLost = errors.New("lease lost")

// Heartbeat extends a worker's lease and returns the build (Cancel tells
// the worker to stop).
func (s *Store) Heartbeat(ctx context.Context, id, worker string, lease time.Duration) (Build, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET lease_until = ? WHERE id = ? AND worker = ? AND state = ?`),
		ms(time.Now().Add(lease)), id, worker, api.Running)
	if err != nil {
		return Build{}, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Build{}, ErrLeaseLost
	}
	return s.Build(ctx, id)
}

// Finish ends a running build held by worker as the worker reports: its
// end state, and the image digest or the error.
func (s *Store) Finish(ctx context.Context, id, worker string, f api.Finish) (Build, error) {
	if !f.State.Done() {
		return Build{}, fmt.Errorf("finish: state %q is not an end state", f.State)
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET state = ?, digest = ?, error = ?, finished = ?, lease_until = 0 WHERE id = ? AND worker = ? AND state = ?`),
		f.State, f.Digest, f.Error, ms(time.Now()), id, worker, api.Running)
	if err != nil {
		return Build{}, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Build{}, ErrLeaseLost
	}
	return s.Build(ctx, id)
}

// Release gives a running build back to the queue (its worker is shutting
// down); the attempt still counts.
func (s *Store) Release(ctx context.Context, id, worker, reason string) (Build, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET state = ?, worker = '', lease_until = 0, error = ? WHERE id = ? AND worker = ? AND state = ?`),
		api.Queued, reason, id, worker, api.Running)
	if err != nil {
		return Build{}, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Build{}, ErrLeaseLost
	}
	return s.Build(ctx, id)
}

// Cancel ends a queued build at once and asks a running one's worker to
// stop. It returns the build as it now is.
func (s *Store) Cancel(ctx context.Context, id string) (Build, error) {
	now := ms(time.Now())
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET state = ?, finished = ?, error = ? WHERE id = ? AND state = ?`),
		api.Canceled, now, "canceled before it started", id, api.Queued); err != nil {
		return Build{}, err
	}
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET cancel = 1 WHERE id = ? AND state = ?`), id, api.Running); err != nil {
		return Build{}, err
	}
	return s.Build(ctx, id)
}

// Expire handles running builds whose worker stopped heartbeating (killed,
// cut off) or that ran past their timeout: a lost build is queued again
// until it has had maxAttempts, then fails with the reason; a timed-out
// one fails. It returns the builds it ended.
func (s *Store) Expire(ctx context.Context, maxAttempts int) ([]Build, error) {
	now := time.Now()
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+buildCols+` FROM builds WHERE state = ?`), api.Running)
	if err != nil {
		return nil, err
	}
	var running []Build
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		running = append(running, b)
	}
	rows.Close()
	var ended []Build
	for _, b := range running {
		var state api.State
		var reason string
		switch {
		case b.Timeout > 0 && now.After(b.Started.Add(b.Timeout+30*time.Second)):
			// The worker stops itself at the timeout; 30 s later the server
			// stops waiting for it to say so.
			state, reason = api.Failed, fmt.Sprintf("timed out after %s", b.Timeout)
		case now.After(b.LeaseUntil) && b.Cancel:
			state, reason = api.Canceled, "canceled; the worker stopped answering"
		case now.After(b.LeaseUntil) && b.Attempts >= maxAttempts:
			state, reason = api.Failed, fmt.Sprintf("worker %s stopped answering (attempt %d of %d); not retried", b.Worker, b.Attempts, maxAttempts)
		case now.After(b.LeaseUntil):
			if _, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET state = ?, worker = '', lease_until = 0, error = ? WHERE id = ? AND state = ? AND lease_until = ?`),
				api.Queued, fmt.Sprintf("worker %s stopped answering; queued again", b.Worker), b.ID, api.Running, ms(b.LeaseUntil)); err != nil {
				return nil, err
			}
			continue
		default:
			continue
		}
		res, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET state = ?, error = ?, finished = ?, lease_until = 0 WHERE id = ? AND state = ? AND lease_until = ?`),
			state, reason, ms(now), b.ID, api.Running, ms(b.LeaseUntil))
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			b.State, b.Error = state, reason
			ended = append(ended, b)
		}
	}
	return ended, nil
}

// ErrLogFull is returned once a build's log has reached its size limit.
var ErrLogFull = errors.New("log size limit reached")

// ExpireQueued fails queued builds that no worker has taken within wait
// (no worker serves their platform or holds their secrets), saying so.
func (s *Store) ExpireQueued(ctx context.Context, wait time.Duration) ([]Build, error) {
	cutoff := ms(time.Now().Add(-wait))
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+buildCols+` FROM builds WHERE state = ? AND created < ?`), api.Queued, cutoff)
	if err != nil {
		return nil, err
	}
	var stale []Build
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		stale = append(stale, b)
	}
	rows.Close()
	var ended []Build
	for _, b := range stale {
		reason := fmt.Sprintf("no worker for %s", b.Platform)
		if len(b.Secrets) > 0 {
			reason += " holding secrets " + strings.Join(b.Secrets, ", ")
		}
		reason += fmt.Sprintf(" took it within %s", wait)
		if b.Error != "" {
			reason += " (" + b.Error + ")"
		}
		res, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET state = ?, error = ?, finished = ? WHERE id = ? AND state = ?`), api.Failed, reason, ms(time.Now()), b.ID, api.Queued)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			b.State, b.Error = api.Failed, reason
			ended = append(ended, b)
		}
	}
	return ended, nil
}

// AppendLog adds a chunk of a build's log and returns its sequence number
// (1, 2, ...), which is the Server-Sent Events id. A log is kept up to max
// bytes (0: no limit): the chunk that would pass it is cut and followed by
// a note, later ones are refused with ErrLogFull.
func (s *Store) AppendLog(ctx context.Context, id, data string, max int64) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var seq, size int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(seq), 0) + 1, COALESCE(SUM(LENGTH(data)), 0) FROM build_logs WHERE build_id = ?`), id).Scan(&seq, &size); err != nil {
		return 0, err
	}
	if max > 0 {
		switch {
		case size >= max:
			return 0, ErrLogFull
		case size+int64(len(data)) > max:
			data = strings.ToValidUTF8(data[:max-size], "") + fmt.Sprintf("\n[pei serve: log cut at %d bytes]\n", max)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO build_logs (build_id, seq, data) VALUES (?, ?, ?)`), id, seq, data); err != nil {
		return 0, err
	}
	return seq, tx.Commit()
}

// LogChunk is one piece of a build log.
type LogChunk struct {
	Seq  int64
	Data string
}

// Logs returns a build's log chunks after sequence number after.
func (s *Store) Logs(ctx context.Context, id string, after int64) ([]LogChunk, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, data FROM build_logs WHERE build_id = ? AND seq > ? ORDER BY seq LIMIT 1000`), id, after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LogChunk
	for rows.Next() {
		var c LogChunk
		if err := rows.Scan(&c.Seq, &c.Data); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Webhook delivery state lives on the build row, so a build that ends has
// its delivery pending in the same write: nothing is lost if the server
// dies between the two.
const (
	hookPending   = 0
	hookDelivered = 1
	hookGaveUp    = 2
)

// DueWebhooks claims up to n ended builds whose webhook is due, pushing
// their next attempt hold seconds ahead so another replica does not send
// the same call meanwhile.
func (s *Store) DueWebhooks(ctx context.Context, n int, hold time.Duration) ([]Build, error) {
	now := time.Now()
	rows, err := s.db.QueryContext(ctx, s.q(fmt.Sprintf(`SELECT `+buildCols+`, hook_attempts, hook_next FROM builds WHERE webhook <> '' AND hook_done = ? AND state IN (?, ?, ?) AND hook_next <= ? ORDER BY hook_next LIMIT %d`, n)),
		hookPending, api.Succeeded, api.Failed, api.Canceled, ms(now))
	if err != nil {
		return nil, err
	}
	type cand struct {
		b    Build
		next int64
	}
	var cands []cand
	for rows.Next() {
		var c cand
		b, err := scanBuild(rows, &c.b.HookAttempts, &c.next)
		if err != nil {
			rows.Close()
			return nil, err
		}
		b.HookAttempts = c.b.HookAttempts
		c.b = b
		cands = append(cands, c)
	}
	rows.Close()
	var out []Build
	for _, c := range cands {
		res, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET hook_next = ? WHERE id = ? AND hook_next = ? AND hook_done = ?`), ms(now.Add(hold)), c.b.ID, c.next, hookPending)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			out = append(out, c.b)
		}
	}
	return out, nil
}

// WebhookSent records a delivery attempt: delivered, or failed with the
// next attempt at next (zero: give up).
func (s *Store) WebhookSent(ctx context.Context, id string, delivered bool, reason string, next time.Time) error {
	done := hookPending
	switch {
	case delivered:
		done = hookDelivered
	case next.IsZero():
		done = hookGaveUp
	}
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET hook_attempts = hook_attempts + 1, hook_done = ?, hook_next = ?, hook_error = ? WHERE id = ?`),
		done, ms(next), reason, id)
	return err
}

// WebhookState reports a build's webhook delivery: attempts made,
// delivered, given up, and the last error.
func (s *Store) WebhookState(ctx context.Context, id string) (attempts int, delivered, gaveUp bool, lastErr string, err error) {
	var done int
	err = s.db.QueryRowContext(ctx, s.q(`SELECT hook_attempts, hook_done, hook_error FROM builds WHERE id = ?`), id).Scan(&attempts, &done, &lastErr)
	return attempts, done == hookDelivered, done == hookGaveUp, lastErr, err
}
