package service

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/api"
)

// allActions is every action a registry token can be asked for.
var allActions = []string{"pull", "push", "build", "delete", "*"}

// grantedActions asks /token for actions (default: all) on repo with a pei
// secret (a token or a build's credentials; "" is anonymous) and returns
// what the signed token grants, sorted.
func (h *harness) grantedActions(secret, repo string, want ...string) []string {
	h.t.Helper()
	if len(want) == 0 {
		want = allActions
	}
	q := url.Values{"service": {"pei"}, "scope": {"repository:" + repo + ":" + strings.Join(want, ",")}}
	resp := h.req("GET", "/token?"+q.Encode(), secret, nil)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("token for %s: status %d", repo, resp.StatusCode)
	}
	raw, _ := decode[map[string]any](h.t, resp)["token"].(string)
	c, err := h.srv.signer.verify(raw)
	if err != nil {
		h.t.Fatalf("the token /token signed does not verify: %v", err)
	}
	var got []string
	for _, a := range c.Access {
		if a.Type == "repository" && a.Name == repo {
			got = append(got, a.Actions...)
		}
	}
	slices.Sort(got)
	return got
}

func actions(s ...string) []string {
	slices.Sort(s)
	return s
}

// TestScopeActions is the full matrix of what each token scope, anonymous
// callers and a build's own credentials get on a repository of their
// namespace, of another namespace, and of an anonymous-pull namespace.
func TestScopeActions(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AnonymousPull = []string{"public"} })
	own, other, public := "team-a/app", "team-b/app", "public/base"
	everything := actions(allActions...)
	for _, tc := range []struct {
		name, scope string
		namespaces  []string
		own, other  []string
		public      []string
	}{
		{"pull", api.ScopePull, []string{"team-a"}, actions("pull"), nil, actions("pull")},
		{"push", api.ScopePush, []string{"team-a"}, actions("pull", "push"), nil, actions("pull")},
		{"build", api.ScopeBuild, []string{"team-a"}, actions("pull", "build"), nil, actions("pull")},
		{"admin of team-a", api.ScopeAdmin, []string{"team-a"}, everything, nil, actions("pull")},
		{"admin of every namespace", api.ScopeAdmin, []string{"*"}, everything, everything, everything},
		// Workers pull and push with each build's credentials, not their own.
		{"worker", api.ScopeWorker, []string{"team-a"}, nil, nil, actions("pull")},
		{"anonymous", "", nil, nil, nil, actions("pull")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := ""
			if tc.scope != "" {
				secret = h.token(tc.name, tc.namespaces, tc.scope)
			}
			for _, r := range []struct {
				repo string
				want []string
			}{{own, tc.own}, {other, tc.other}, {public, tc.public}} {
				if got := h.grantedActions(secret, r.repo); !slices.Equal(got, r.want) {
					t.Errorf("%s scope on %s: granted %v, want %v", tc.name, r.repo, got, r.want)
				}
			}
		})
	}

	t.Run("only what is asked for", func(t *testing.T) {
		admin := h.token("admin asking little", []string{"*"}, api.ScopeAdmin)
		pusher := h.token("pusher asking little", []string{"team-a"}, api.ScopePush)
		for _, tc := range []struct {
			secret    string
			ask, want []string
		}{
			{admin, []string{"pull"}, actions("pull")},
			{admin, []string{"push"}, actions("push")},
			{admin, []string{"build", "pull"}, actions("build", "pull")},
			{pusher, []string{"pull"}, actions("pull")},
			{pusher, []string{"push"}, actions("push")},
			{pusher, []string{"build", "delete"}, nil},
		} {
			if got := h.grantedActions(tc.secret, own, tc.ask...); !slices.Equal(got, tc.want) {
				t.Errorf("asked for %v: granted %v, want %v", tc.ask, got, tc.want)
			}
		}
	})

	t.Run("a build's credentials", func(t *testing.T) {
		alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)
		wsec := h.token("w", nil, api.ScopeWorker)
		good := tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "hi\n"})
		resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile&platform=linux/amd64", alice, bytes.NewReader(good))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("submit: %d %s", resp.StatusCode, errorCode(t, resp))
		}
		resp.Body.Close()
		l := fakeWorker{h, wsec, "w"}.lease("linux/amd64")
		if l == nil || l.Password == "" {
			t.Fatalf("lease: %+v", l)
		}
		for _, r := range []struct {
			repo string
			want []string
		}{
			{"team-a/app", actions("pull", "push")},
			{api.CacheRepo("team-a/app"), actions("pull", "push")},
			{"team-a/other", actions("pull")},
			{"team-a/app-2", actions("pull")}, // a name that starts like the build's
			{other, nil},
			{public, actions("pull")},
		} {
			if got := h.grantedActions(l.Password, r.repo); !slices.Equal(got, r.want) {
				t.Errorf("build credentials on %s: granted %v, want %v", r.repo, got, r.want)
			}
		}
	})
}

// TestWorkerScope: only worker and admin tokens lease builds.
func TestWorkerScope(t *testing.T) {
	h := newHarness(t, nil)
	body, _ := json.Marshal(api.LeaseRequest{Name: "w", Platforms: []string{"linux/amd64"}})
	for _, tc := range []struct {
		scope  string
		status int
	}{
		{api.ScopePull, http.StatusForbidden},
		{api.ScopePush, http.StatusForbidden},
		{api.ScopeBuild, http.StatusForbidden},
		{api.ScopeWorker, http.StatusNoContent}, // allowed; nothing is queued
		{api.ScopeAdmin, http.StatusNoContent},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			secret := h.token(tc.scope, []string{"team-a"}, tc.scope)
			resp := h.req("POST", "/v2/_pei/workers/lease", secret, bytes.NewReader(body))
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("lease with a %s token: %d, want %d", tc.scope, resp.StatusCode, tc.status)
			}
		})
	}
}
