package service

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// TestJobCredentialsForged: a build's registry password is an HMAC under
// the server's key of the build id and attempt. The real one gets push
// access to the build's repository; the same shape with a wrong MAC, or
// the MAC of one build presented for another, gets nothing.
func TestJobCredentialsForged(t *testing.T) {
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
	wsec := h.token("w", nil, api.ScopeWorker)
	good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
	var leases []*api.Lease
	for _, repo := range []string{"team-a/app", "team-a/other"} {
		resp := h.req("POST", "/v2/"+repo+"/_pei/builds?kind=dockerfile&platform=linux/amd64", alice, bytes.NewReader(good))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit to %s: %d %s", repo, resp.StatusCode, errorCode(t, resp))
		}
		resp.Body.Close()
		l := fakeWorker{h, wsec, "w"}.lease("linux/amd64")
		if l == nil || !strings.HasPrefix(l.Password, "job.") {
			t.Fatalf("lease for %s: %+v", repo, l)
		}
		leases = append(leases, l)
	}
	app, other := leases[0], leases[1]
	parts := strings.Split(app.Password, ".")
	mac := parts[3]
	flipped := mac[:len(mac)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", mac[len(mac)-1])+1)%16])
	otherParts := strings.Split(other.Password, ".")
	for _, tc := range []struct {
		name, secret string
		want         string // actions granted on team-a/app
	}{
		{"the build's own password", app.Password, "pull,push"},
		{"one hex digit of the MAC changed", strings.Join([]string{"job", parts[1], parts[2], flipped}, "."), ""},
		{"a MAC of zeros", strings.Join([]string{"job", parts[1], parts[2], strings.Repeat("0", len(mac))}, "."), ""},
		{"another build's MAC on this build's id", strings.Join([]string{"job", parts[1], parts[2], otherParts[3]}, "."), ""},
		{"this build's MAC for a later attempt", strings.Join([]string{"job", parts[1], "2", mac}, "."), ""},
		// Malformed: refused, not a crash.
		{"job. alone", "job.", ""},
		{"two parts", "job." + parts[1], ""},
		{"three parts", strings.Join([]string{"job", parts[1], parts[2]}, "."), ""},
		{"five parts", app.Password + ".x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.req("GET", "/token?service=pei&scope=repository:team-a/app:pull,push", tc.secret, nil)
			if tc.want == "" {
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("forged build credentials: status %d, want 401", resp.StatusCode)
				}
				resp.Body.Close()
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, errorCode(t, resp))
			}
			raw, _ := decode[map[string]any](t, resp)["token"].(string)
			c, err := h.srv.signer.verify(raw)
			if err != nil || len(c.Access) != 1 || strings.Join(c.Access[0].Actions, ",") != tc.want {
				t.Fatalf("granted %+v, %v; want %s", c, err, tc.want)
			}
		})
	}
}
