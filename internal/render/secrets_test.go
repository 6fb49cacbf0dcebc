package render_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/render"
)

// No secret reaches a generated file: not the password, not the private
// key. Both are read from the very project that is rendered, and must be
// there, so the check cannot pass by looking for something absent.
func TestNoSecretsInGeneratedFiles(t *testing.T) {
	const password = `a b,c:d "e" $f` // stage_1.ssh.users.dev.password in testdata/full-example
	dir := testProject(t, "full-example")
	cfg, err := config.Load(config.LoadOptions{ProjectDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stage1.SSH == nil {
		t.Fatal("the full example has no ssh section")
	}
	var dev *config.User
	for i := range cfg.Stage1.SSH.Users {
		if cfg.Stage1.SSH.Users[i].Name == "dev" {
			dev = &cfg.Stage1.SSH.Users[i]
		}
	}
	if dev == nil || dev.Password != password || dev.PrivkeyFile == "" {
		t.Fatalf("the rendered config must give dev the password %q and a privkey_file: %+v", password, dev)
	}
	key, err := os.ReadFile(filepath.Join(dir, config.InstallDir, filepath.FromSlash(dev.PrivkeyFile)))
	if err != nil {
		t.Fatalf("the private key the rendered config names: %v", err)
	}
	keyText := strings.TrimSpace(string(key))
	if !strings.HasPrefix(keyText, "-----BEGIN OPENSSH PRIVATE KEY-----") {
		t.Fatalf("%s is not a private key: %q", dev.PrivkeyFile, keyText)
	}

	// The secrets and the forms a template could write them in.
	secrets := map[string]string{
		"password":          password,
		"password (quoted)": strings.Trim(strconv.Quote(password), `"`),
		"password (base64)": base64.StdEncoding.EncodeToString([]byte(password)),
		"private key":       keyText,
		"private key (b64)": base64.StdEncoding.EncodeToString(key),
	}
	for i, line := range strings.Split(keyText, "\n") {
		if !strings.HasPrefix(line, "-----") && len(line) >= 16 {
			secrets["private key line "+strconv.Itoa(i)] = line
		}
	}

	p, err := plan.New(config.WithDefaults(cfg), plan.ProjectName(dir))
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(p, render.Options{ConfigFile: "user_config.yml", WithMerged: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("rendered only %d files", len(files))
	}
	for _, f := range files {
		for what, s := range secrets {
			if bytes.Contains(f.Data, []byte(s)) {
				t.Errorf("%s holds the %s", f.Path, what)
			}
		}
	}
}
