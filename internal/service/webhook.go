package service

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

// webhooks delivers build-ended events: a JSON POST signed with
// HMAC-SHA256 of the body under the build's webhook secret (header
// Pei-Signature: sha256=<hex>), retried with exponential backoff until a
// 2xx answer or the attempts run out. What is due is kept in the database
// (pending from the moment a build ends), so deliveries survive restarts
// and replicas share them.
type webhooks struct {
	client   *http.Client
	attempts int
	backoff  time.Duration
	wake     chan struct{}
}

func newWebhooks(allow []netip.Prefix) *webhooks {
	// Checked at connect time on the address dialed, after name
	// resolution, so a name that resolves (or re-resolves) to a refused
	// address is caught too.
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: hookDialControl(allow)}
	// No proxy: the address check must see the real destination.
	tr := &http.Transport{Proxy: nil, DialContext: dialer.DialContext, TLSHandshakeTimeout: 10 * time.Second}
	return &webhooks{client: &http.Client{Timeout: 10 * time.Second, Transport: tr,
		// A redirect could lead anywhere; the hook is the URL given.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		attempts: 6, backoff: time.Second, wake: make(chan struct{}, 1)}
}

// Sign returns the Pei-Signature header value for a webhook body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// kick makes the delivery loop look for due calls now.
func (h *webhooks) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// hookLoop sends due webhook calls until ctx ends.
func (s *Server) hookLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		due, err := s.store.DueWebhooks(ctx, 20, 30*time.Second)
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(s.cfg.Log, "pei serve: webhooks: %v\n", err)
		}
		for _, b := range due {
			s.deliver(ctx, b)
		}
		if len(due) == 20 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.hooks.wake:
		}
	}
}

func (s *Server) deliver(ctx context.Context, b store.Build) {
	h := s.hooks
	v := s.view(b)
	event := "build." + string(v.State)
	body, err := json.Marshal(api.WebhookEvent{Build: v, Event: event})
	if err != nil {
		return
	}
	attempt := b.HookAttempts + 1
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.Webhook, bytes.NewReader(body))
	if err != nil {
		s.store.WebhookSent(ctx, b.ID, false, err.Error(), time.Time{})
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pei-serve")
	req.Header.Set("Pei-Event", event)
	req.Header.Set("Pei-Delivery", fmt.Sprintf("%s.%d", v.ID, attempt))
	if b.WebhookSecret != "" {
		req.Header.Set("Pei-Signature", Sign(b.WebhookSecret, body))
	}
	resp, err := h.client.Do(req)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			s.store.WebhookSent(context.WithoutCancel(ctx), b.ID, true, "", time.Time{})
			return
		}
		err = fmt.Errorf("answered %s", resp.Status)
	}
	if ctx.Err() != nil {
		return // shutting down: the claim runs out and the call is retried
	}
	next := time.Time{}
	if attempt < h.attempts {
		next = time.Now().Add(h.backoff << (attempt - 1))
	}
	fmt.Fprintf(s.cfg.Log, "pei serve: webhook for build %s, attempt %d of %d: %v\n", v.ID, attempt, h.attempts, err)
	s.store.WebhookSent(ctx, b.ID, false, err.Error(), next)
}

func jsonCompact(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
