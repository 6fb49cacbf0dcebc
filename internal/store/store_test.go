package store

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/testenv"
)

// backends runs a test on SQLite and on PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "pei.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fn(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		testenv.Short(t, "PostgreSQL")
		dsn := testenv.Postgres(t)
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !s.Postgres() {
			t.Fatal("not PostgreSQL")
		}
		fn(t, s)
	})
}

func TestTokens(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		tok, secret, err := s.CreateToken(ctx, Token{Name: "alice", Namespaces: []string{"team-a", "shared"}, Scopes: []string{"push", "build"}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "pei_") || len(secret) < 40 {
			t.Fatalf("secret %q", secret)
		}
		got, err := s.TokenBySecret(ctx, secret)
		if err != nil || got.ID != tok.ID || strings.Join(got.Namespaces, ",") != "team-a,shared" || strings.Join(got.Scopes, ",") != "push,build" {
			t.Fatalf("by secret: %+v, %v", got, err)
		}
		if _, err := s.TokenBySecret(ctx, secret+"x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("wrong secret: %v", err)
		}
		_, expired, _ := s.CreateToken(ctx, Token{Name: "old", Namespaces: []string{"x"}, Scopes: []string{"pull"}, Expires: time.Now().Add(-time.Minute)})
		if _, err := s.TokenBySecret(ctx, expired); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired token: %v", err)
		}
		if err := s.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TokenBySecret(ctx, secret); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoked token: %v", err)
		}
		if err := s.RevokeToken(ctx, "t-nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
		all, _ := s.Tokens(ctx)
		revoked := map[string]bool{}
		for _, a := range all {
			revoked[a.Name] = a.Revoked
		}
		if len(all) != 2 || !revoked["alice"] || revoked["old"] {
			t.Fatalf("list %+v", all)
		}
	})
}

func queue(t *testing.T, s *Store, platform string, secrets ...string) Build {
	t.Helper()
	b, err := s.CreateBuild(context.Background(), Build{Repo: "team-a/app", Namespace: "team-a", Tag: "v1", Platform: platform, Kind: "pei", Recipe: "sha256:00", Secrets: secrets, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // distinct creation times: FIFO order is observable
	return b
}

func TestQueue(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := queue(t, s, "linux/amd64")
		arm := queue(t, s, "linux/arm64")
		sec := queue(t, s, "linux/amd64", "npm")
		b := queue(t, s, "linux/amd64")
		if n, _ := s.Active(ctx, "team-a"); n != 4 {
			t.Fatalf("active %d", n)
		}
		// Oldest first, by platform, skipping builds needing secrets the
		// worker lacks.
		var got []string
		for {
			l, err := s.Lease(ctx, "w1", []string{"linux/amd64"}, nil, time.Minute)
			if errors.Is(err, ErrNotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.State != api.Running || l.Worker != "w1" || l.Attempts != 1 || l.Started.IsZero() {
				t.Fatalf("leased %+v", l)
			}
			got = append(got, l.ID)
		}
		if strings.Join(got, ",") != a.ID+","+b.ID {
			t.Fatalf("amd64 worker without secrets leased %v, want %s,%s", got, a.ID, b.ID)
		}
		l, err := s.Lease(ctx, "w2", []string{"linux/arm64", "linux/amd64"}, []string{"npm", "other"}, time.Minute)
		if err != nil || l.ID != arm.ID {
			t.Fatalf("second worker: %v %v", l.ID, err)
		}
		l, err = s.Lease(ctx, "w2", []string{"linux/amd64"}, []string{"npm"}, time.Minute)
		if err != nil || l.ID != sec.ID || strings.Join(l.Secrets, ",") != "npm" {
			t.Fatalf("secret build: %+v %v", l, err)
		}

		// Heartbeats and finishing belong to the lease holder.
		if _, err := s.Heartbeat(ctx, a.ID, "w2", time.Minute); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("heartbeat by another worker: %v", err)
		}
		if _, err := s.Heartbeat(ctx, a.ID, "w1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Finish(ctx, a.ID, "w2", api.Finish{State: api.Succeeded, Digest: "sha256:11"}); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("finish by another worker: %v", err)
		}
		done, err := s.Finish(ctx, a.ID, "w1", api.Finish{State: api.Succeeded, Digest: "sha256:11"})
		if err != nil || done.State != api.Succeeded || done.Digest != "sha256:11" || done.Finished.IsZero() || !done.Done() {
			t.Fatalf("finish: %+v %v", done, err)
		}
		if _, err := s.Finish(ctx, a.ID, "w1", api.Finish{State: api.Failed, Error: "again"}); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("second finish: %v", err)
		}
		if _, err := s.Finish(ctx, b.ID, "w1", api.Finish{State: "weird"}); err == nil {
			t.Fatal("finish with a non-end state")
		}

		// Cancel: running builds are flagged for their worker.
		c, _ := s.Cancel(ctx, b.ID)
		if c.State != api.Running || !c.Cancel {
			t.Fatalf("cancel running: %+v", c)
		}
		if hb, _ := s.Heartbeat(ctx, b.ID, "w1", time.Minute); !hb.Cancel {
			t.Fatal("heartbeat does not carry the cancel")
		}
		q := queue(t, s, "linux/s390x")
		if c, _ := s.Cancel(ctx, q.ID); c.State != api.Canceled || c.Error == "" {
			t.Fatalf("cancel queued: %+v", c)
		}

		list, _ := s.Builds(ctx, Filter{Repo: "team-a/app", State: api.Running})
		if len(list) != 3 {
			t.Fatalf("running builds %d", len(list))
		}
		if _, err := s.Build(ctx, "b-nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown build: %v", err)
		}
	})
}

