package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/service"
	"github.com/pei-dev/pei/internal/store"
	"github.com/pei-dev/pei/internal/testenv"
)

// TestServeWebPage loads pei serve's page in headless Chromium: an
// anonymous visitor sees the public namespace's repository, tag and build
// with its log (followed over Server-Sent Events), and nothing of team-a.
// PEI_UPDATE_SCREENSHOT=FILE saves the screenshot (docs/serve-ui.png).
func TestServeWebPage(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Tools(t, "chromium")
	e := startServe(t, func(c *service.Config) { c.AnonymousPull = []string{"public"} })
	_, pub, err := e.srv.Store().CreateToken(t.Context(), store.Token{Name: "publisher", Namespaces: []string{"public"}, Scopes: []string{api.ScopeBuild}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.startWorker("web", nil)()
	dir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY hello /hello\n", "hello": "hi\n"})
	b := e.submit(pub, client.SubmitOptions{Repo: "public/hello", Tag: "v1", Kind: "dockerfile", Dockerfile: "Dockerfile"}, dir)
	if end, log := e.follow(pub, "public/hello", b.ID); end.State != api.Succeeded {
		t.Fatalf("build %s: %s\n%s", end.State, end.Error, log)
	}
	private := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/private", Tag: "v1", Kind: "dockerfile", Dockerfile: "Dockerfile"}, dir)
	e.follow(e.alice, "team-a/private", private.ID)

	chromium := func(args ...string) string {
		t.Helper()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=8000", "--window-size=1280,860"}
		cmd := exec.Command("chromium", append(base, args...)...)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return out.String()
	}
	page := e.url + "/#build=" + b.ID
	dom := chromium("--dump-dom", page)
	for _, want := range []string{
		`<td class="mono">public/hello</td>`,            // repository list
		`<td class="mono">v1</td>`,                      // its tag
		`data-id="` + b.ID + `"`,                        // the build row
		`class="state succeeded">succeeded`,             // its state
		"pushed " + e.host + "/public/hello@sha256:",    // the followed log
		`<span id="log-state" class="state succeeded">`, // the log's end event
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("page lacks %q:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, "team-a") || strings.Contains(dom, private.ID) {
		t.Errorf("an anonymous visitor sees team-a:\n%s", dom)
	}
	t.Run("signed in", func(t *testing.T) {
		// With alice's token typed in, the page shows team-a's repository
		// and build beside the public ones, and nothing of team-b.
		testenv.Tools(t, "chromedriver")
		bobDir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY hello /hello\n", "hello": "bob\n"})
		bobBuild := e.submit(e.bob, client.SubmitOptions{Repo: "team-b/hidden", Tag: "v1", Kind: "dockerfile", Dockerfile: "Dockerfile"}, bobDir)
		e.follow(e.bob, "team-b/hidden", bobBuild.ID)
		d := startWebDriver(t)
		d.open(e.url + "/")
		d.waitSource(`<td class="mono">public/hello</td>`)
		if src := d.source(); strings.Contains(src, "team-a/private") {
			t.Fatalf("anonymous page shows team-a:\n%s", src)
		}
		d.typeInto("#token", e.alice)
		d.click("#login button")
		src := d.waitSource(`<td class="mono">team-a/private</td>`, `data-id="`+private.ID+`"`, `<td class="mono">public/hello</td>`, "token set")
		if strings.Contains(src, "team-b") || strings.Contains(src, bobBuild.ID) || strings.Contains(src, e.alice) {
			t.Errorf("alice's page shows team-b or her token:\n%s", src)
		}
		// Clicking her build follows its log.
		d.click(`tr[data-id="` + private.ID + `"]`)
		d.waitSource("pushed "+e.host+"/team-a/private@sha256:", `<span id="log-state" class="state succeeded">`)
	})

	shot := filepath.Join(t.TempDir(), "page.png")
	chromium("--screenshot="+shot, page)
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 10000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if dst := os.Getenv("PEI_UPDATE_SCREENSHOT"); dst != "" {
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
