package service

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPIListsEveryEndpoint keeps docs/openapi.yaml in step with the
// server: every endpoint pei adds is described, and nothing else.
func TestOpenAPIListsEveryEndpoint(t *testing.T) {
	data, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	var got []string
	for path, ops := range doc.Paths {
		for method := range ops {
			got = append(got, strings.ToUpper(method)+" "+path)
		}
	}
	want := []string{
		"GET /healthz", "GET /token", "POST /token", "GET /v2/_catalog", "GET /v2/{name}/referrers/{digest}",
		"POST /v2/{name}/_pei/builds", "GET /v2/{name}/_pei/builds", "GET /v2/{name}/_pei/builds/{id}",
		"DELETE /v2/{name}/_pei/builds/{id}", "GET /v2/{name}/_pei/builds/{id}/logs",
		"GET /v2/_pei/builds", "GET /v2/_pei/repositories", "POST /v2/_pei/workers/lease",
		"POST /v2/_pei/workers/builds/{id}/heartbeat", "POST /v2/_pei/workers/builds/{id}/logs",
		"POST /v2/_pei/workers/builds/{id}/finish", "GET /v2/_pei/workers/builds/{id}/recipe",
		"GET /v2/_pei/catalogs/{ns}", "GET /v2/_pei/catalogs/{ns}/{name}", "PUT /v2/_pei/catalogs/{ns}/{name}",
		"DELETE /v2/_pei/catalogs/{ns}/{name}",
	}
	if strings.Join(sorted(got), "\n") != strings.Join(sorted(want), "\n") {
		t.Errorf("openapi.yaml operations:\n%s\nwant:\n%s", strings.Join(sorted(got), "\n"), strings.Join(sorted(want), "\n"))
	}
	// Each is answered by the server (not the registry's 404; a missing
	// build or catalog item is pei's own 404).
	h := newHarness(t, nil)
	for _, op := range want {
		method, path, _ := strings.Cut(op, " ")
		repl := strings.NewReplacer("{name}", "team-a/app", "{id}", "b-x", "{digest}", "sha256:"+strings.Repeat("a", 64))
		if strings.HasPrefix(path, "/v2/_pei/catalogs/") {
			repl = strings.NewReplacer("{ns}", "team-a", "{name}", "python")
		}
		path = repl.Replace(path)
		resp := h.req(method, path, "", nil)
		resp.Body.Close()
		if resp.StatusCode == 404 && !strings.Contains(path, "b-x") && !strings.HasSuffix(path, "/catalogs/team-a/python") {
			t.Errorf("%s %s: 404", method, path)
		}
		if resp.StatusCode >= 500 {
			t.Errorf("%s %s: %d", method, path, resp.StatusCode)
		}
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
