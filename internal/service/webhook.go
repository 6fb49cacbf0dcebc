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
	"net/http"
	"sync"
	"time"
)

// webhooks delivers build-ended events: a JSON POST signed with
// HMAC-SHA256 of the body under the build's webhook secret (header
// Pei-Signature: sha256=<hex>), retried with exponential backoff until a
// 2xx answer or the attempts run out.
type webhooks struct {
	client   *http.Client
	log      io.Writer
	attempts int
	backoff  time.Duration
	wg       sync.WaitGroup
	ctx      context.Context
	stop     context.CancelFunc
}

func newWebhooks(log io.Writer) *webhooks {
	ctx, stop := context.WithCancel(context.Background())
	return &webhooks{client: &http.Client{Timeout: 10 * time.Second}, log: log, attempts: 6, backoff: time.Second, ctx: ctx, stop: stop}
}

// Sign returns the Pei-Signature header value for a webhook body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (h *webhooks) send(url, secret string, v BuildView) {
	body, err := json.Marshal(map[string]any{"event": "build." + v.State, "build": v})
	if err != nil {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		wait := h.backoff
		for i := 1; i <= h.attempts; i++ {
			req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "pei-serve")
			req.Header.Set("Pei-Event", "build."+v.State)
			req.Header.Set("Pei-Delivery", fmt.Sprintf("%s.%d", v.ID, i))
			if secret != "" {
				req.Header.Set("Pei-Signature", Sign(secret, body))
			}
			resp, err := h.client.Do(req)
			if err == nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					return
				}
				err = fmt.Errorf("answered %s", resp.Status)
			}
			fmt.Fprintf(h.log, "pei serve: webhook for build %s, attempt %d of %d: %v\n", v.ID, i, h.attempts, err)
			select {
			case <-h.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
		}
	}()
}

func (h *webhooks) wait() {
	h.stop()
	h.wg.Wait()
}

func jsonCompact(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
