package service

import "testing"

// pushesImages is the second check behind the registry's own token check
// (which already refuses a repository the token names no push for): build
// credentials push only where their access claim says, and a registry
// token's push claim counts only while its API token's scopes still give
// push there.
func TestPushesImages(t *testing.T) {
	s := &Server{}
	push := func(repo string) []access {
		return []access{{Type: "repository", Name: repo, Actions: []string{"pull", "push"}}}
	}
	for _, tc := range []struct {
		name string
		c    *claims
		repo string
		want bool
	}{
		{"anonymous", nil, "team-a/app", false},
		{"build credentials, their repository", &claims{Access: push("team-a/app"), Build: "b-1.1"}, "team-a/app", true},
		{"build credentials, another repository", &claims{Access: push("team-a/app"), Build: "b-1.1"}, "team-a/other", false},
		{"a push token in its namespace", &claims{Access: push("team-a/app"), Namespaces: []string{"team-a"}, Scopes: []string{"push"}}, "team-a/app", true},
		{"a push claim from a token that may only pull", &claims{Access: push("team-a/app"), Namespaces: []string{"team-a"}, Scopes: []string{"pull"}}, "team-a/app", false},
		{"a push claim outside the token's namespaces", &claims{Access: push("team-b/app"), Namespaces: []string{"team-a"}, Scopes: []string{"push"}}, "team-b/app", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.pushesImages(tc.c, tc.repo); got != tc.want {
				t.Errorf("pushesImages = %v, want %v", got, tc.want)
			}
		})
	}
}
