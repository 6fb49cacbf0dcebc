package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/reference"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/time/rate"

	"github.com/pei-dev/pei/internal/api"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.tokenHandler)
	mux.HandleFunc("GET /v2/_catalog", s.catalog)
	mux.HandleFunc("POST /v2/_pei/workers/lease", s.limited(s.lease))
	mux.HandleFunc("POST /v2/_pei/workers/builds/{id}/heartbeat", s.heartbeat)
	mux.HandleFunc("POST /v2/_pei/workers/builds/{id}/logs", s.appendLog)
	mux.HandleFunc("POST /v2/_pei/workers/builds/{id}/finish", s.finish)
	mux.HandleFunc("GET /v2/_pei/workers/builds/{id}/recipe", s.recipe)
	mux.HandleFunc("GET /v2/_pei/builds", s.limited(s.listAll))
	mux.HandleFunc("GET /v2/_pei/repositories", s.limited(s.repositories))
	mux.HandleFunc("/v2/_pei/catalogs/{ns}", s.limited(s.catalogRoutes))
	mux.HandleFunc("/v2/_pei/catalogs/{ns}/{name}", s.limited(s.catalogRoutes))
	mux.HandleFunc("/v2/", s.v2)
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /{$}", s.ui)
	mux.HandleFunc("GET /ui/", s.ui)
	return s.withDeadlines(noSniff(mux))
}

// noSniff tells browsers to take every answer as the type it says: a log
// or an error holding a tenant's text is never run as a page or a script.
func noSniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// v2 sends /v2/<name>/_pei/... to pei's build endpoints and the rest to
// the registry; manifests pushed to the registry are looked at for recipe
// artifacts.
func (s *Server) v2(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	// The registry library checks a registry token's signature and
	// expiry only: pei refuses here what it would take, a token without
	// an expiry or whose pei token was revoked or whose build has ended.
	if isBearer(r) {
		if _, err := s.caller(r); err != nil {
			s.challenge(w, "registry token refused: "+err.Error())
			return
		}
	}
	if name, sub, ok := strings.Cut(rest, "/_pei/"); ok {
		if _, err := reference.ParseNormalizedNamed(name); err != nil || strings.Contains(name, ":") {
			writeError(w, http.StatusNotFound, "NAME_INVALID", fmt.Sprintf("invalid repository name %q", name), nil)
			return
		}
		s.limited(func(w http.ResponseWriter, r *http.Request) { s.buildRoutes(w, r, name, sub) })(w, r)
		return
	}
	// A repository name may hold a "manifests" component; the reference
	// holds no '/', so it is after the last "/manifests/", as the
	// registry's router reads it.
	if i := strings.LastIndex(rest, "/manifests/"); i >= 0 {
		name, ref := rest[:i], rest[i+len("/manifests/"):]
		switch r.Method {
		case http.MethodPut:
			s.putManifest(w, r, name)
			return
		case http.MethodDelete:
			s.deleteManifest(w, r, name, ref)
			return
		}
	}
	// The registry library has no referrers API: pei keeps the index.
	if name, d, ok := strings.Cut(rest, "/referrers/"); ok && r.Method == http.MethodGet {
		s.referrers(w, r, name, d)
		return
	}
	s.app.ServeHTTP(w, r)
}

