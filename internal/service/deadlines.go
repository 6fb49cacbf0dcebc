package service

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"
)

// Timeouts bound how long a client may hold a connection without making
// progress. None bounds a whole transfer: a layer of many gigabytes over a
// slow link, or a log followed for an hour, goes on as long as bytes move.
type Timeouts struct {
	// ReadHeader is how long a client has to send a request's headers.
	ReadHeader time.Duration
	// Stall cuts a request whose body or response makes no progress for
	// this long (a handler waiting on purpose, a worker's long poll,
	// extends it).
	Stall time.Duration
	// Idle is how long a kept-alive connection waits for its next request.
	Idle time.Duration
}

// DefaultTimeouts are the timeouts when none are configured.
var DefaultTimeouts = Timeouts{ReadHeader: 30 * time.Second, Stall: 2 * time.Minute, Idle: 2 * time.Minute}

// HTTPServer is an http.Server for s with its connection timeouts: the
// server-wide ones (headers, keep-alive) here, per-request read and write
// deadlines that move with progress in the handler.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{Handler: s, ReadHeaderTimeout: s.cfg.Timeouts.ReadHeader, IdleTimeout: s.cfg.Timeouts.Idle}
}

type deadlinesKey struct{}

// deadlines are a request's read and write deadlines: each moves Stall
// past the latest progress (bytes of the body read, of the response
// written); the read deadline never past a handler's cap (the recipe
// upload time).
type deadlines struct {
	rc      *http.ResponseController
	stall   time.Duration
	mu      sync.Mutex
	readCap time.Time
}

func (d *deadlines) read() {
	t := time.Now().Add(d.stall)
	d.mu.Lock()
	if !d.readCap.IsZero() && t.After(d.readCap) {
		t = d.readCap
	}
	d.mu.Unlock()
	d.rc.SetReadDeadline(t)
}

func (d *deadlines) wrote() { d.rc.SetWriteDeadline(time.Now().Add(d.stall)) }

// progress moves both deadlines: the answer comes after the body, and a
// read deadline that passes while a handler streams its answer (the
// server reads on in the background to see the client go) ends the
// request's context.
func (d *deadlines) progress() {
	d.read()
	d.wrote()
}

// withDeadlines gives every request progress-based read and write
// deadlines (see Timeouts).
func (s *Server) withDeadlines(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := &deadlines{rc: http.NewResponseController(w), stall: s.cfg.Timeouts.Stall}
		d.progress()
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &progressBody{ReadCloser: r.Body, d: d}
		}
		r = r.WithContext(context.WithValue(r.Context(), deadlinesKey{}, d))
		h.ServeHTTP(&progressWriter{ResponseWriter: w, d: d}, r)
	})
}

func requestDeadlines(r *http.Request) *deadlines {
	d, _ := r.Context().Value(deadlinesKey{}).(*deadlines)
	return d
}

// capRead ends reading r's body at t however it progresses; a zero t
// lifts the cap once the body is in.
func capRead(r *http.Request, t time.Time) {
	d := requestDeadlines(r)
	if d == nil {
		return
	}
	d.mu.Lock()
	d.readCap = t
	d.mu.Unlock()
	if t.IsZero() {
		d.read()
		return
	}
	d.rc.SetReadDeadline(t)
}

// holdWrite lets a handler wait up to wait before it writes (a long poll,
// the check of a large recipe) without the stall timeout cutting it.
func holdWrite(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	d := requestDeadlines(r)
	if d == nil {
		return
	}
	t := time.Now().Add(wait + d.stall)
	d.rc.SetWriteDeadline(t)
	d.mu.Lock()
	if !d.readCap.IsZero() && t.After(d.readCap) {
		t = d.readCap
	}
	d.mu.Unlock()
	d.rc.SetReadDeadline(t)
}

// keepaliveEvery is how often a quiet event stream sends a comment: well
// within the stall timeout, so that a followed log stays open.
func (s *Server) keepaliveEvery() time.Duration {
	return min(15*time.Second, s.cfg.Timeouts.Stall/2)
}

type progressBody struct {
	io.ReadCloser
	d *deadlines
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.d.progress()
	}
	return n, err
}

type progressWriter struct {
	http.ResponseWriter
	d *deadlines
}

func (w *progressWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if n > 0 {
		w.d.progress()
	}
	return n, err
}

func (w *progressWriter) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
	w.d.progress()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
