package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckNamespace(t *testing.T) {
	for _, tc := range []struct {
		ns string
		ok bool
	}{
		{"team-a", true},
		{"a", true},
		{"team.a", true},
		{"team_a", true},
		{"team__a", true},
		{"team--a", true},
		{"*", true},
		{"Team-A", false},
		{"", false},
		{"-team", false},
		{"team-", false},
		{"team/a", false},
		{"team a", false},
		{"team___a", false},
		{"**", false},
	} {
		err := CheckNamespace(tc.ns)
		if (err == nil) != tc.ok {
			t.Errorf("CheckNamespace(%q) = %v, want ok %v", tc.ns, err, tc.ok)
		}
	}
}

func TestCheckGrant(t *testing.T) {
	var scopeErr *ScopeError
	var nsErr *NamespaceError
	for _, tc := range []struct {
		name       string
		namespaces []string
		scopes     []string
		want       string // in the error; "" is valid
	}{
		{"push and build", []string{"team-a"}, []string{ScopePush, ScopeBuild}, ""},
		{"admin of all", []string{"*"}, []string{ScopeAdmin}, ""},
		{"worker alone needs no namespace", nil, []string{ScopeWorker}, ""},
		{"worker in a namespace", []string{"team-a"}, []string{ScopeWorker}, ""},
		{"unknown scope", []string{"team-a"}, []string{"delete"}, `scope "delete": use pull, push, build, admin, worker`},
		{"bad namespace", []string{"Team"}, []string{ScopePull}, `namespace "Team": use lower-case`},
		{"no namespace", nil, []string{ScopePull}, "name the namespaces the token may use (or * for all)"},
		{"worker and more need a namespace", nil, []string{ScopeWorker, ScopePull}, "name the namespaces"},
		{"no scope at all", nil, nil, "name the namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckGrant(tc.namespaces, tc.scopes)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.want == "":
				return
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if errors.As(err, &scopeErr) != strings.HasPrefix(tc.want, "scope ") {
				t.Errorf("error %v: a *ScopeError = %v", err, errors.As(err, &scopeErr))
			}
			if errors.As(err, &nsErr) != strings.HasPrefix(tc.want, "namespace ") {
				t.Errorf("error %v: a *NamespaceError = %v", err, errors.As(err, &nsErr))
			}
			if errors.Is(err, ErrNoNamespaces) != strings.HasPrefix(tc.want, "name the") {
				t.Errorf("error %v: ErrNoNamespaces = %v", err, errors.Is(err, ErrNoNamespaces))
			}
		})
	}
}

func TestValidTag(t *testing.T) {
	for _, tc := range []struct {
		tag string
		ok  bool
	}{
		{"latest", true},
		{"v1.0", true},
		{"_x", true},
		{"1-2_3.4", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{".x", false},
		{"-x", false},
		{"a/b", false},
		{"a:b", false},
		{"a\nb", false},
		{"ä", false},
	} {
		if got := ValidTag(tc.tag); got != tc.ok {
			t.Errorf("ValidTag(%q) = %v, want %v", tc.tag, got, tc.ok)
		}
	}
}

func TestNamesAndPaths(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Namespace("team-a/app"), "team-a"},
		{Namespace("team-a/sub/app"), "team-a"},
		{Namespace("app"), "app"},
		{CacheRepo("team-a/app"), "team-a/app/buildcache"},
		{BuildsPath("team-a/app"), "/v2/team-a/app/_pei/builds"},
		{BuildPath("team-a/app", "b-1"), "/v2/team-a/app/_pei/builds/b-1"},
		{LogsPath("team-a/app", "b-1"), "/v2/team-a/app/_pei/builds/b-1/logs"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestStateDone(t *testing.T) {
	for s, done := range map[State]bool{Queued: false, Running: false, Succeeded: true, Failed: true, Canceled: true, Lost: false} {
		if s.Done() != done {
			t.Errorf("%s.Done() = %v, want %v", s, s.Done(), done)
		}
	}
}

// The wire's JSON field names are docs/api.md's: a renamed field would
// break every client built before it.
func TestJSONFieldNames(t *testing.T) {
	v := BuildView{ID: "b-1", State: Succeeded, Created: time.Unix(0, 0).UTC()}
	for _, tc := range []struct {
		v    any
		want string
	}{
		{Finish{State: Failed, Error: "x"}, `{"state":"failed","error":"x"}`},
		{Finish{State: Succeeded, Digest: "sha256:1"}, `{"state":"succeeded","digest":"sha256:1"}`},
		{Heartbeat{Cancel: true, State: Running}, `{"cancel":true,"state":"running"}`},
		{LeaseRequest{Name: "w", Platforms: []string{"linux/amd64"}, Wait: 20}, `{"name":"w","platforms":["linux/amd64"],"secrets":null,"wait_seconds":20}`},
		{Errors{Errors: []Error{{Code: "DENIED", Message: "no"}}}, `{"errors":[{"code":"DENIED","message":"no"}]}`},
		{v, `{"id":"b-1","repository":"","tag":"","platform":"","kind":"","state":"succeeded","created":"1970-01-01T00:00:00Z","attempts":0,"recipe":"","recipe_size":0,"timeout":"","webhook":false,"links":{"self":"","logs":""}}`},
		{WebhookEvent{Build: BuildView{ID: "b-1"}, Event: "build.failed"}, `{"build":{"id":"b-1"`},
		{Lease{RecipeMaxBytes: 5}, `"build":{`},
		{Lease{RecipeMaxBytes: 5}, `"registry":"","username":"","password":"","lease_seconds":0,"recipe_max_bytes":5}`},
		{Lease{Catalog: []CatalogItem{{Name: "python"}}}, `"catalog":[{"name":"python",`},
		{CatalogItem{Name: "python", Lower: "pei/dev:1", Upper: "pei/py:1"}, `{"name":"python","lower":"pei/dev:1","upper":"pei/py:1"}`},
		{CatalogItem{Name: "python", Exclude: []string{"/pei-init"}, Namespace: "pei", Updated: time.Unix(0, 0).UTC(), UpdatedBy: "admin"},
			`"exclude":["/pei-init"],"namespace":"pei","updated":"1970-01-01T00:00:00Z","updated_by":"admin"}`},
		{Catalog{Namespace: "team-a", Items: []CatalogItem{}, SharedNamespace: "pei", Shared: []CatalogItem{{Name: "python"}}},
			`{"namespace":"team-a","items":[],"shared_namespace":"pei","shared":[{"name":"python",`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("%T encodes as %s, want %s", tc.v, b, tc.want)
		}
	}
}
