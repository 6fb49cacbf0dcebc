package service

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
)

// catalogHarness is a server whose shared catalog is namespace "pei", with
// the tokens the catalog tests use.
type catalogHarness struct {
	*harness
	alice, bob, reader, admin, teamAdmin, sharedPusher string
}

func newCatalogHarness(t *testing.T, mod func(*Config)) *catalogHarness {
	h := newHarness(t, func(c *Config) {
		c.SharedNamespace = "pei"
		if mod != nil {
			mod(c)
		}
	})
	return &catalogHarness{harness: h,
		alice:     h.token("alice", []string{"team-a"}, api.ScopePush, api.ScopeBuild),
		bob:       h.token("bob", []string{"team-b"}, api.ScopePush, api.ScopeBuild),
		reader:    h.token("reader", []string{"team-a"}, api.ScopePull),
		admin:     h.token("admin", []string{"*"}, api.ScopeAdmin),
		teamAdmin: h.token("team-a admin", []string{"team-a"}, api.ScopeAdmin),
		// Given push and build in the shared namespace, but not admin.
		sharedPusher: h.token("shared pusher", []string{"pei", "team-c"}, api.ScopePush, api.ScopeBuild),
	}
}

// push writes a random image to repo:tag as secret and returns its digest.
func (h *catalogHarness) push(secret, ref string) v1.Hash {
	h.t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := remote.Write(h.ref(ref), img, auth(secret)); err != nil {
		h.t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d
}

// put writes a catalog item and returns the status and the error code
// and message ("" on success).
func (h *catalogHarness) put(secret, ns, name string, body any) (int, string) {
	h.t.Helper()
	data, ok := body.(string)
	if !ok {
		b, _ := json.Marshal(body)
		data = string(b)
	}
	resp := h.req("PUT", api.CatalogItemPath(ns, name), secret, strings.NewReader(data))
	if resp.StatusCode >= 300 {
		return resp.StatusCode, errorCode(h.t, resp)
	}
	resp.Body.Close()
	return resp.StatusCode, ""
}

func (h *catalogHarness) status(method, path, secret string) int {
	h.t.Helper()
	resp := h.req(method, path, secret, nil)
	resp.Body.Close()
	return resp.StatusCode
}

// TestCatalogAccess: a namespace's catalog is written by its pushers and
// admins and read by its readers; the shared catalog, and the images in
// its namespace, are written by its admins alone and read by every
// tenant. Each refusal has its control.
func TestCatalogAccess(t *testing.T) {
	h := newCatalogHarness(t, nil)
	h.push(h.alice, "team-a/dev:1")
	h.push(h.alice, "team-a/py:1")
	h.push(h.admin, "pei/dev:1")
	h.push(h.admin, "pei/py:1")
	own := api.CatalogItem{Lower: "team-a/dev:1", Upper: "team-a/py:1", Exclude: []string{"/pei-init"}}
	shared := api.CatalogItem{Lower: "pei/dev:1", Upper: "pei/py:1"}

	t.Run("a namespace's catalog", func(t *testing.T) {
		for _, tc := range []struct {
			who, secret string
			status      int
		}{
			{"another tenant", h.bob, http.StatusForbidden},
			{"a pull-only token of the namespace", h.reader, http.StatusForbidden},
			{"anonymous", "", http.StatusUnauthorized},
			{"the owner", h.alice, http.StatusCreated},
			{"the owner again", h.alice, http.StatusOK},
			{"the namespace's admin", h.teamAdmin, http.StatusOK},
		} {
			if got, msg := h.put(tc.secret, "team-a", "python", own); got != tc.status {
				t.Errorf("%s writes team-a/python: %d %s, want %d", tc.who, got, msg, tc.status)
			}
		}
		for _, tc := range []struct {
			who, secret string
			status      int
		}{
			{"the owner", h.alice, http.StatusOK},
			{"a pull-only token", h.reader, http.StatusOK},
			{"another tenant", h.bob, http.StatusForbidden},
			{"anonymous", "", http.StatusUnauthorized},
		} {
			if got := h.status("GET", api.CatalogPath("team-a"), tc.secret); got != tc.status {
				t.Errorf("%s reads team-a's catalog: %d, want %d", tc.who, got, tc.status)
			}
			if got := h.status("GET", api.CatalogItemPath("team-a", "python"), tc.secret); got != tc.status {
				t.Errorf("%s reads team-a/python: %d, want %d", tc.who, got, tc.status)
			}
		}
		resp := h.req("GET", api.CatalogItemPath("team-a", "python"), h.reader, nil)
		got := decode[api.CatalogItem](t, resp)
		if got.Lower != own.Lower || got.Upper != own.Upper || !slices.Equal(got.Exclude, own.Exclude) || got.Namespace != "team-a" || got.UpdatedBy != "team-a admin" {
			t.Errorf("stored item %+v, want %+v written last by the namespace's admin", got, own)
		}
	})

	t.Run("the shared catalog", func(t *testing.T) {
		for _, tc := range []struct {
			who, secret string
			status      int
		}{
			{"a tenant", h.alice, http.StatusForbidden},
			{"a token with push and build in the shared namespace", h.sharedPusher, http.StatusForbidden},
			{"another namespace's admin", h.teamAdmin, http.StatusForbidden},
			{"anonymous", "", http.StatusUnauthorized},
			{"an admin of the shared namespace", h.admin, http.StatusCreated},
		} {
			if got, msg := h.put(tc.secret, "pei", "python", shared); got != tc.status {
				t.Errorf("%s writes pei/python: %d %s, want %d", tc.who, got, msg, tc.status)
			}
			if tc.status == http.StatusCreated {
				continue
			}
			if got := h.status("DELETE", api.CatalogItemPath("pei", "python"), tc.secret); got != tc.status {
				t.Errorf("%s deletes pei/python: %d, want %d", tc.who, got, tc.status)
			}
		}
		for _, secret := range []string{h.alice, h.bob, h.reader, h.sharedPusher} {
			if got := h.status("GET", api.CatalogPath("pei"), secret); got != http.StatusOK {
				t.Errorf("a tenant reads the shared catalog: %d, want 200", got)
			}
		}
		if _, msg := h.put(h.alice, "pei", "python", shared); !strings.Contains(msg, "may not write the catalog of pei (the shared catalog: admin tokens only)") {
			t.Errorf("a tenant's refused write says %q", msg)
		}
		if _, msg := h.put(h.bob, "team-a", "python", own); !strings.Contains(msg, "may not write the catalog of team-a") {
			t.Errorf("another tenant's refused write says %q", msg)
		}
		if resp := h.req("GET", api.CatalogPath("team-a"), h.bob, nil); !strings.Contains(errorCode(t, resp), "may not read the catalog of team-a") {
			t.Error("another tenant's refused read does not say what was refused")
		}
		// The shared catalog is listed as itself, with nothing "shared"
		// besides.
		if c := decode[api.Catalog](t, h.req("GET", api.CatalogPath("pei"), h.alice, nil)); c.SharedNamespace != "" || len(c.Shared) != 0 || len(c.Items) != 1 {
			t.Errorf("the shared catalog lists as %+v", c)
		}
		if got := h.status("GET", api.CatalogPath("pei"), ""); got != http.StatusUnauthorized {
			t.Errorf("anonymous reads the shared catalog: %d, want 401", got)
		}
		// The images an item names are as closed as the item: tenants
		// pull them and cannot replace them.
		for _, tc := range []struct {
			who, secret string
			want        []string
		}{
			{"a tenant", h.alice, actions("pull")},
			{"a token with push and build there", h.sharedPusher, actions("pull")},
			{"another namespace's admin", h.teamAdmin, actions("pull")},
			{"its admin", h.admin, actions(allActions...)},
		} {
			if got := h.grantedActions(tc.secret, "pei/py"); !slices.Equal(got, tc.want) {
				t.Errorf("%s on pei/py: granted %v, want %v", tc.who, got, tc.want)
			}
		}
		img, _ := random.Image(256, 1)
		if err := remote.Write(h.ref("pei/py:1"), img, auth(h.sharedPusher)); err == nil {
			t.Error("a non-admin token replaced a shared catalog image")
		}
		if _, err := remote.Image(h.ref("pei/py:1"), auth(h.bob)); err != nil {
			t.Errorf("a tenant cannot pull a shared catalog image: %v", err)
		}
		resp := h.req("POST", "/v2/pei/py/_pei/builds?kind=dockerfile", h.sharedPusher, bytes.NewReader(tarGz(t, map[string]string{"Dockerfile": dockerfile, "hello": "x"})))
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("a non-admin token built into the shared namespace: %d", resp.StatusCode)
		}
	})

	t.Run("a namespace sees the shared items it does not shadow", func(t *testing.T) {
		if got, msg := h.put(h.admin, "pei", "node", api.CatalogItem{Lower: "pei/dev:1", Upper: "pei/py:1"}); got != http.StatusCreated {
			t.Fatalf("admin writes pei/node: %d %s", got, msg)
		}
		c := decode[api.Catalog](t, h.req("GET", api.CatalogPath("team-a"), h.alice, nil))
		var names, sharedNames []string
		for _, it := range c.Items {
			names = append(names, it.Name)
		}
		for _, it := range c.Shared {
			sharedNames = append(sharedNames, it.Name)
		}
		if !slices.Equal(names, []string{"python"}) || !slices.Equal(sharedNames, []string{"node"}) || c.SharedNamespace != "pei" {
			t.Errorf("team-a's catalog: own %v, shared %v from %q; want [python], [node] from pei", names, sharedNames, c.SharedNamespace)
		}
	})

	t.Run("bad items", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body any
			want string
		}{
			{"python", api.CatalogItem{Lower: "pei/dev:1", Upper: "team-a/py:1"}, "not in namespace team-a"},
			{"python", api.CatalogItem{Lower: "team-a/dev:1", Upper: "team-b/py:1"}, "not in namespace team-a"},
			{"python", api.CatalogItem{Lower: "team-a/dev:1", Upper: h.host + "/team-a/py:1"}, "not in namespace team-a"},
			{"python", api.CatalogItem{Lower: "team-a/dev", Upper: "team-a/py:1"}, "give a tag or a digest"},
			{"python", api.CatalogItem{Lower: "team-a/dev:1", Upper: "team-a/py:2"}, "upper: team-a/py:2: not in this registry"},
			{"python", api.CatalogItem{Lower: "team-a/dev@sha256:" + strings.Repeat("0", 64), Upper: "team-a/py:1"}, "not in this registry"},
			{"python", api.CatalogItem{Lower: "team-a/dev:1", Upper: "team-a/py:1", Exclude: []string{"tmp"}}, `exclude[0] "tmp"`},
			{"python", api.CatalogItem{Lower: "team-a/dev:1", Upper: "team-a/py:1", Exclude: []string{"/a/../etc"}}, `exclude[0]`},
			{"python", api.CatalogItem{Name: "ruby", Lower: "team-a/dev:1", Upper: "team-a/py:1"}, `named "ruby" in the body`},
			{"python", api.CatalogItem{Lower: "team-a/dev:1", Upper: "team-a/py:1", Namespace: "team-b"}, "the server's"},
			{"-x", api.CatalogItem{Lower: "team-a/dev:1", Upper: "team-a/py:1"}, `name "-x"`},
			{"python", `{"lower": "team-a/dev:1", "upper": "team-a/py:1", "script": "rm -rf /"}`, "unknown field"},
			{"python", `{"lower": "team-a/dev:1"} {}`, "one JSON object"},
		} {
			got, msg := h.put(h.alice, "team-a", tc.name, tc.body)
			if got != http.StatusBadRequest || !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "CATALOG_INVALID") {
				t.Errorf("PUT %v: %d %q, want 400 CATALOG_INVALID saying %q", tc.body, got, msg, tc.want)
			}
		}
		// Nothing a refused write sent was kept.
		it := decode[api.CatalogItem](t, h.req("GET", api.CatalogItemPath("team-a", "python"), h.alice, nil))
		if it.Lower != "team-a/dev:1" || it.Upper != "team-a/py:1" {
			t.Errorf("after refused writes the item is %+v", it)
		}
	})

	t.Run("methods", func(t *testing.T) {
		for _, m := range []string{"PUT", "DELETE", "POST"} {
			resp := h.req(m, api.CatalogPath("team-a"), h.alice, strings.NewReader("{}"))
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s on a whole catalog: %d, want 405", m, resp.StatusCode)
			}
			resp.Body.Close()
		}
		resp := h.req("POST", api.CatalogItemPath("team-a", "python"), h.alice, strings.NewReader("{}"))
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST on an item: %d, want 405", resp.StatusCode)
		}
		resp.Body.Close()
	})

	t.Run("no namespace", func(t *testing.T) {
		// Not even an admin of every namespace keeps a catalog under a
		// name no repository can start with, or under "*".
		for _, ns := range []string{"*", "Team-A", "team-a..b", "-x"} {
			for _, m := range []string{"GET", "PUT", "DELETE"} {
				path := api.CatalogItemPath(ns, "python")
				if m == "GET" {
					path = api.CatalogPath(ns)
				}
				resp := h.req(m, path, h.admin, strings.NewReader(`{"lower": "team-a/dev:1", "upper": "team-a/py:1"}`))
				if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(errorCode(t, resp), "NAME_INVALID") {
					t.Errorf("%s %s: %d, want 404 NAME_INVALID", m, path, resp.StatusCode)
				}
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		if got := h.status("DELETE", api.CatalogItemPath("team-a", "python"), h.bob); got != http.StatusForbidden {
			t.Errorf("another tenant deletes team-a/python: %d, want 403", got)
		}
		if got := h.status("DELETE", api.CatalogItemPath("team-a", "python"), h.reader); got != http.StatusForbidden {
			t.Errorf("a pull-only token deletes team-a/python: %d, want 403", got)
		}
		if got := h.status("DELETE", api.CatalogItemPath("team-a", "python"), h.alice); got != http.StatusNoContent {
			t.Errorf("the owner deletes team-a/python: %d, want 204", got)
		}
		if got := h.status("GET", api.CatalogItemPath("team-a", "python"), h.alice); got != http.StatusNotFound {
			t.Errorf("a deleted item reads %d, want 404", got)
		}
		if got := h.status("DELETE", api.CatalogItemPath("team-a", "python"), h.alice); got != http.StatusNotFound {
			t.Errorf("deleting it again: %d, want 404", got)
		}
	})
}

// TestCatalogFull: a namespace's catalog holds at most MaxCatalogItems;
// replacing an item still works when it is full.
func TestCatalogFull(t *testing.T) {
	h := newCatalogHarness(t, func(c *Config) { c.Limits.MaxCatalogItems = 2 })
	h.push(h.alice, "team-a/dev:1")
	h.push(h.alice, "team-a/py:1")
	it := api.CatalogItem{Lower: "team-a/dev:1", Upper: "team-a/py:1"}
	for _, tc := range []struct {
		name   string
		status int
	}{{"a", http.StatusCreated}, {"b", http.StatusCreated}, {"c", http.StatusConflict}, {"a", http.StatusOK}} {
		if got, msg := h.put(h.alice, "team-a", tc.name, it); got != tc.status {
			t.Errorf("item %s: %d %s, want %d", tc.name, got, msg, tc.status)
		}
	}
	// Another namespace's catalog is its own.
	h.push(h.bob, "team-b/dev:1")
	h.push(h.bob, "team-b/py:1")
	if got, msg := h.put(h.bob, "team-b", "c", api.CatalogItem{Lower: "team-b/dev:1", Upper: "team-b/py:1"}); got != http.StatusCreated {
		t.Errorf("team-b's first item: %d %s", got, msg)
	}
}

// composeRecipe is a pei project whose composed image takes catalog item
// item (and declares catalog, when given, in the project).
func composeRecipe(t *testing.T, item, catalog string) []byte {
	cfg := "stage_1:\n  image: {base: debian:bookworm, output: x:1}\n" + catalog +
		"compose:\n  rt:\n    output: rt:1\n    layers: [{image: debian:bookworm}, {catalog: " + item + "}]\n"
	return tarGz(t, map[string]string{"user_config.yml": cfg})
}

// TestCatalogBuilds: a build takes the item of its namespace's catalog,
// else the shared one's, pinned by digest when it is queued; another
// tenant's catalog never reaches it; its credentials may pull the shared
// images and no other tenant's.
func TestCatalogBuilds(t *testing.T) {
	h := newCatalogHarness(t, nil)
	wsec := h.token("w", nil, api.ScopeWorker)
	w := fakeWorker{h.harness, wsec, "w"}
	sharedDev := h.push(h.admin, "pei/dev:1")
	sharedPy := h.push(h.admin, "pei/py:1")
	if got, msg := h.put(h.admin, "pei", "python", api.CatalogItem{Lower: "pei/dev:1", Upper: "pei/py:1", Exclude: []string{"/pei-init"}}); got != http.StatusCreated {
		t.Fatalf("admin writes pei/python: %d %s", got, msg)
	}
	// bob's own "python" is bob's alone.
	h.push(h.bob, "team-b/dev:1")
	h.push(h.bob, "team-b/evil:1")
	if got, msg := h.put(h.bob, "team-b", "python", api.CatalogItem{Lower: "team-b/dev:1", Upper: "team-b/evil:1"}); got != http.StatusCreated {
		t.Fatalf("bob writes team-b/python: %d %s", got, msg)
	}
	submit := func(recipe []byte) (int, string) {
		resp := h.req("POST", "/v2/team-a/app/_pei/builds?platform=linux/amd64&stage=rt", h.alice, bytes.NewReader(recipe))
		if resp.StatusCode != http.StatusAccepted {
			return resp.StatusCode, errorCode(t, resp)
		}
		resp.Body.Close()
		return resp.StatusCode, ""
	}
	// leaseOne leases the queued build and ends it when the subtest ends.
	leaseOne := func(t *testing.T) *api.Lease {
		t.Helper()
		l := w.lease("linux/amd64")
		if l == nil {
			t.Fatal("nothing to lease")
		}
		t.Cleanup(func() {
			r := w.post(l.Build.ID, "finish", `{"state":"failed","error":"test"}`)
			r.Body.Close()
			if r.StatusCode >= 300 {
				t.Errorf("finish: %d", r.StatusCode)
			}
		})
		return l
	}
	pinned := func(repo, tag string, d v1.Hash) string { return h.host + "/" + repo + ":" + tag + "@" + d.String() }

	t.Run("the shared item, pinned", func(t *testing.T) {
		if got, msg := submit(composeRecipe(t, "python", "")); got != http.StatusAccepted {
			t.Fatalf("submit: %d %s", got, msg)
		}
		// Replaced after the build was queued: the build keeps what it was
		// queued with.
		h.push(h.admin, "pei/py:1")
		l := leaseOne(t)
		want := []api.CatalogItem{{Name: "python", Namespace: "pei", Lower: pinned("pei/dev", "1", sharedDev), Upper: pinned("pei/py", "1", sharedPy), Exclude: []string{"/pei-init"}}}
		if len(l.Catalog) != 1 || l.Catalog[0].Name != want[0].Name || l.Catalog[0].Namespace != "pei" || l.Catalog[0].Lower != want[0].Lower ||
			l.Catalog[0].Upper != want[0].Upper || !slices.Equal(l.Catalog[0].Exclude, want[0].Exclude) {
			t.Errorf("lease catalog %+v\nwant %+v", l.Catalog, want)
		}
		for _, c := range []struct {
			repo string
			want []string
		}{
			{"pei/py", actions("pull")},
			{"team-b/evil", nil},
			{"team-a/app", actions("pull", "push")},
		} {
			if got := h.grantedActions(l.Password, c.repo); !slices.Equal(got, c.want) {
				t.Errorf("build credentials on %s: %v, want %v", c.repo, got, c.want)
			}
		}
	})

	t.Run("the namespace's item shadows the shared one", func(t *testing.T) {
		dev := h.push(h.alice, "team-a/dev:1")
		py := h.push(h.alice, "team-a/py:1")
		if got, msg := h.put(h.alice, "team-a", "python", api.CatalogItem{Lower: "team-a/dev:1", Upper: "team-a/py@" + py.String()}); got != http.StatusCreated {
			t.Fatalf("alice writes team-a/python: %d %s", got, msg)
		}
		defer h.status("DELETE", api.CatalogItemPath("team-a", "python"), h.alice)
		if got, msg := submit(composeRecipe(t, "python", "")); got != http.StatusAccepted {
			t.Fatalf("submit: %d %s", got, msg)
		}
		l := leaseOne(t)
		if len(l.Catalog) != 1 || l.Catalog[0].Namespace != "team-a" || l.Catalog[0].Lower != pinned("team-a/dev", "1", dev) || l.Catalog[0].Upper != h.host+"/team-a/py@"+py.String() {
			t.Errorf("lease catalog %+v, want team-a's item pinned", l.Catalog)
		}
	})

	t.Run("the project's own item first", func(t *testing.T) {
		if got, msg := submit(composeRecipe(t, "python", "catalog:\n  python: {lower: 'dev:1', upper: 'py:1'}\n")); got != http.StatusAccepted {
			t.Fatalf("submit: %d %s", got, msg)
		}
		if l := leaseOne(t); len(l.Catalog) != 0 {
			t.Errorf("lease catalog %+v, want none: the project declares python", l.Catalog)
		}
	})

	t.Run("an item two images take, once", func(t *testing.T) {
		cfg := "stage_1:\n  image: {base: debian:bookworm, output: x:1}\ncompose:\n" +
			"  rt:\n    output: rt:1\n    layers: [{image: debian:bookworm}, {catalog: python}]\n" +
			"  rt2:\n    output: rt:2\n    layers: [{image: debian:bookworm}, {catalog: python}]\n"
		if got, msg := submit(tarGz(t, map[string]string{"user_config.yml": cfg})); got != http.StatusAccepted {
			t.Fatalf("submit: %d %s", got, msg)
		}
		if l := leaseOne(t); len(l.Catalog) != 1 || l.Catalog[0].Name != "python" {
			t.Errorf("lease catalog %+v, want python once", l.Catalog)
		}
	})

	t.Run("an item no catalog holds", func(t *testing.T) {
		got, msg := submit(composeRecipe(t, "ruby", ""))
		if got != http.StatusBadRequest || !strings.Contains(msg, `no catalog item "ruby" (pei serve's catalog has: python)`) {
			t.Errorf("submit: %d %q", got, msg)
		}
		// bob's item is not offered to alice.
		if strings.Contains(msg, "evil") {
			t.Errorf("another tenant's catalog reached the message: %s", msg)
		}
	})

	t.Run("an item whose image is gone", func(t *testing.T) {
		// The admin deletes the upper's manifest after writing the item:
		// the submission says so rather than queueing a build that cannot
		// start.
		d := h.push(h.admin, "pei/gone:1")
		if got, msg := h.put(h.admin, "pei", "gone", api.CatalogItem{Lower: "pei/dev:1", Upper: "pei/gone:1"}); got != http.StatusCreated {
			t.Fatalf("admin writes pei/gone: %d %s", got, msg)
		}
		if err := remote.Delete(h.ref("pei/gone@"+d.String()), auth(h.admin)); err != nil {
			t.Fatalf("delete manifest: %v", err)
		}
		got, msg := submit(composeRecipe(t, "gone", ""))
		if got != http.StatusBadRequest || !strings.Contains(msg, "catalog item pei/gone") || !strings.Contains(msg, "not in this registry") {
			t.Errorf("submit: %d %q", got, msg)
		}
	})
}
