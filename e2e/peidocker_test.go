package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/project"
	"github.com/pei-dev/pei/internal/testenv"
)

// TestPeiDockerStyleProject configures a project written the way PeiDocker
// users write them (mounts in both stages, the login key found by '~' in
// the user's home, a {{VAR:-default}} tag), builds it with Compose, starts
// each stage's service and logs in with the key. It checks the meaning
// PeiDocker gives these: each stage's container gets its own stage's
// mounts, host.docker.internal reaches the host, the tag resolves at run
// time.
func TestPeiDockerStyleProject(t *testing.T) {
	testenv.Docker(t)
	testenv.Image(t, baseImage)
	testenv.Tools(t, "ssh", "ssh-keygen")

	name := fmt.Sprintf("pei-e2e-pd-%d", os.Getpid())
	dir := filepath.Join(t.TempDir(), name)
	// The user's home, where '~' finds the key, as PeiDocker looks for it.
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, home, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me@pd", "-f", filepath.Join(home, ".ssh", "id_ed25519"))
	key := filepath.Join(home, ".ssh", "id_ed25519")
	sshPort := freePort(t)
	writeFile(t, filepath.Join(dir, "s1", "from-host"), "stage-1 host dir\n", 0o644)
	writeFile(t, filepath.Join(dir, "s2", "from-host"), "stage-2 host dir\n", 0o644)
	writeFile(t, filepath.Join(dir, "user_config.yml"), fmt.Sprintf(`stage_1:
  image:
    base: %s
    output: %s:stage-1
  ssh:
    enable: true
    port: 22
    host_port: %d
    users:
      me:
        password: '123456'
        pubkey_file: '~'
  mount:
    apt_cache:
      type: auto-volume
      dst_path: /var/cache/apt/archives
    s1_dir:
      type: host
      host_path: ./s1
      dst_path: /mnt/s1
stage_2:
  image:
    output: %s:{{PEI_E2E_TAG:-dev}}
  mount:
    s2_dir:
      type: host
      host_path: ./s2
      dst_path: /mnt/s2
`, baseImage, name, sshPort, name), 0o644)

	lookup := func(k string) (string, bool) {
		if k == "HOME" {
			return home, true
		}
		return "", false
	}
	if _, err := project.Configure(project.ConfigureOptions{Policy: project.Local, Dir: dir, Lookup: lookup}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	composeBuild(t, dir, name+":stage-1", name+":dev")
	if out, err := runErr(dir, "docker", "image", "inspect", "-f", "{{.Id}}", name+":dev"); err != nil {
		t.Fatalf("stage-2's {{PEI_E2E_TAG:-dev}} did not give the tag dev: %v %s", err, out)
	}

	login := func(t *testing.T, cmd string) string {
		t.Helper()
		out, err := runErr(dir, "ssh", sshArgs(sshPort, "-i", key, "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "me@127.0.0.1", cmd)...)
		if err != nil {
			t.Fatalf("ssh me with the key '~' found: %v\n%s", err, out)
		}
		return strings.TrimSpace(out)
	}
	exec := func(t *testing.T, service string, args ...string) (string, error) {
		t.Helper()
		c := strings.TrimSpace(run(t, dir, "docker", "compose", "ps", "-q", service))
		return runErr(dir, "docker", append([]string{"exec", c}, args...)...)
	}

	for _, tc := range []struct {
		service       string
		own, other    string // the stage's host mount, and the other stage's
		ownFile, from string
	}{
		{"stage-1", "/mnt/s1", "/mnt/s2", "s1", "stage-1 host dir"},
		{"stage-2", "/mnt/s2", "/mnt/s1", "s2", "stage-2 host dir"},
	} {
		t.Run(tc.service, func(t *testing.T) {
			// Named, a service in a profile starts too; one at a time, as
			// both publish the SSH port.
			run(t, dir, "docker", "compose", "up", "-d", tc.service)
			defer run(t, dir, "docker", "compose", "--profile", "*", "stop")
			waitSSH(t, sshPort)
			if got := login(t, "id -un; cat "+tc.own+"/from-host"); got != "me\n"+tc.from {
				t.Errorf("logged in and read the stage's host mount: %q", got)
			}
			if _, err := exec(t, tc.service, "test", "-e", tc.other); err == nil {
				t.Errorf("%s holds the other stage's mount %s (PeiDocker gives each stage's container its own mounts)", tc.service, tc.other)
			}
			if _, err := exec(t, tc.service, "sh", "-c", "echo from-container > "+tc.own+"/back"); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, tc.ownFile, "back")); err != nil || string(b) != "from-container\n" {
				t.Errorf("written in the container, on the host: %q %v", b, err)
			}
			if out, err := exec(t, tc.service, "getent", "hosts", "host.docker.internal"); err != nil || strings.TrimSpace(out) == "" {
				t.Errorf("host.docker.internal does not resolve in %s: %v %q", tc.service, err, out)
			}
			apt, err := exec(t, tc.service, "sh", "-c", "grep -q ' /var/cache/apt/archives ' /proc/self/mountinfo && echo mounted || echo not")
			want := map[string]string{"stage-1": "mounted", "stage-2": "not"}[tc.service]
			if err != nil || strings.TrimSpace(apt) != want {
				t.Errorf("stage_1.mount.apt_cache in %s: %q %v, want %s", tc.service, apt, err, want)
			}
		})
	}
}
