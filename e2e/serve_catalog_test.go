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
)

// serveCatalog is TestServe's shared catalog: an admin builds a dev base
// and a "language" on it in the shared namespace with pei serve's own
// workers and publishes the pair as catalog item hello; a tenant's pei
// project composes a runtime from it by name with pei submit, and the
// image runs what the item holds, with the user it added merged into the
// runtime's /etc/passwd. A tenant can neither write the shared catalog
// nor replace its images.
func serveCatalog(t *testing.T, e *serveEnv, pei string) {
	defer e.startWorker("w-catalog", nil)()
	devBase := e.host + "/pei/dev-base:bookworm"
	run(t, "", "skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "admin:"+e.admin, "docker-daemon:"+baseImage, "docker://"+devBase)
	lang := dockerfileDir(t, map[string]string{"Dockerfile": "FROM " + devBase + "\n" +
		"RUN useradd --system --uid 990 --no-create-home hello && printf '#!/bin/sh\\necho hello from the catalog\\n' > /usr/local/bin/hello && chmod 755 /usr/local/bin/hello && mkdir /pei-init && touch /pei-init/build-only\n"})
	b := e.submit(e.admin, client.SubmitOptions{Repo: "pei/lang-hello", Tag: "1-bookworm", Kind: api.KindDockerfile, Dockerfile: "Dockerfile"}, lang)
	if end, log := e.follow(e.admin, "pei/lang-hello", b.ID); end.State != api.Succeeded {
		t.Fatalf("the admin's language build %s: %s\n%s", end.State, end.Error, log)
	}

	catalog := func(token string, args ...string) (string, error) {
		cmd := exec.Command(pei, append([]string{"catalog"}, append(args, "--server", e.url)...)...)
		cmd.Env = append(os.Environ(), "PEI_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	set := []string{"set", "pei/hello", "--lower", "pei/dev-base:bookworm", "--upper", "pei/lang-hello:1-bookworm", "--exclude", "/pei-init"}
	if out, err := catalog(e.alice, set...); err == nil || !strings.Contains(out, "admin") {
		t.Errorf("a tenant wrote the shared catalog: %v\n%s", err, out)
	}
	if out, err := catalog(e.admin, set...); err != nil {
		t.Fatalf("the admin writes the shared catalog: %v\n%s", err, out)
	}
	if out, err := catalog(e.alice, "list", "team-a"); err != nil || !strings.Contains(out, "hello") || !strings.Contains(out, "pei/lang-hello:1-bookworm") {
		t.Errorf("team-a's catalog does not offer the shared item: %v\n%s", err, out)
	}
	// Nor may a tenant replace what the item names.
	if out, err := runErr("", "skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "alice:"+e.alice, "docker-daemon:"+baseImage, "docker://"+e.host+"/pei/lang-hello:1-bookworm"); err == nil {
		t.Errorf("a tenant pushed over a shared catalog image:\n%s", out)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "user_config.yml"), "stage_1:\n  image: {base: "+baseImage+", output: 'x:stage-1'}\n"+
		"compose:\n  rt:\n    output: rt:1\n    strict: true\n    layers: [{image: "+baseImage+"}, {catalog: hello}]\n", 0o644)
	cmd := exec.Command(pei, "submit", "-p", dir, "--server", e.url, "--tag", "team-a/rt:1", "--stage", "rt", "--follow")
	cmd.Env = append(os.Environ(), "PEI_TOKEN="+e.alice)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pei submit of a runtime taking the shared item: %v\n%s", err, stderr.String())
	}
	if want := "catalog hello (pei): " + e.host + "/pei/lang-hello:1-bookworm@sha256:"; !strings.Contains(stderr.String(), want) {
		t.Errorf("the build log does not say it took %s...:\n%s", want, stderr.String())
	}
	ref := strings.TrimSpace(stdout.String())
	cfg := e.dockerLogin("alice", e.alice)
	run(t, dir, "docker", "--config", cfg, "pull", ref)
	t.Cleanup(func() { runErr(dir, "docker", "rmi", "-f", ref) })
	if out := run(t, dir, "docker", "run", "--rm", ref, "sh", "-c", "hello; id -u hello; test ! -e /pei-init/build-only && echo excluded"); out != "hello from the catalog\n990\nexcluded\n" {
		t.Errorf("the composed runtime: %q", out)
	}
}
