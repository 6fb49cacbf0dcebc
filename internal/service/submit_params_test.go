package service

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
)

// TestSubmitParameters: what a submission may ask for. The timeout is a
// positive duration up to the server's limit (0 would mean none at all);
// a webhook is an http or https URL with a host; dockerfile= names the
// Dockerfile's path in the context, which must be there.
func TestSubmitParameters(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Limits.BuildTimeout = time.Hour
		c.Limits.MaxActive = 100
	})
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	recipe := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n", "sub/Containerfile": dockerfile})
	for _, tc := range []struct {
		name   string
		query  url.Values
		status int
		check  func(t *testing.T, v api.BuildView) // on success
		msg    string                              // in the error otherwise
	}{
		{"timeout at the limit", url.Values{"timeout": {"1h"}}, http.StatusAccepted, func(t *testing.T, v api.BuildView) {
			if v.Timeout != "1h0m0s" {
				t.Errorf("timeout %s", v.Timeout)
			}
		}, ""},
		{"no timeout: the server's", url.Values{}, http.StatusAccepted, func(t *testing.T, v api.BuildView) {
			if v.Timeout != "1h0m0s" {
				t.Errorf("timeout %s", v.Timeout)
			}
		}, ""},
		{"timeout of 0", url.Values{"timeout": {"0s"}}, http.StatusBadRequest, nil, `timeout "0s": give a duration`},
		{"negative timeout", url.Values{"timeout": {"-5m"}}, http.StatusBadRequest, nil, `timeout "-5m": give a duration`},
		{"timeout just over the limit", url.Values{"timeout": {"1h0m1s"}}, http.StatusBadRequest, nil, "over this server's limit of 1h0m0s"},
		{"https webhook", url.Values{"webhook": {"https://hooks.example/pei"}}, http.StatusAccepted, func(t *testing.T, v api.BuildView) {
			if !v.Webhook {
				t.Error("the build does not show its webhook")
			}
		}, ""},
		{"no webhook", url.Values{}, http.StatusAccepted, func(t *testing.T, v api.BuildView) {
			if v.Webhook {
				t.Error("a build without a webhook shows one")
			}
			if v.State != "queued" || v.Cancel {
				t.Errorf("a new build is %s, cancel requested %v", v.State, v.Cancel)
			}
		}, ""},
		{"ftp webhook", url.Values{"webhook": {"ftp://hooks.example/pei"}}, http.StatusBadRequest, nil, "give an http or https URL"},
		{"file webhook", url.Values{"webhook": {"file:///etc/passwd"}}, http.StatusBadRequest, nil, "give an http or https URL"},
		{"webhook without a host", url.Values{"webhook": {"http:///pei"}}, http.StatusBadRequest, nil, "give an http or https URL"},
		{"dockerfile elsewhere in the context", url.Values{"dockerfile": {"sub/Containerfile"}}, http.StatusAccepted, func(t *testing.T, v api.BuildView) {
			if v.Stage != "sub/Containerfile" {
				t.Errorf("dockerfile %q, want sub/Containerfile", v.Stage)
			}
		}, ""},
		{"default dockerfile", url.Values{}, http.StatusAccepted, func(t *testing.T, v api.BuildView) {
			if v.Stage != "Dockerfile" {
				t.Errorf("dockerfile %q, want Dockerfile", v.Stage)
			}
		}, ""},
		{"dockerfile not in the recipe", url.Values{"dockerfile": {"sub/Missing"}}, http.StatusBadRequest, nil, "recipe has no file sub/Missing"},
		{"dockerfile outside the context", url.Values{"dockerfile": {"../Dockerfile"}}, http.StatusBadRequest, nil, "leaves the project directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.query.Set("kind", "dockerfile")
			resp := h.req("POST", "/v2/team-a/app/_pei/builds?"+tc.query.Encode(), alice, bytes.NewReader(recipe))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, errorCode(t, resp))
			}
			if tc.check == nil {
				if msg := errorCode(t, resp); !strings.Contains(msg, tc.msg) {
					t.Fatalf("error %q does not say %q", msg, tc.msg)
				}
				return
			}
			tc.check(t, decode[api.BuildView](t, resp))
		})
	}
}
