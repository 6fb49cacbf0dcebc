package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/project"
	"github.com/pei-dev/pei/internal/testenv"
)

const baseImage = "debian:bookworm"

// The passwords use characters PeiDocker cannot take: spaces, commas,
// colons, quotes and a $.
const (
	alicePassword = `p@ss w0rd, "with": colons'n $dollar`
	rootPassword  = `r00t:pass,word`
)

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix)
}

// TestComposeProject builds a generated project with Compose from a local
// Debian base and checks, with real logins, what the images must do.
func TestComposeProject(t *testing.T) {
	testenv.Docker(t)
	testenv.Image(t, baseImage)

	name := fmt.Sprintf("pei-e2e-%d", os.Getpid())
	dir := filepath.Join(t.TempDir(), name)
	keys := t.TempDir()
	run(t, keys, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob-login", "-f", "login")
	run(t, keys, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob-installed", "-f", "installed")
	loginPriv, _ := os.ReadFile(filepath.Join(keys, "login"))
	loginPub, _ := os.ReadFile(filepath.Join(keys, "login.pub"))
	installedPriv, _ := os.ReadFile(filepath.Join(keys, "installed"))
	sshPort := freePort(t)
	img := name // image names: pei-e2e-N:stage-1, pei-e2e-N:stage-2

	inst := filepath.Join(dir, "installation")
	writeFile(t, filepath.Join(inst, "stage-1/custom/build.sh"), "#!/bin/bash\nset -e\necho built-by-on_build > /opt/built\ncat /pei-init/stage-1/system/asset.txt > /opt/asset\n", 0o755)
	writeFile(t, filepath.Join(inst, "stage-1/system/asset.txt"), "asset-content\n", 0o644)
	writeFile(t, filepath.Join(inst, "stage-1/system/apt/sources.list"), "# pei-e2e sources\ndeb http://deb.debian.org/debian bookworm main\n", 0o644)
	// Windows line endings and no run bit: must still work.
	writeFile(t, filepath.Join(inst, "stage-1/custom/crlf.sh"), "echo crlf-ok > /opt/crlf\r\necho \"args=$*\" >> /opt/crlf\r\n", 0o644)
	counter := func(file string) string {
		return fmt.Sprintf("#!/bin/bash\nmkdir -p /var/lib/pei-e2e\necho x >> /var/lib/pei-e2e/%s\n", file)
	}
	writeFile(t, filepath.Join(inst, "stage-1/custom/first.sh"), counter("first"), 0o755)
	writeFile(t, filepath.Join(inst, "stage-1/custom/every.sh"), counter("every"), 0o755)
	writeFile(t, filepath.Join(inst, "stage-2/custom/every2.sh"), counter("every2"), 0o755)
	writeFile(t, filepath.Join(inst, "stage-1/custom/login.sh"), "#!/bin/bash\necho x >> \"$HOME/logins\"\n", 0o755)
	writeFile(t, filepath.Join(inst, "stage-2/custom/build2.sh"), "#!/bin/sh\necho stage2 > /soft/app/installed-in-image\n", 0o755)

	// A build secret from the environment, as docker compose build reads it.
	const token = "compose-build-token-9f8e7d"
	t.Setenv("PEI_E2E_TOKEN", token)
	writeFile(t, filepath.Join(inst, "stage-1/custom/secret.sh"), "#!/bin/sh\nsha256sum < /run/secrets/token | cut -d' ' -f1 > /opt/secret-sum\n", 0o755)

	cfg := fmt.Sprintf(`secrets:
  token: {env: PEI_E2E_TOKEN}
stage_1:
  image:
    base: %s
    output: %s:stage-1
  ssh:
    enable: true
    port: 22
    host_port: %d
    users:
      alice:
        password: '%s'
        uid: 1500
      bob:
        pubkey_text: '%s'
        privkey_text: |
%s
      root:
        password: '%s'
  apt:
    repo_source: 'stage-1/system/apt/sources.list'
    keep_repo_after_build: false
  environment:
    - 'E2E_EQ=a=b c'
    - 'E2E_FROM_HOST=${PEI_E2E_HOST_VALUE:-fallback}'
  custom:
    on_build:
      - 'stage-1/custom/build.sh'
      - 'stage-1/custom/crlf.sh one "two words"'
      - 'stage-1/custom/secret.sh'
    on_first_run: ['stage-1/custom/first.sh']
    on_every_run: ['stage-1/custom/every.sh']
    on_user_login: ['stage-1/custom/login.sh']
stage_2:
  image:
    output: %s:stage-2
  environment:
    E2E_STAGE2: 'second stage'
  storage:
    app:
      type: image
    data:
      type: auto-volume
    workspace:
      type: host
      host_path: ./ws
  custom:
    on_build: ['stage-2/custom/build2.sh']
    on_every_run: ['stage-2/custom/every2.sh']
`, baseImage, img, sshPort, strings.ReplaceAll(alicePassword, "'", "''"), strings.TrimSpace(string(loginPub)),
		indent(string(installedPriv), "          "), rootPassword, img)
	writeFile(t, filepath.Join(dir, "user_config.yml"), cfg, 0o644)

	if _, err := project.Configure(project.ConfigureOptions{Policy: project.Local, Dir: dir, Lookup: func(k string) (string, bool) {
		if k == "PEI_E2E_HOST_VALUE" {
			return "from-configure-env", true
		}
		return "", false
	}}); err != nil {
		t.Fatalf("configure: %v", err)
	}

	buildLog := composeBuild(t, dir, img+":stage-1", img+":stage-2")
	if !strings.Contains(buildLog, "CRLF") {
		t.Errorf("the build log does not mention fixing crlf.sh's line endings")
	}
	run(t, dir, "docker", "compose", "up", "-d")
	waitSSH(t, sshPort)
	if svcs := strings.TrimSpace(run(t, dir, "docker", "compose", "ps", "--services")); svcs != "stage-2" {
		t.Errorf("docker compose up started %q, want only stage-2", svcs)
	}
	container := strings.TrimSpace(run(t, dir, "docker", "compose", "ps", "-q", "stage-2"))

	exec := func(args ...string) string {
		return strings.TrimSpace(run(t, dir, "docker", append([]string{"exec", container}, args...)...))
	}
	sshPass := func(user, pass string, cmd ...string) (string, error) {
		args := append([]string{"-p", pass, "ssh"}, sshArgs(sshPort, "-o", "PubkeyAuthentication=no", user+"@127.0.0.1")...)
		return runErr(dir, "sshpass", append(args, cmd...)...)
	}

	t.Run("build hooks", func(t *testing.T) {
		if got := exec("cat", "/opt/built", "/opt/asset"); got != "built-by-on_build\nasset-content" {
			t.Errorf("on_build output = %q", got)
		}
		if got := exec("cat", "/opt/crlf"); got != "crlf-ok\nargs=one two words" {
			t.Errorf("CRLF script without run bit: %q", got)
		}
		sum := sha256.Sum256([]byte(token))
		if got := exec("cat", "/opt/secret-sum"); got != hex.EncodeToString(sum[:]) {
			t.Errorf("the on_build script did not see the build secret (sum %q)", got)
		}
		if got := exec("cat", "/hard/image/app/installed-in-image"); got != "stage2" {
			t.Errorf("stage-2 build into /soft/app: %q", got)
		}
	})

	t.Run("apt sources restored", func(t *testing.T) {
		if out := exec("cat", "/etc/apt/sources.list"); strings.Contains(out, "pei-e2e sources") || !strings.Contains(out, "deb.debian.org") {
			t.Errorf("keep_repo_after_build: false did not restore the base image's sources:\n%s", out)
		}
	})

	t.Run("password login and environment", func(t *testing.T) {
		out, err := sshPass("alice", alicePassword, "id -u; printenv E2E_EQ; printenv E2E_FROM_HOST; printenv E2E_STAGE2; printenv EXAMPLE_NOT_SET || echo unset")
		if err != nil {
			t.Fatalf("ssh alice with password: %v\n%s", err, out)
		}
		want := "1500\na=b c\nfrom-configure-env\nsecond stage\nunset"
		if strings.TrimSpace(out) != want {
			t.Errorf("alice's session:\n%s\nwant:\n%s", out, want)
		}
		if out, err := sshPass("alice", "wrong password", "true"); err == nil {
			t.Errorf("a wrong password logged in: %s", out)
		}
		out, err = sshPass("root", rootPassword, "id -un")
		if err != nil || strings.TrimSpace(out) != "root" {
			t.Errorf("root login: %v %s", err, out)
		}
		if got := exec("printenv", "E2E_EQ"); got != "a=b c" {
			t.Errorf("container env E2E_EQ = %q", got)
		}
	})

	t.Run("key login and installed key", func(t *testing.T) {
		out, err := runErr(dir, "ssh", sshArgs(sshPort, "-i", filepath.Join(keys, "login"), "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "bob@127.0.0.1", "id -un; stat -c '%a %U' ~/.ssh/id_ed25519")...)
		if err != nil {
			t.Fatalf("ssh bob with key: %v\n%s", err, out)
		}
		if strings.TrimSpace(out) != "bob\n600 bob" {
			t.Errorf("bob's session: %q", out)
		}
		if got := exec("cat", "/home/bob/.ssh/id_ed25519"); got != strings.TrimSpace(string(installedPriv)) {
			t.Errorf("installed private key differs")
		}
	})

	t.Run("login hook", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if out, err := sshPass("alice", alicePassword, "bash -lc true"); err != nil {
				t.Fatalf("login: %v %s", err, out)
			}
		}
		if got := exec("wc", "-l", "/home/alice/logins"); !strings.HasPrefix(got, "2 ") {
			t.Errorf("on_user_login ran %q times, want 2", got)
		}
	})

	t.Run("storage", func(t *testing.T) {
		links := exec("bash", "-c", "readlink /soft/app /soft/data /soft/workspace")
		if links != "/hard/image/app\n/hard/volume/data\n/hard/volume/workspace" {
			t.Errorf("/soft links:\n%s", links)
		}
		exec("bash", "-c", "echo kept > /soft/data/keep && echo on-host > /soft/workspace/from-container")
		if b, err := os.ReadFile(filepath.Join(dir, "ws", "from-container")); err != nil || string(b) != "on-host\n" {
			t.Errorf("host storage: %v %q", err, b)
		}
		if got := exec("stat", "-c", "%U %a", "/hard/image/app"); got != "alice 755" {
			t.Errorf("/hard/image/app owner and mode = %q", got)
		}
	})

	t.Run("hooks across restarts", func(t *testing.T) {
		count := func(f string) int {
			n, _ := strconv.Atoi(strings.Fields(exec("wc", "-l", "/var/lib/pei-e2e/"+f))[0])
			return n
		}
		if count("first") != 1 || count("every") != 1 || count("every2") != 1 {
			t.Fatalf("after start: first=%d every=%d every2=%d", count("first"), count("every"), count("every2"))
		}
		for i := 0; i < 2; i++ {
			run(t, dir, "docker", "compose", "restart", "stage-2")
			// restart returns once the container runs; its every-run
			// hooks are done when sshd, started after them, answers.
			waitSSH(t, sshPort)
		}
		if count("first") != 1 || count("every") != 3 || count("every2") != 3 {
			t.Errorf("after two restarts: first=%d (want 1) every=%d every2=%d (want 3)", count("first"), count("every"), count("every2"))
		}
	})

	t.Run("SIGTERM stop", func(t *testing.T) {
		run(t, dir, "docker", "stop", "-t", "10", container)
		code := strings.TrimSpace(run(t, dir, "docker", "inspect", "-f", "{{.State.ExitCode}}", container))
		if code != "0" {
			t.Errorf("docker stop: exit code %s, want 0 (137 means SIGTERM was ignored and it was killed)", code)
		}
	})

	t.Run("volume survives recreate", func(t *testing.T) {
		run(t, dir, "docker", "compose", "down")
		run(t, dir, "docker", "compose", "up", "-d")
		waitSSH(t, sshPort) // sshd starts after the first-run hooks
		c := strings.TrimSpace(run(t, dir, "docker", "compose", "ps", "-q", "stage-2"))
		if got := strings.TrimSpace(run(t, dir, "docker", "exec", c, "cat", "/soft/data/keep")); got != "kept" {
			t.Errorf("volume data after down/up: %q", got)
		}
		if got := strings.TrimSpace(run(t, dir, "docker", "exec", c, "wc", "-l", "/var/lib/pei-e2e/first")); !strings.HasPrefix(got, "1 ") {
			t.Errorf("first-run count in the new container: %q", got)
		}
	})

	t.Run("docker run command", func(t *testing.T) {
		// Only the command's standard output: sshd logs to standard error,
		// in any order with the command's output.
		out, err := osexec.Command("docker", "run", "--rm", img+":stage-2", "echo", "hi").Output()
		if err != nil || string(out) != "hi\n" {
			t.Errorf("docker run IMAGE echo hi: %v, standard output %q, want \"hi\\n\"", err, out)
		}
		if _, err := runErr(dir, "docker", "run", "--rm", img+":stage-2", "sh", "-c", "exit 7"); err == nil || !strings.Contains(err.Error(), "exit status 7") {
			t.Errorf("the command's exit status was not passed on: %v", err)
		}
	})

	t.Run("no host keys in the image", func(t *testing.T) {
		out := run(t, dir, "docker", "run", "--rm", "--entrypoint", "sh", img+":stage-2", "-c", "ls /etc/ssh/ssh_host_* 2>/dev/null | wc -l")
		if strings.TrimSpace(out) != "0" {
			t.Errorf("the image holds %s SSH host keys", out)
		}
	})

	t.Run("secret scan", func(t *testing.T) {
		secrets := map[string]string{
			"alice's password": alicePassword, "root's password": rootPassword,
			"bob's login key": strings.TrimSpace(string(loginPriv)),
			"build secret":    token,
		}
		var hits []secretHit
		for _, stage := range []string{"stage-1", "stage-2"} {
			hits = append(hits, scanImage(t, img+":"+stage, secrets)...)
			hist := run(t, dir, "docker", "history", "--no-trunc", img+":"+stage)
			inspect := run(t, dir, "docker", "image", "inspect", img+":"+stage)
			for n, s := range secrets {
				if strings.Contains(hist+inspect, s) {
					hits = append(hits, secretHit{n, stage + " history/config"})
				}
			}
		}
		for n, s := range secrets {
			if strings.Contains(buildLog, s) {
				hits = append(hits, secretHit{n, "build log"})
			}
		}
		hits = append(hits, scanDir(t, dir, secrets, "user_config.yml")...)
		for _, h := range hits {
			t.Errorf("%s found in %s", h.secret, h.where)
		}
		// The key the config asks to install is in exactly one place.
		installed := map[string]string{"installed key": strings.TrimSpace(string(installedPriv))}
		var places []string
		for _, h := range scanImage(t, img+":stage-2", installed) {
			places = append(places, h.where)
		}
		if len(places) != 1 || !strings.HasSuffix(places[0], "home/bob/.ssh/id_ed25519") {
			t.Errorf("the installed private key is in %v, want only home/bob/.ssh/id_ed25519", places)
		}
		for _, h := range scanDir(t, dir, installed, "user_config.yml", ".pei") {
			t.Errorf("installed key found in generated file %s", h.where)
		}
	})

	t.Run("cache: a run-time hook edit re-runs no build step", func(t *testing.T) {
		writeFile(t, filepath.Join(inst, "stage-1/custom/every.sh"), counter("every")+"# edited\n", 0o755)
		log := run(t, dir, "docker", "compose", "--progress", "plain", "build", "stage-1")
		steps := buildSteps(log)
		for _, want := range []string{"system.sh", "users.sh", "custom/build.sh", "custom/crlf.sh"} {
			if st, ok := findStep(steps, want); !ok || !st.cached {
				t.Errorf("step %s re-ran after editing a run-time hook (found %v)", want, ok)
			}
		}
		if st, ok := findStep(steps, "COPY installation/stage-1"); !ok || st.cached {
			t.Errorf("the edited hook was not copied again")
		}
	})

	t.Run("cache: an on_build edit re-runs from that step", func(t *testing.T) {
		writeFile(t, filepath.Join(inst, "stage-1/custom/crlf.sh"), "echo crlf-ok > /opt/crlf\r\necho \"args=$*\" >> /opt/crlf\r\n# edited\n", 0o644)
		log := run(t, dir, "docker", "compose", "--progress", "plain", "build", "stage-1")
		steps := buildSteps(log)
		for _, want := range []string{"system.sh", "users.sh", "custom/build.sh"} {
			if st, ok := findStep(steps, want); !ok || !st.cached {
				t.Errorf("step %s re-ran after editing a later on_build script", want)
			}
		}
		if st, ok := findStep(steps, "custom/crlf.sh"); !ok || st.cached {
			t.Errorf("the edited on_build script did not run again")
		}
	})

	t.Run("pei remove", func(t *testing.T) {
		var out strings.Builder
		err := project.Remove(t.Context(), project.RemoveOptions{Dir: dir, Yes: true, Volumes: true, Out: &out, Lookup: func(string) (string, bool) { return "", false }})
		if err != nil {
			t.Fatalf("remove: %v\n%s", err, out.String())
		}
		for _, ref := range []string{img + ":stage-1", img + ":stage-2"} {
			if _, err := runErr(dir, "docker", "image", "inspect", ref); err == nil {
				t.Errorf("%s still exists after pei remove", ref)
			}
		}
		if ps := strings.TrimSpace(run(t, dir, "docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+name)); ps != "" {
			t.Errorf("containers left: %s", ps)
		}
		if vs := strings.TrimSpace(run(t, dir, "docker", "volume", "ls", "-q", "--filter", "label=com.docker.compose.project="+name)); vs != "" {
			t.Errorf("volumes left: %s", vs)
		}
		if !strings.Contains(out.String(), "image "+img+":stage-2") {
			t.Errorf("remove did not list what it removed:\n%s", out.String())
		}
	})
}