func (s *Server) buildRoutes(w http.ResponseWriter, r *http.Request, repo, sub string) {
	parts := strings.Split(sub, "/")
	switch {
	case len(parts) == 1 && parts[0] == "builds" && r.Method == http.MethodPost:
		s.submit(w, r, repo)
	case len(parts) == 1 && parts[0] == "builds" && r.Method == http.MethodGet:
		s.list(w, r, repo)
	case len(parts) == 2 && parts[0] == "builds" && r.Method == http.MethodGet:
		s.status(w, r, repo, parts[1])
	case len(parts) == 2 && parts[0] == "builds" && r.Method == http.MethodDelete:
		s.cancelBuild(w, r, repo, parts[1])
	case len(parts) == 3 && parts[0] == "builds" && parts[2] == "logs" && r.Method == http.MethodGet:
		s.logs(w, r, repo, parts[1])
	default:
		writeError(w, http.StatusNotFound, "UNSUPPORTED", fmt.Sprintf("no pei endpoint %s /v2/%s/_pei/%s (see docs/api.md)", r.Method, repo, sub), nil)
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string, detail any) {
	writeJSON(w, status, api.Errors{Errors: []api.Error{{Code: code, Message: msg, Detail: detail}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// deny answers a caller without the right: 401 with a challenge when
// anonymous or not authenticated, 403 when authenticated.
func (s *Server) deny(w http.ResponseWriter, c *claims, err error, what string) {
	if c == nil || err != nil {
		// A Bearer challenge, never Basic: a browser would pop up a login
		// box for Basic and then send what it remembers everywhere.
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service=%q`, s.cfg.PublicURL+"/token", service))
		msg := "authentication required: pass a pei token (pei token create) as the password"
		if err != nil {
			msg = "authentication failed: " + err.Error()
		}
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg, nil)
		return
	}
	writeError(w, http.StatusForbidden, "DENIED", fmt.Sprintf("token %q may not %s", c.Subject, what), nil)
}

// limiter is a token bucket per caller (token subject, else address).
type limiter struct {
	mu      sync.Mutex
	perSec  float64
	burst   int
	buckets map[string]*rate.Limiter
}

func newLimiter(perSec float64, burst int) *limiter {
	return &limiter{perSec: perSec, burst: burst, buckets: map[string]*rate.Limiter{}}
}

func (l *limiter) allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) > 100000 {
			l.buckets = map[string]*rate.Limiter{} // bounded memory
		}
		b = rate.NewLimiter(rate.Limit(l.perSec), l.burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	res := b.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return false, d
	}
	return true, 0
}

// blocked reports whether key's bucket is empty, without taking from it.
func (l *limiter) blocked(key string) (bool, time.Duration) {
	l.mu.Lock()
	b, ok := l.buckets[key]
	l.mu.Unlock()
	if !ok {
		return false, 0
	}
	if n := b.Tokens(); n < 1 {
		return true, time.Duration((1 - n) / l.perSec * float64(time.Second))
	}
	return false, 0
}

func tooMany(w http.ResponseWriter, perSec float64, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
	writeError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", fmt.Sprintf("more than %g requests per second; retry after %s", perSec, wait.Round(time.Millisecond)), nil)
}

// failKey is the bucket failed logins from an address are charged to.
func failKey(r *http.Request) string {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return "fail:" + host
}

// tokenRateOK applies the request rate to /token: per presented secret
// (a hash of it), or per address for anonymous requests; an address
// whose failed logins emptied its bucket is held back whatever it
// presents. It answers 429 with Retry-After when over.
func (s *Server) tokenRateOK(w http.ResponseWriter, r *http.Request, secret string) bool {
	if over, wait := s.tokenLimiter.blocked(failKey(r)); over {
		tooMany(w, s.cfg.Limits.RequestsPerSec, wait)
		return false
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	key := "addr:" + host
	if secret != "" {
		sum := sha256.Sum256([]byte(secret))
		key = "secret:" + hex.EncodeToString(sum[:16])
	}
	if ok, wait := s.tokenLimiter.allow(key); !ok {
		tooMany(w, s.cfg.Limits.RequestsPerSec, wait)
		return false
	}
	return true
}

// limited applies the per-caller request rate to a pei endpoint.
func (s *Server) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, _, _ := net.SplitHostPort(r.RemoteAddr)
		if c, err := s.caller(r); err == nil && c != nil {
			key = "token:" + c.Subject
		}
		if ok, wait := s.limiter.allow(key); !ok {
			tooMany(w, s.cfg.Limits.RequestsPerSec, wait)
			return
		}
		h(w, r)
	}
}

// visibleRepos lists the repositories a caller may pull from.
func (s *Server) visibleRepos(r *http.Request, c *claims) ([]string, error) {
	enum, ok := s.registry.(distribution.RepositoryEnumerator)
	if !ok {
		return nil, errors.New("storage cannot list repositories")
	}
	var out []string
	err := enum.Enumerate(r.Context(), func(name string) error {
		if s.allowed(c, name, "pull") {
			out = append(out, name)
		}
		return nil
	})
	if err != nil && !isPathNotFound(err) {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

func isPathNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Path not found")
}

// catalog is /v2/_catalog limited to the caller's namespaces, with the
// spec's n/last pagination and Link header.
func (s *Server) catalog(w http.ResponseWriter, r *http.Request) {
	c, err := s.caller(r)
	if err != nil {
		s.deny(w, nil, err, "")
		return
	}
	if c == nil && len(s.cfg.AnonymousPull) == 0 {
		// Send clients through the token flow as the registry would.
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service=%q,scope="registry:catalog:*"`, s.cfg.PublicURL+"/token", service))
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", nil)
		return
	}
	repos, err := s.visibleRepos(r, c)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(repos, last)
		if i < len(repos) && repos[i] == last {
			i++
		}
		repos = repos[i:]
	}
	if n := q.Get("n"); n != "" {
		k, err := strconv.Atoi(n)
		if err != nil || k < 0 {
			writeError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "n must be a non-negative number", nil)
			return
		}
		if k < len(repos) {
			repos = repos[:k]
			if k > 0 {
				w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?last=%s&n=%d>; rel="next"`, repos[k-1], k))
			}
		}
	}
	if repos == nil {
		repos = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"repositories": repos})
}

// putManifest enforces the manifest size limit, passes the push to the
// registry, records a manifest with a subject for the referrers API, and
// queues a build when the manifest is a pei recipe artifact.
func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, repo string) {
	if !isBearer(r) {
		// The registry takes registry tokens only: it answers with its
		// Bearer challenge.
		s.app.ServeHTTP(w, r)
		return
	}
	if r.ContentLength > s.cfg.Limits.MaxManifestBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("manifest of %d bytes is over the limit of %d", r.ContentLength, s.cfg.Limits.MaxManifestBytes), nil)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.Limits.MaxManifestBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", "read manifest: "+err.Error(), nil)
		return
	}
	if int64(len(body)) > s.cfg.Limits.MaxManifestBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("manifest is over the limit of %d bytes", s.cfg.Limits.MaxManifestBytes), nil)
		return
	}
	var m ocispecs.Manifest
	recipe := json.Unmarshal(body, &m) == nil && (m.ArtifactType == api.RecipeArtifactType || m.Config.MediaType == api.RecipeArtifactType)
	var trigger func(digest string) (string, error)
	if recipe {
		// Check before the push lands, so a bad recipe is refused whole.
		// Unpacking a large one takes a while before the answer.
		holdWrite(w, r, s.cfg.Limits.UploadTimeout)
		t, herr := s.recipeArtifact(r, repo, m)
		if herr != nil {
			herr.write(w)
			return
		}
		trigger = t
	} else if c, err := s.caller(r); err != nil || !s.pushesImages(c, repo) {
		// A build token's registry token may upload blobs, for recipe
		// artifacts; putting an image is the push scope's.
		writeError(w, http.StatusForbidden, "DENIED", fmt.Sprintf("pushing images to %s needs the push scope there; a build token pushes recipe artifacts (artifactType %s) only", repo, api.RecipeArtifactType), nil)
		return
	}
	ref := referrer(repo, body, r.Header.Get("Content-Type"))
	r.Body = io.NopCloser(bytes.NewReader(body))
	if trigger == nil && ref == nil {
		s.app.ServeHTTP(w, r)
		return
	}
	// Hold the response until the referrer is recorded and the build
	// queued, so a 201 means all of it.
	buf := &bufferedWriter{header: http.Header{}}
	s.app.ServeHTTP(buf, r)
	if buf.status == http.StatusCreated && ref != nil {
		if err := s.store.AddReferrer(r.Context(), *ref); err != nil {
			writeError(w, http.StatusInternalServerError, "UNKNOWN", "record referrer: "+err.Error(), nil)
			return
		}
		buf.header.Set("OCI-Subject", ref.Subject)
	}
	if buf.status == http.StatusCreated && trigger != nil {
		id, err := trigger(buf.header.Get("Docker-Content-Digest"))
		if err != nil {
			buf.header.Set("Pei-Build-Error", err.Error())
		} else {
			buf.header.Set("Pei-Build-Id", id)
			buf.header.Set("Pei-Build-Location", api.BuildPath(repo, id))
		}
	}
	buf.flush(w)
}

type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// events wakes long polls (workers waiting for a build, log followers)
// when something changes; the key is a build id, "" is "the queue".
type events struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{}
}

func newEvents() *events { return &events{waiters: map[string][]chan struct{}{}} }

func (e *events) wait(key string) <-chan struct{} {
	ch := make(chan struct{})
	e.mu.Lock()
	e.waiters[key] = append(e.waiters[key], ch)
	e.mu.Unlock()
	return ch
}

func (e *events) notify(key string) {
	e.mu.Lock()
	ws := e.waiters[key]
	delete(e.waiters, key)
	e.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

func (e *events) notifyAll() {
	e.mu.Lock()
	all := e.waiters
	e.waiters = map[string][]chan struct{}{}
	e.mu.Unlock()
	for _, ws := range all {
		for _, ch := range ws {
			close(ch)
		}
	}
}

// health is for load balancers and supervisors: 200 when the database
// and the registry's storage answer, 503 otherwise.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "database: "+err.Error(), nil)
		return
	}
	if enum, ok := s.registry.(distribution.RepositoryEnumerator); ok {
		err := enum.Enumerate(ctx, func(string) error { return errStopEnumerate })
		if err != nil && !errors.Is(err, errStopEnumerate) && !isPathNotFound(err) {
			writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "storage: "+err.Error(), nil)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

var errStopEnumerate = errors.New("stop")
