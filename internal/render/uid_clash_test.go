package render_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/render"
	"github.com/pei-dev/pei/internal/testenv"
)

// TestUIDClashNamesTheHolder: when a user's uid or gid is taken, users.sh
// says whether the base image holds it or a package pei installed for SSH
// (openssh-server's sshd): system.sh lists the base image's users and
// groups before it installs anything. users.sh runs here with the account
// tools stubbed and the lists in a temporary directory.
func TestUIDClashNamesTheHolder(t *testing.T) {
	testenv.Tools(t, "bash")
	cfg, err := config.Parse([]byte("stage_1:\n  image: {base: debian:bookworm}\n  ssh:\n    users:\n      me: {uid: 101}\n      you: {gid: 102}\n"), "user_config.yml", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.New(config.WithDefaults(cfg), "clash")
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := render.StageScripts(p.Stages[0])
	if err != nil {
		t.Fatal(err)
	}
	var users, system string
	for _, f := range scripts {
		switch filepath.Base(f.Path) {
		case "users.sh":
			users = string(f.Data)
		case "system.sh":
			system = string(f.Data)
		}
	}
	if i, j := strings.Index(system, "/var/lib/pei/base-users"), strings.Index(system, "apt-get install"); i < 0 || j < 0 || i > j {
		t.Fatalf("system.sh must list the base image's users before it installs packages:\n%s", system)
	}
	// The functions of users.sh, without the calls for the config's users.
	funcs, _, ok := strings.Cut(users, "\n# me\n")
	if !ok {
		t.Fatalf("users.sh has no section for user me:\n%s", users)
	}
	for _, tc := range []struct {
		name, baseUsers, baseGroups, call, want string
	}{
		{"uid of pei's sshd", "root\n", "root\n", "pei_user me 101 0 stage_1.ssh.users",
			"pei: stage_1.ssh.users: uid 101 of user 'me' is taken by user 'sshd' added by the packages pei installs for SSH (openssh-server, sudo); choose another uid"},
		{"uid of the base image's sshd", "root\nsshd\n", "root\n", "pei_user me 101 0 stage_1.ssh.users",
			"pei: stage_1.ssh.users: uid 101 of user 'me' is taken by user 'sshd' of the base image; choose another uid"},
		{"gid of pei's _ssh", "root\n", "root\n", "pei_user you 0 102 stage_1.ssh.users",
			"pei: stage_1.ssh.users: gid 102 is group '_ssh' added by the packages pei installs for SSH (openssh-server, sudo); 'you' joins it"},
		{"gid of the base image's group", "root\n", "root\n_ssh\n", "pei_user you 0 102 stage_1.ssh.users",
			"pei: stage_1.ssh.users: gid 102 is group '_ssh' of the base image; 'you' joins it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "base-users"), []byte(tc.baseUsers), 0o644)
			os.WriteFile(filepath.Join(dir, "base-groups"), []byte(tc.baseGroups), 0o644)
			script := strings.ReplaceAll(funcs, "/var/lib/pei/", dir+"/") + `
id() { return 1; }
useradd() { :; }
groupadd() { :; }
usermod() { :; }
getent() {
	case "$1 $2" in
	"passwd 101") echo 'sshd:x:101:65534::/run/sshd:/usr/sbin/nologin' ;;
	"group 102") echo '_ssh:x:102:' ;;
	*) return 2 ;;
	esac
}
` + tc.call + "\n"
			out, _ := exec.Command("bash", "-c", script).CombinedOutput()
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("users.sh says:\n%s\nwant it to say:\n%s", out, tc.want)
			}
		})
	}
}