func TestExpire(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		lost := queue(t, s, "linux/amd64")
		if _, err := s.Lease(ctx, "w1", []string{"linux/amd64"}, nil, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		ended, err := s.Expire(ctx, 2)
		if err != nil || len(ended) != 0 {
			t.Fatalf("first expiry ended %v, %v", ended, err)
		}
		b, _ := s.Build(ctx, lost.ID)
		if b.State != api.Queued || b.Worker != "" || !strings.Contains(b.Error, "w1 stopped answering; queued again") {
			t.Fatalf("after losing w1: %+v", b)
		}
		if _, err := s.Lease(ctx, "w2", []string{"linux/amd64"}, nil, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		ended, _ = s.Expire(ctx, 2)
		if len(ended) != 1 || ended[0].State != api.Failed || !strings.Contains(ended[0].Error, "attempt 2 of 2") {
			t.Fatalf("second expiry: %+v", ended)
		}
		// A lost worker of a build asked to stop: canceled, not retried.
		c := queue(t, s, "linux/amd64")
		s.Lease(ctx, "w3", []string{"linux/amd64"}, nil, 50*time.Millisecond)
		s.Cancel(ctx, c.ID)
		time.Sleep(100 * time.Millisecond)
		ended, _ = s.Expire(ctx, 2)
		if len(ended) != 1 || ended[0].State != api.Canceled {
			t.Fatalf("canceled and lost: %+v", ended)
		}
		// A build past its timeout fails even while heartbeating.
		tb, _ := s.CreateBuild(ctx, Build{Repo: "team-a/app", Namespace: "team-a", Tag: "t", Platform: "linux/arm64", Kind: "pei", Recipe: "sha256:00", Timeout: time.Second})
		s.Lease(ctx, "w4", []string{"linux/arm64"}, nil, time.Hour)
		if _, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET started = ? WHERE id = ?`), time.Now().Add(-time.Hour).UnixMilli(), tb.ID); err != nil {
			t.Fatal(err)
		}
		ended, _ = s.Expire(ctx, 2)
		if len(ended) != 1 || ended[0].ID != tb.ID || ended[0].Error != "timed out after 1s" {
			t.Fatalf("timeout: %+v", ended)
		}
	})
}

// TestConcurrentLeases: many workers leasing at once never get one build
// twice and leave none behind.
func TestConcurrentLeases(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		want := map[string]bool{}
		for i := 0; i < 40; i++ {
			b, err := s.CreateBuild(ctx, Build{Repo: "team-a/app", Namespace: "team-a", Tag: "v", Platform: "linux/amd64", Kind: "pei", Recipe: "sha256:00"})
			if err != nil {
				t.Fatal(err)
			}
			want[b.ID] = true
		}
		var mu sync.Mutex
		var got []string
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for {
					b, err := s.Lease(ctx, "w"+string(rune('a'+w)), []string{"linux/amd64"}, nil, time.Minute)
					if errors.Is(err, ErrNotFound) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					got = append(got, b.ID)
					mu.Unlock()
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		sort.Strings(got)
		for i := 1; i < len(got); i++ {
			if got[i] == got[i-1] {
				t.Fatalf("build %s leased twice", got[i])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("leased %d of %d builds", len(got), len(want))
		}
	})
}

func TestLogs(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for i, chunk := range []string{"a\n", "b\n", "c\n"} {
			seq, err := s.AppendLog(ctx, "b-1", chunk, 0)
			if err != nil || seq != int64(i+1) {
				t.Fatalf("append %d: seq %d, %v", i, seq, err)
			}
		}
		s.AppendLog(ctx, "b-2", "other\n", 0)
		got, _ := s.Logs(ctx, "b-1", 1)
		if len(got) != 2 || got[0].Seq != 2 || got[0].Data != "b\n" || got[1].Data != "c\n" {
			t.Fatalf("after 1: %+v", got)
		}
		// A log is cut at its limit, with a note, then refused.
		s.AppendLog(ctx, "b-3", "12345", 8)
		if _, err := s.AppendLog(ctx, "b-3", "67890", 8); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendLog(ctx, "b-3", "more", 8); !errors.Is(err, ErrLogFull) {
			t.Fatalf("append past the limit: %v", err)
		}
		got, _ = s.Logs(ctx, "b-3", 0)
		if len(got) != 2 || got[1].Data != "678\n[pei serve: log cut at 8 bytes]\n" {
			t.Fatalf("cut log %+v", got)
		}
	})
}

func TestRelease(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		b := queue(t, s, "linux/amd64")
		s.Lease(ctx, "w1", []string{"linux/amd64"}, nil, time.Minute)
		if _, err := s.Release(ctx, b.ID, "w2", "x"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("release by another worker: %v", err)
		}
		r, err := s.Release(ctx, b.ID, "w1", "w1 stopped; queued again")
		if err != nil || r.State != api.Queued || r.Worker != "" || r.Attempts != 1 {
			t.Fatalf("release: %+v %v", r, err)
		}
		l, err := s.Lease(ctx, "w2", []string{"linux/amd64"}, nil, time.Minute)
		if err != nil || l.ID != b.ID || l.Attempts != 2 {
			t.Fatalf("lease after release: %+v %v", l, err)
		}
	})
}

// TestLeaseMultiPlatform: a build for several platforms goes to a worker
// that builds them all.
func TestLeaseMultiPlatform(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		both := queue(t, s, "linux/amd64,linux/arm64")
		if _, err := s.Lease(ctx, "amd", []string{"linux/amd64"}, nil, time.Minute); !errors.Is(err, ErrNotFound) {
			t.Fatalf("an amd64-only worker leased a two-platform build: %v", err)
		}
		l, err := s.Lease(ctx, "multi", []string{"linux/arm64", "linux/amd64"}, nil, time.Minute)
		if err != nil || l.ID != both.ID {
			t.Fatalf("a worker for both: %+v %v", l, err)
		}
	})
}

// TestExpireQueued: queued builds older than the wait fail, saying why;
// newer ones and running ones stay. Ages are set in the database, not
// slept for, so a slow machine cannot turn a fresh build into an old one.
func TestExpireQueued(t *testing.T) {
	backends(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		backdate := func(id string, age time.Duration) {
			t.Helper()
			if _, err := s.db.ExecContext(ctx, s.q(`UPDATE builds SET created = ? WHERE id = ?`), ms(time.Now().Add(-age)), id); err != nil {
				t.Fatal(err)
			}
		}
		old := queue(t, s, "linux/s390x", "npm")
		backdate(old.ID, 2*time.Hour)
		running := queue(t, s, "linux/arm64")
		if l, err := s.Lease(ctx, "w1", []string{"linux/arm64"}, nil, time.Minute); err != nil || l.ID != running.ID {
			t.Fatalf("lease: %+v %v", l, err)
		}
		backdate(running.ID, 2*time.Hour)
		fresh := queue(t, s, "linux/s390x")
		ended, err := s.ExpireQueued(ctx, time.Hour)
		if err != nil || len(ended) != 1 || ended[0].ID != old.ID || ended[0].State != api.Failed {
			t.Fatalf("expired %+v %v, want only %s", ended, err, old.ID)
		}
		if want := "no worker for linux/s390x holding secrets npm took it within 1h0m0s"; ended[0].Error != want {
			t.Errorf("reason %q, want %q", ended[0].Error, want)
		}
		for id, want := range map[string]api.State{old.ID: api.Failed, fresh.ID: api.Queued, running.ID: api.Running} {
			if b, err := s.Build(ctx, id); err != nil || b.State != want {
				t.Errorf("build %s: %s %v, want %s", id, b.State, err, want)
			}
		}
		// A build that names no secrets is not said to need any.
		backdate(fresh.ID, 2*time.Hour)
		ended, err = s.ExpireQueued(ctx, time.Hour)
		if err != nil || len(ended) != 1 || ended[0].ID != fresh.ID {
			t.Fatalf("expired %+v %v, want only %s", ended, err, fresh.ID)
		}
		if want := "no worker for linux/s390x took it within 1h0m0s"; ended[0].Error != want {
			t.Errorf("reason %q, want %q", ended[0].Error, want)
		}
	})
}
