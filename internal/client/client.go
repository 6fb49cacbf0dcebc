package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// Client is a pei serve API client authenticated with a pei token.
type Client struct {
	Server string // e.g. http://127.0.0.1:5000
	Token  string
	HTTP   *http.Client
}

// New returns a client for server with token.
func New(server, token string) *Client {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &Client{Server: strings.TrimSuffix(server, "/"), Token: token, HTTP: &http.Client{}}
}

// Error is an error answer from the server.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("server answered %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.SetBasicAuth("pei", c.Token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

func readError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body api.Errors
	e := &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	if json.Unmarshal(data, &body) == nil && len(body.Errors) > 0 {
		e.Code, e.Message = body.Errors[0].Code, body.Errors[0].Message
	}
	return e
}

func (c *Client) json(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	hdr := map[string]string{}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = strings.NewReader(string(b))
		hdr["Content-Type"] = "application/json"
	}
	resp, err := c.do(ctx, method, path, body, hdr)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// SubmitOptions say what to build from an uploaded recipe.
type SubmitOptions struct {
	Repo, Tag, Platform, Kind, Stage, Dockerfile string
	Secrets                                      []string
	Webhook, WebhookSecret                       string
	Timeout                                      time.Duration
}

// Submit uploads a packed recipe and returns the queued build.
func (c *Client) Submit(ctx context.Context, o SubmitOptions, recipe io.Reader, size int64) (api.BuildView, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("tag", o.Tag)
	set("platform", o.Platform)
	set("kind", o.Kind)
	set("stage", o.Stage)
	set("dockerfile", o.Dockerfile)
	set("webhook", o.Webhook)
	set("webhook_secret", o.WebhookSecret)
	if o.Timeout > 0 {
		q.Set("timeout", o.Timeout.String())
	}
	for _, s := range o.Secrets {
		q.Add("secret", s)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Server+api.BuildsPath(o.Repo)+"?"+q.Encode(), recipe)
	if err != nil {
		return api.BuildView{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", api.RecipeMediaType)
	if c.Token != "" {
		req.SetBasicAuth("pei", c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return api.BuildView{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return api.BuildView{}, readError(resp)
	}
	var b api.BuildView
	return b, json.NewDecoder(resp.Body).Decode(&b)
}

// Build returns a build's status.
func (c *Client) Build(ctx context.Context, repo, id string) (api.BuildView, error) {
	var b api.BuildView
	_, err := c.json(ctx, http.MethodGet, api.BuildPath(repo, id), nil, &b)
	return b, err
}

// Builds lists a repository's builds, newest first.
func (c *Client) Builds(ctx context.Context, repo string) ([]api.BuildView, error) {
	var out api.BuildList
	_, err := c.json(ctx, http.MethodGet, api.BuildsPath(repo), nil, &out)
	return out.Builds, err
}

// Cancel cancels a build.
func (c *Client) Cancel(ctx context.Context, repo, id string) (api.BuildView, error) {
	var b api.BuildView
	_, err := c.json(ctx, http.MethodDelete, api.BuildPath(repo, id), nil, &b)
	return b, err
}

// Catalog returns namespace ns's catalog: its own items and the shared
// catalog's items its builds may take.
func (c *Client) Catalog(ctx context.Context, ns string) (api.Catalog, error) {
	var cat api.Catalog
	_, err := c.json(ctx, http.MethodGet, api.CatalogPath(url.PathEscape(ns)), nil, &cat)
	return cat, err
}

// CatalogItem returns an item of namespace ns's catalog.
func (c *Client) CatalogItem(ctx context.Context, ns, name string) (api.CatalogItem, error) {
	var it api.CatalogItem
	_, err := c.json(ctx, http.MethodGet, api.CatalogItemPath(url.PathEscape(ns), url.PathEscape(name)), nil, &it)
	return it, err
}

// PutCatalogItem creates or replaces item it.Name of namespace ns's
// catalog and returns it as stored. The fields the server sets
// (namespace, updated, updated_by) are not sent.
func (c *Client) PutCatalogItem(ctx context.Context, ns string, it api.CatalogItem) (api.CatalogItem, error) {
	in := api.CatalogItem{Name: it.Name, Lower: it.Lower, Upper: it.Upper, Exclude: it.Exclude}
	var out api.CatalogItem
	_, err := c.json(ctx, http.MethodPut, api.CatalogItemPath(url.PathEscape(ns), url.PathEscape(it.Name)), in, &out)
	return out, err
}

// DeleteCatalogItem removes an item of namespace ns's catalog.
func (c *Client) DeleteCatalogItem(ctx context.Context, ns, name string) error {
	_, err := c.json(ctx, http.MethodDelete, api.CatalogItemPath(url.PathEscape(ns), url.PathEscape(name)), nil, nil)
	return err
}

// Event is one Server-Sent Event of a build log.
type Event struct {
	ID    string
	Event string // "log" or "end"
	Data  string
}

// Follow streams a build's log events to fn until the build ends,
// reconnecting with Last-Event-ID when the connection drops. It returns
// the build as it ended.
func (c *Client) Follow(ctx context.Context, repo, id string, fn func(Event)) (api.BuildView, error) {
	last := ""
	var lastErr error
	for attempt := 0; attempt < 30; attempt++ {
		hdr := map[string]string{"Accept": "text/event-stream"}
		if last != "" {
			hdr["Last-Event-ID"] = last
		}
		resp, err := c.do(ctx, http.MethodGet, api.LogsPath(repo, id), nil, hdr)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Status < 500 {
				return api.BuildView{}, err
			}
			lastErr = err
		} else {
			end, err := readEvents(resp.Body, func(ev Event) {
				if ev.ID != "" {
					last = ev.ID
				}
				if ev.Event == "log" {
					fn(ev)
				}
			})
			resp.Body.Close()
			if end != nil {
				return *end, nil
			}
			lastErr = err
		}
		if ctx.Err() != nil {
			return api.BuildView{}, ctx.Err()
		}
		select {
		case <-ctx.Done():
			return api.BuildView{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return api.BuildView{}, fmt.Errorf("follow build %s: %v", id, lastErr)
}

// readEvents parses an event stream as the HTML standard says (lines end
// with \r\n, \n or a lone \r); it returns the build from the "end" event,
// or nil when the stream stopped before it. The server never sends a lone
// \r, but a client that split on \n alone would take one inside a data
// line for part of it, and one that follows the standard would not: both
// must see the same events.
func readEvents(r io.Reader, fn func(Event)) (*api.BuildView, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	sc.Split(scanSSELines)
	var ev Event
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(data) > 0 || ev.Event != "" {
				ev.Data = strings.Join(data, "\n")
				if ev.Event == "end" {
					var b api.BuildView
					if err := json.Unmarshal([]byte(ev.Data), &b); err != nil {
						return nil, err
					}
					return &b, nil
				}
				fn(ev)
			}
			ev, data = Event{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		}
	}
	return nil, sc.Err()
}

// scanSSELines is a bufio.SplitFunc for event stream lines: each ends with
// \r\n, \n or \r. A \r at the end of the data read so far waits for the
// next byte (it may be the first half of \r\n) unless the stream ended.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		return 0, nil, nil // \r last: maybe \r\n
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Log returns a build's log as plain text.
func (c *Client) Log(ctx context.Context, repo, id string) (string, error) {
	resp, err := c.do(ctx, http.MethodGet, api.LogsPath(repo, id), nil, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Lease asks for a build to run, waiting up to wait; nil means none came.
func (c *Client) Lease(ctx context.Context, req api.LeaseRequest) (*api.Lease, error) {
	var l api.Lease
	code, err := c.json(ctx, http.MethodPost, "/v2/_pei/workers/lease", req, &l)
	if err != nil || code == http.StatusNoContent {
		return nil, err
	}
	return &l, nil
}

func workerPath(id, what, worker string) string {
	return "/v2/_pei/workers/builds/" + id + "/" + what + "?worker=" + url.QueryEscape(worker)
}

// Heartbeat extends a lease.
func (c *Client) Heartbeat(ctx context.Context, id, worker string) (api.Heartbeat, error) {
	var h api.Heartbeat
	_, err := c.json(ctx, http.MethodPost, workerPath(id, "heartbeat", worker), struct{}{}, &h)
	return h, err
}

// AppendLog sends a piece of a build's log.
func (c *Client) AppendLog(ctx context.Context, id, worker string, data []byte) error {
	resp, err := c.do(ctx, http.MethodPost, workerPath(id, "logs", worker), strings.NewReader(string(data)), map[string]string{"Content-Type": "text/plain"})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Finish reports a build's end.
func (c *Client) Finish(ctx context.Context, id, worker string, f api.Finish) error {
	_, err := c.json(ctx, http.MethodPost, workerPath(id, "finish", worker), f, nil)
	return err
}

// Recipe downloads a leased build's recipe.
func (c *Client) Recipe(ctx context.Context, id, worker string) (io.ReadCloser, int64, error) {
	resp, err := c.do(ctx, http.MethodGet, workerPath(id, "recipe", worker), nil, nil)
	if err != nil {
		return nil, 0, err
	}
	n, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	return resp.Body, n, nil
}
