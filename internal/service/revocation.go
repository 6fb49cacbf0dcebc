package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

// liveFor is how long the answer "is the pei token or build behind this
// registry token still live?" is remembered. The registry library checks a
// registry token's signature and expiry only, statelessly; pei asks the
// database on top of it, so a revoked pei token or an ended build stops
// working within liveFor on every replica, while a push of many blobs
// costs one query every liveFor rather than one per request.
const liveFor = 2 * time.Second

type liveCache struct {
	mu sync.Mutex
	m  map[string]liveEntry
}

type liveEntry struct {
	err   error
	until time.Time
}

func newLiveCache() *liveCache { return &liveCache{m: map[string]liveEntry{}} }

// live reports whether what a verified registry token stands for is still
// there: its pei token not revoked or expired, or its build still running
// on the attempt the credentials were made for.
func (s *Server) live(ctx context.Context, c *claims) error {
	var key string
	switch {
	case c.Build != "":
		key = "build:" + c.Build
	case c.TokenID != "":
		key = "token:" + c.TokenID
	case c.Subject == "anonymous" && len(c.Scopes) == 0:
		return nil // anonymous: what anyone may do, nothing to revoke
	default:
		return errors.New("the token names no pei token or build: get a new one from /token")
	}
	now := time.Now()
	l := s.liveness
	l.mu.Lock()
	e, ok := l.m[key]
	l.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.err
	}
	err := s.checkLive(ctx, c)
	var transient *transientError
	if errors.As(err, &transient) {
		return err // the database did not answer: ask again next time
	}
	l.mu.Lock()
	if len(l.m) > 10000 {
		// Bounded memory: drop what has run out.
		for k, e := range l.m {
			if !now.Before(e.until) {
				delete(l.m, k)
			}
		}
	}
	l.m[key] = liveEntry{err: err, until: now.Add(liveFor)}
	l.mu.Unlock()
	return err
}

type transientError struct{ err error }

func (e *transientError) Error() string { return "checking the token: " + e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func (s *Server) checkLive(ctx context.Context, c *claims) error {
	if c.Build != "" {
		i := strings.LastIndex(c.Build, ".")
		if i < 0 {
			return errors.New("build credentials name no attempt")
		}
		id, attempt := c.Build[:i], c.Build[i+1:]
		b, err := s.store.Build(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("build %s does not exist", id)
		case err != nil:
			return &transientError{err}
		case b.State != api.Running || strconv.Itoa(b.Attempts) != attempt:
			return fmt.Errorf("build credentials of %s attempt %s ended with it (now %s, attempt %d)", id, attempt, b.State, b.Attempts)
		}
		return nil
	}
	_, err := s.store.TokenByID(ctx, c.TokenID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errors.New("the pei token this registry token was made from is revoked or expired")
	case err != nil:
		return &transientError{err}
	}
	return nil
}

// isBearer reports whether a request carries a registry token.
func isBearer(r *http.Request) bool {
	prefix, _, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(prefix, "bearer")
}

// challenge answers 401 with the registry's Bearer challenge: clients go
// to /token for a new token (and are refused there if their pei token
// is gone). Never a Basic challenge, which a browser would remember.
func (s *Server) challenge(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service=%q,error="invalid_token"`, s.cfg.PublicURL+"/token", service))
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg, nil)
}
