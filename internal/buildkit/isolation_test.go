package buildkit

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// cacheIDs are the ids of every cache mount in st's LLB.
func cacheIDs(t *testing.T, st llb.State) []string {
	t.Helper()
	var ids []string
	for _, e := range execs(t, st) {
		for _, m := range e.mounts {
			if m.MountType == pb.MountType_CACHE && !slices.Contains(ids, m.CacheOpt.ID) {
				ids = append(ids, m.CacheOpt.ID)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// A tenant's cache mounts have ids of their own; local builds keep theirs.
func TestCacheMountIDs(t *testing.T) {
	p := testPlan(t)
	for _, tc := range []struct {
		ns   string
		want []string
	}{
		{"", []string{"pei/var/cache/apt", "pei/var/lib/apt/lists"}},
		{"team-a", []string{"pei/ns/team-a/var/cache/apt", "pei/ns/team-a/var/lib/apt/lists"}},
		{"team-b", []string{"pei/ns/team-b/var/cache/apt", "pei/ns/team-b/var/lib/apt/lists"}},
	} {
		st, _ := StageLLB(p.Stages[0], llb.Image("debian:bookworm"), ocispecs.Image{}, Context("t", nil), llb.Scratch(), nil, nil, tc.ns)
		if got := cacheIDs(t, st); !slices.Equal(got, tc.want) {
			t.Errorf("namespace %q: cache ids %q, want %q", tc.ns, got, tc.want)
		}
		// BuildKit keys a step without its cache ids: the host name keeps
		// tenants' step results apart (and local builds' keys as before).
		want := ""
		if tc.ns != "" {
			want = "pei-" + tc.ns
		}
		for _, e := range execs(t, st) {
			if e.hostname != want {
				t.Errorf("namespace %q: step %q has host name %q, want %q", tc.ns, strings.Join(e.args, " "), e.hostname, want)
			}
		}
	}
	if h := TenantHostname(strings.Repeat("n", 80)); len(h) > 63 || h == TenantHostname(strings.Repeat("n", 81)) {
		t.Errorf("a long namespace's host name %q", h)
	}
}

// No tenant's cache id is another's or a local build's, whatever the
// names: a Dockerfile's ids go under CacheNamespace too.
func TestCacheIDsDisjoint(t *testing.T) {
	targets := []string{"/var/cache/apt", "/var/lib/apt/lists"}
	namespaces := []string{"", "team-a", "team-b", "ns", "var", "pei"}
	owner := map[string]string{}
	for _, ns := range namespaces {
		for _, target := range targets {
			id := CacheID(ns, target)
			if o, ok := owner[id]; ok && o != ns {
				t.Errorf("cache id %q is both %q's and %q's", id, o, ns)
			}
			owner[id] = ns
		}
		if ns == "" {
			continue
		}
		// What a Dockerfile of ns can name (the frontend joins with "/").
		for _, dockerfileID := range []string{"var/cache/apt", "/var/cache/apt", "../team-a/var/cache/apt", CacheID("team-a", "/var/cache/apt")} {
			id := CacheNamespace(ns) + "/" + dockerfileID
			if o, ok := owner[id]; ok && o != ns {
				t.Errorf("namespace %q's Dockerfile id %q reaches %q's cache %q", ns, dockerfileID, o, id)
			}
			if !strings.HasPrefix(id, CacheNamespace(ns)+"/") {
				t.Errorf("id %q is outside %s", id, CacheNamespace(ns))
			}
		}
	}
}

// A plan that needs the host's network (a proxy at host.docker.internal)
// is refused, before anything is built, where the host's network is not
// to be had; locally it is built on the host's network as before.
func TestNoHostNetwork(t *testing.T) {
	proxied := planOf(t, `
stage_1:
  image: {base: 'oci-layout://base:bookworm'}
  proxy: {port: 3128, enable_globally: true}
stage_2: {}
`)
	plain := planOf(t, "stage_1:\n  image: {base: 'oci-layout://base:bookworm'}\nstage_2: {}\n")
	for _, tc := range []struct {
		name    string
		p       bool // the proxied plan
		noHost  bool
		refused bool
	}{
		{"proxy, serve", true, true, true},
		{"proxy, local", true, false, false},
		{"no proxy, serve", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plain
			if tc.p {
				p = proxied
			}
			if got := p.Stages[0].Build.HostNetwork; got != tc.p {
				t.Fatalf("stage-1 HostNetwork = %v", got)
			}
			// A build that passes the check fails later, at its base image,
			// an OCI layout the (empty) project lacks.
			_, err := Build(t.Context(), nil, Options{ProjectDir: t.TempDir(), Plan: p, Stages: []int{1}, NoHostNetwork: tc.noHost, SourceDateEpoch: -1})
			if refused := errors.Is(err, ErrHostNetwork); refused != tc.refused {
				t.Fatalf("refused = %v, want %v: %v", refused, tc.refused, err)
			}
			if tc.refused && !strings.Contains(err.Error(), "stage-1") || tc.refused && !strings.Contains(err.Error(), "host.docker.internal") {
				t.Errorf("the refusal does not name the stage and the proxy: %v", err)
			}
			if err == nil {
				t.Fatal("a build without base or daemon succeeded")
			}
		})
	}
	// Locally the proxied steps run on the host's network, as before.
	st, _ := StageLLB(proxied.Stages[0], llb.Image("debian:bookworm"), ocispecs.Image{}, Context("t", nil), llb.Scratch(), nil, nil, "")
	def, err := st.Marshal(t.Context(), llb.LinuxAmd64)
	if err != nil {
		t.Fatal(err)
	}
	host := 0
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		if e := op.GetExec(); e != nil && e.Network == pb.NetMode_HOST {
			host++
		}
	}
	if host == 0 {
		t.Error("no step of the proxied stage runs on the host's network")
	}
}

func TestExplainEntitlement(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want error
	}{
		{"failed to solve: process \"/bin/sh -c curl x\" did not complete: entitlement network.host is not allowed", ErrHostNetwork},
		{"granting entitlement security.insecure is not allowed by build daemon configuration", ErrInsecure},
		{"failed to solve: exit code: 1", nil},
	} {
		err := explainEntitlement(fmt.Errorf("solve: %s", tc.msg))
		if tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && (errors.Is(err, ErrHostNetwork) || errors.Is(err, ErrInsecure)) {
			t.Errorf("%q: %v", tc.msg, err)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("the explanation drops BuildKit's message: %v", err)
		}
	}
}
