package render_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/render"
	"github.com/pei-dev/pei/internal/testenv"
)

// TestUserNamesInGeneratedFiles: the user names useradd accepts beyond
// [a-z_][a-z0-9_-]* ('.', a leading digit, upper case) reach users.sh as
// single shell words (bash -n parses the script), the Dockerfile's secret mount of a private key as
// one id, and docker-compose.yml as a secret Compose loads.
func TestUserNamesInGeneratedFiles(t *testing.T) {
	priv := testenv.PrivateKeyYAML(t)
	names := []string{"u.dot", "1st", "Dev.Ops"}
	var y strings.Builder
	y.WriteString("stage_1:\n  image: {base: debian:bookworm}\n  ssh:\n    users:\n")
	for _, n := range names {
		y.WriteString("      " + n + ": {password: pw, privkey_text: \"" + priv + "\"}\n")
	}
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(y.String()), "user_config.yml", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.New(config.WithDefaults(cfg), "names")
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(p, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		got[filepath.Base(f.Path)] = string(f.Data)
	}
	users, df := got["users.sh"], got["stage-1.Dockerfile"]
	for _, n := range names {
		q := render.ShellQuote(n)
		for _, want := range []string{"\npei_user " + q + " ", "\npei_fix_date " + q + "\n", "\npei_keys " + q + " "} {
			if !strings.Contains(users, want) {
				t.Errorf("users.sh lacks %q", want)
			}
		}
		if !strings.Contains(df, "--mount=type=secret,id=pei_privkey_"+n+",") {
			t.Errorf("the Dockerfile does not mount the secret pei_privkey_%s", n)
		}
	}
	testenv.Tools(t, "bash")
	sh := filepath.Join(dir, "users.sh")
	if err := os.WriteFile(sh, []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", sh).CombinedOutput(); err != nil {
		t.Fatalf("bash -n users.sh: %v\n%s", err, out)
	}
	compose := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(compose, []byte(got["docker-compose.yml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	proj, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: compose}},
	}, func(o *loader.Options) { o.SetProjectName("names", true); o.Profiles = []string{"*"} })
	if err != nil {
		t.Fatalf("compose-go cannot load the generated file: %v\n%s", err, got["docker-compose.yml"])
	}
	for _, n := range names {
		if _, ok := proj.Secrets["pei_privkey_"+n]; !ok {
			t.Errorf("docker-compose.yml has no secret pei_privkey_%s: %v", n, proj.Secrets)
		}
	}
}
