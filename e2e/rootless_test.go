package e2e

import (
	"fmt"
	"io"
	stdlog "log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/pei-dev/pei/internal/testenv"
)

const rootlessUser = "pei-rootless"

// TestRootlessBuild is the HPC/CI case: a user with no root and no Docker
// access bootstraps a base image and builds a project with pei (rootless
// buildkitd under rootlesskit); the image then runs and takes SSH logins.
func TestRootlessBuild(t *testing.T) {
	testenv.Root(t)
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Tools(t, "rootlesskit", "newuidmap", "mmdebstrap", "runuser", "go")

	if _, err := runErr("", "id", rootlessUser); err != nil {
		run(t, "", "useradd", "-m", "-s", "/bin/bash", rootlessUser)
	}
	if b, _ := os.ReadFile("/etc/subuid"); !strings.Contains(string(b), rootlessUser+":") {
		run(t, "", "usermod", "--add-subuids", "300000-365535", "--add-subgids", "300000-365535", rootlessUser)
	}

	work, err := os.MkdirTemp("", "pei-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	os.Chmod(work, 0o755)
	pei := filepath.Join(work, "pei")
	run(t, "..", "go", "build", "-o", pei, "./cmd/pei")

	port := freePort(t)
	img := fmt.Sprintf("pei-e2e-%d-rootless", os.Getpid())
	proj := filepath.Join(work, "proj")
	writeFile(t, filepath.Join(proj, "installation/stage-1/custom/b.sh"), "#!/bin/sh\nid -u > /opt/built-as\n", 0o755)
	writeFile(t, filepath.Join(proj, "user_config.yml"), fmt.Sprintf(`stage_1:
  image: {base: 'debian:bookworm', output: '%s:stage-1'}
  ssh:
    host_port: %d
    users:
      hpc: {password: 'no root here'}
  custom:
    on_build: ['stage-1/custom/b.sh']
stage_2:
  image: {output: '%s:stage-2'}
`, img, port, img), 0o644)
	home := "/home/" + rootlessUser
	run(t, "", "chown", "-R", rootlessUser+":", proj)
	// A clean cache: the base store and buildkitd state are the user's own.
	cache := filepath.Join(work, "cache")
	os.MkdirAll(cache, 0o755)
	run(t, "", "chown", rootlessUser+":", cache)

	env := []string{"-u", rootlessUser, "--", "env", "-i", "HOME=" + home, "USER=" + rootlessUser,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "XDG_CACHE_HOME=" + cache,
		"SOURCE_DATE_EPOCH=1700000000"}
	asUser := func(args ...string) string {
		t.Helper()
		return run(t, proj, "runuser", append(env, args...)...)
	}
	if out, err := runErr(proj, "runuser", append(env, "docker", "info")...); err == nil {
		t.Fatalf("%s can use the Docker engine; the test needs a user without it:\n%s", rootlessUser, out)
	}
	// The base also goes to an OCI tarball and a registry, both checked.
	srv := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	baseRef := strings.TrimPrefix(srv.URL, "http://") + "/pei/base:bookworm"
	baseTar := filepath.Join(proj, "base.tar")
	printed := strings.TrimSpace(lastLine(asUser(pei, "base", "debian:bookworm", "--oci", baseTar, "--push", baseRef)))
	if !strings.HasPrefix(printed, "debian:bookworm@sha256:") {
		t.Fatalf("pei base printed %q", printed)
	}
	fromTar := ociImage(t, baseTar)
	if err := validate.Image(fromTar); err != nil {
		t.Errorf("validate.Image of the OCI tarball: %v", err)
	}
	r, _ := name.ParseReference(baseRef, name.Insecure)
	fromRegistry, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull the pushed base: %v", err)
	}
	for what, img := range map[string]v1.Image{"OCI tarball": fromTar, "registry": fromRegistry} {
		if d, _ := img.Digest(); !strings.HasSuffix(printed, "@"+d.String()) {
			t.Errorf("the %s holds %s, pei base printed %s", what, d, printed)
		}
	}
	dest := filepath.Join(proj, "image.tar")
	out := asUser(pei, "build", "-p", proj, "--output", "type=oci,dest="+dest, "--progress", "plain")
	if !strings.Contains(out, img+":stage-2@sha256:") {
		t.Fatalf("pei build did not print the image:\n%s", out)
	}

	// Root takes the OCI tarball into the engine to run it.
	image := ociImage(t, dest)
	tag, _ := name.NewTag(img + ":stage-2")
	load := exec.Command("docker", "load")
	w, _ := load.StdinPipe()
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	if err := tarball.Write(tag, image, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := load.Wait(); err != nil {
		t.Fatalf("docker load: %v", err)
	}
	cname := img + "-run"
	t.Cleanup(func() { runErr("", "docker", "rm", "-f", cname); runErr("", "docker", "rmi", img+":stage-2") })
	run(t, "", "docker", "run", "-d", "--name", cname, "-p", fmt.Sprintf("127.0.0.1:%d:22", port), img+":stage-2")
	waitSSH(t, port)
	got, err := runErr("", "sshpass", append([]string{"-p", "no root here", "ssh"}, sshArgs(port, "-o", "PubkeyAuthentication=no", "hpc@127.0.0.1", "id -un; cat /opt/built-as")...)...)
	if err != nil || strings.TrimSpace(got) != "hpc\n0" {
		t.Errorf("login to the rootless-built image: %v\n%s", err, got)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
