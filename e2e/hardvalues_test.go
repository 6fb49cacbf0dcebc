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

// hardEnv are environment values a careful user tries: quotes of both
// kinds, backticks and $(...) (literal, never run), unicode, '=' inside,
// $${VAR} (a literal ${VAR}), a backslash, a '#'.
var hardEnv = []struct{ name, yaml, want string }{
	{"HV_QUOTES", `'say "hi" and ''bye'''`, `say "hi" and 'bye'`},
	{"HV_BACKTICK", "'`id` and $(id)'", "`id` and $(id)"},
	{"HV_UNICODE", `'héllo ☃ 日本'`, "héllo ☃ 日本"},
	{"HV_EQUALS", `'a=b=c'`, "a=b=c"},
	{"HV_LITERAL", `'$${HOME} stays'`, "${HOME} stays"},
	{"HV_BACKSLASH", `'C:\path\n # not a comment'`, `C:\path\n # not a comment`},
}

// hardPassword is 160 bytes of quotes, spaces, a $, a backslash and
// unicode.
var hardPassword = strings.Repeat(`p"a's w$0\rd ☃`, 10)[:160]

// TestHardValuesEndToEnd carries hard values through everything that uses
// them: the image's environment (docker exec), an SSH session's
// environment, a password login, and the arguments of every kind of hook
// (POSIX quoting; $HOME, and ${HOME} written $${HOME} since pei configure
// fills a ${VAR}, expand in the container when the hook runs).
func TestHardValuesEndToEnd(t *testing.T) {
	testenv.Docker(t)
	testenv.Image(t, baseImage)
	testenv.Tools(t, "ssh", "sshpass")

	name := fmt.Sprintf("pei-e2e-hv-%d", os.Getpid())
	dir := filepath.Join(t.TempDir(), name)
	sshPort := freePort(t)
	// Every hook writes its arguments, one a line, to a file named for it.
	// The first line is the HOME the hook ran with: $HOME in an argument
	// must be that.
	record := func(file string) string {
		return "#!/bin/bash\nmkdir -p \"$(dirname " + file + ")\"\n{ printf 'HOME=%s\\n' \"$HOME\"; printf '%s\\n' \"$@\"; } > " + file + "\n"
	}
	for _, h := range []string{"build", "first", "every"} {
		writeFile(t, filepath.Join(dir, "installation/stage-1/custom", h+".sh"), record("/var/lib/pei-hv/"+h), 0o755)
	}
	// on_entry is the container's main process: it stays.
	writeFile(t, filepath.Join(dir, "installation/stage-1/custom/entry.sh"), record("/var/lib/pei-hv/entry")+"exec sleep infinity\n", 0o755)
	// on_user_login runs as the user: it writes in the home.
	writeFile(t, filepath.Join(dir, "installation/stage-1/custom/login.sh"), record(`"$HOME/login-args"`), 0o755)
	const hookArgs = `one "two words" 'single $x' "i\j" $HOME "$${HOME}/sub" \$literal`
	wantArgs := func(home string) string {
		return strings.Join([]string{"one", "two words", "single $x", `i\j`, home, home + "/sub", "$literal"}, "\n")
	}
	var env strings.Builder
	for _, e := range hardEnv {
		fmt.Fprintf(&env, "    %s: %s\n", e.name, e.yaml)
	}
	entry := func(h string) string {
		return "'stage-1/custom/" + h + ".sh " + strings.ReplaceAll(hookArgs, "'", "''") + "'"
	}
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
        password: '%s'
  environment:
%s  custom:
    on_build: [%s]
    on_first_run: [%s]
    on_every_run: [%s]
    on_user_login: [%s]
    on_entry: [%s]
stage_2:
  image:
    output: %s:stage-2
`, baseImage, name, sshPort, strings.ReplaceAll(hardPassword, "'", "''"), env.String(),
		entry("build"), entry("first"), entry("every"), entry("login"), entry("entry"), name), 0o644)

	if _, err := project.Configure(project.ConfigureOptions{Policy: project.Local, Dir: dir}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	composeBuild(t, dir, name+":stage-1", name+":stage-2")
	run(t, dir, "docker", "compose", "up", "-d")
	waitSSH(t, sshPort)
	container := strings.TrimSpace(run(t, dir, "docker", "compose", "ps", "-q", "stage-2"))
	exec := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := runErr(dir, "docker", append([]string{"exec", container}, args...)...)
		if err != nil {
			t.Fatalf("docker exec %v: %v\n%s", args, err, out)
		}
		return out
	}
	login := func(t *testing.T, cmd string) string {
		t.Helper()
		out, err := runErr(dir, "sshpass", append([]string{"-p", hardPassword, "ssh"}, sshArgs(sshPort, "-o", "PubkeyAuthentication=no", "me@127.0.0.1", cmd)...)...)
		if err != nil {
			t.Fatalf("ssh me with the 160-byte password: %v\n%s", err, out)
		}
		return out
	}

	t.Run("environment", func(t *testing.T) {
		for _, e := range hardEnv {
			if got := strings.TrimSuffix(exec(t, "printenv", e.name), "\n"); got != e.want {
				t.Errorf("docker exec printenv %s = %q, want %q", e.name, got, e.want)
			}
			if got := strings.TrimSuffix(login(t, "printenv "+e.name), "\n"); got != e.want {
				t.Errorf("in an SSH session, %s = %q, want %q", e.name, got, e.want)
			}
		}
	})
	t.Run("hook arguments", func(t *testing.T) {
		check := func(t *testing.T, hook, file, wantHome string) {
			t.Helper()
			home, got, _ := strings.Cut(strings.TrimSuffix(exec(t, "cat", file), "\n"), "\n")
			home = strings.TrimPrefix(home, "HOME=")
			if wantHome != "" && home != wantHome {
				t.Errorf("%s hook ran with HOME=%q, want %q", hook, home, wantHome)
			}
			if got != wantArgs(home) {
				t.Errorf("%s hook's arguments:\n%s\nwant:\n%s", hook, got, wantArgs(home))
			}
		}
		// on_build ran at build time (HOME as the build step had it); the
		// run-time hooks as root in the container; on_user_login as the
		// user who logged in.
		check(t, "on_build", "/var/lib/pei-hv/build", "")
		check(t, "on_first_run", "/var/lib/pei-hv/first", "/root")
		check(t, "on_every_run", "/var/lib/pei-hv/every", "/root")
		check(t, "on_entry", "/var/lib/pei-hv/entry", "/root")
		login(t, "bash -lc true")
		check(t, "on_user_login", "/home/me/login-args", "/home/me")
	})
}
