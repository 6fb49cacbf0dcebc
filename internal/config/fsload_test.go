package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A project read through an fs.FS (LoadOptions.FS, as pei serve and its
// workers read recipes): the config and the files it names come from the
// fs.FS only. The test's FS is os.Root's, as the server's is; outside the
// project sits a canary file whose bytes no result may carry.
func TestLoadFS(t *testing.T) {
	const canary = "canary-d0n0t-l3ak"
	const good = "stage_1:\n  image: {base: debian:bookworm, output: x:1}\n" +
		"  ssh:\n    users:\n      me: {pubkey_file: stage-1/me.pub}\n" +
		"  custom: {on_build: [stage-1/custom/a.sh]}\n"
	for _, tc := range []struct {
		name  string
		files map[string]string // "->" makes a link; "@OUT" is the canary's path
		want  string            // "" is success
	}{
		{"a regular project", map[string]string{"user_config.yml": good, "installation/stage-1/me.pub": pubkey, "installation/stage-1/custom/a.sh": "echo\n"}, ""},
		{"a hook that is a link inside", map[string]string{"user_config.yml": good, "installation/stage-1/me.pub": pubkey, "installation/real.sh": "echo\n", "installation/stage-1/custom/a.sh": "->../../real.sh"}, ""},
		{"a hook script larger than a config", map[string]string{"user_config.yml": good, "installation/stage-1/me.pub": pubkey, "installation/stage-1/custom/a.sh": strings.Repeat("#\n", MaxFileSize)}, ""},
		{"no config", map[string]string{"x": "y"}, "user_config.yml: the project has no user_config.yml"},
		{"the config is a link inside", map[string]string{"real.yml": good, "user_config.yml": "->real.yml"}, "user_config.yml: is a symbolic link"},
		{"the config is a link outside", map[string]string{"user_config.yml": "->@OUT"}, "user_config.yml: is a symbolic link"},
		{"the config is a directory", map[string]string{"user_config.yml/x": "y"}, "user_config.yml: is not a regular file"},
		{"a hook linked outside", map[string]string{"user_config.yml": good, "installation/stage-1/me.pub": pubkey, "installation/stage-1/custom/a.sh": "->@OUT"},
			"stage_1.custom.on_build[0]: cannot read installation/stage-1/custom/a.sh"},
		{"a key linked outside", map[string]string{"user_config.yml": good, "installation/stage-1/custom/a.sh": "echo\n", "installation/stage-1/me.pub": "->@OUT"},
			"stage_1.ssh.users.me.pubkey_file: cannot read installation/stage-1/me.pub"},
		{"a key directory linked outside", map[string]string{"user_config.yml": good, "installation/stage-1": "->@OUTDIR"},
			"cannot read installation/stage-1/me.pub"},
		{"a key that is no key", map[string]string{"user_config.yml": good, "installation/stage-1/custom/a.sh": "echo\n", "installation/stage-1/me.pub": "not a key"},
			"stage_1.ssh.users.me.pubkey_file: not an OpenSSH public key"},
		{"an absolute hook path", map[string]string{"user_config.yml": strings.Replace(good, "stage-1/custom/a.sh", "@OUT", 1), "installation/stage-1/me.pub": pubkey},
			"is absolute"},
		{"a hook under ~", map[string]string{"user_config.yml": strings.Replace(good, "stage-1/custom/a.sh", "~/a.sh", 1), "installation/stage-1/me.pub": pubkey},
			"installation/~/a.sh does not exist"},
		{"a hook leaving the project", map[string]string{"user_config.yml": strings.Replace(good, "stage-1/custom/a.sh", "../../x.sh", 1), "installation/stage-1/me.pub": pubkey},
			"leaves the installation/ directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			out := filepath.Join(top, "secret")
			outDir := filepath.Join(top, "outdir")
			writeTree(t, top, map[string]string{"secret": canary, "outdir/me.pub": canary, "outdir/custom/a.sh": canary})
			dir := filepath.Join(top, "project")
			files := map[string]string{}
			for n, c := range tc.files {
				files[n] = strings.NewReplacer("@OUTDIR", outDir, "@OUT", out).Replace(c)
			}
			writeTree(t, dir, files)
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			cfg, err := Load(LoadOptions{FS: root.FS()})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if cfg.File != DefaultFile || len(cfg.Stage1.Custom.OnBuild) != 1 {
					t.Fatalf("loaded %q with on_build %q", cfg.File, cfg.Stage1.Custom.OnBuild)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
			leaks := []string{canary}
			if !strings.Contains(files["user_config.yml"], top) {
				// No host path either, unless the config wrote it.
				leaks = append(leaks, top)
			}
			for _, leak := range leaks {
				if strings.Contains(err.Error(), leak) {
					t.Fatalf("the error carries %q from outside the project: %v", leak, err)
				}
			}
		})
	}
}

// The same project loads alike from its directory and through an fs.FS.
func TestLoadFSMatchesDir(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"user_config.yml":                  "stage_1:\n  image:\n    base: debian:bookworm\n    output: x:${TAG:-1}\n  ssh:\n    users:\n      me: {pubkey_file: stage-1/me.pub}\n  custom: {on_build: [stage-1/custom/a.sh]}\n",
		"installation/stage-1/me.pub":      pubkey,
		"installation/stage-1/custom/a.sh": "echo\n",
	})
	fromDir, err := Load(LoadOptions{ProjectDir: dir, File: filepath.Join(dir, DefaultFile)})
	if err != nil {
		t.Fatal(err)
	}
	fromFS, err := Load(LoadOptions{FS: os.DirFS(dir)})
	if err != nil {
		t.Fatal(err)
	}
	if fromDir.Stage1.Image.Output != "x:1" || fromFS.Stage1.Image.Output != fromDir.Stage1.Image.Output {
		t.Fatalf("output %q from the directory, %q through the fs.FS", fromDir.Stage1.Image.Output, fromFS.Stage1.Image.Output)
	}
	if len(fromFS.Stage1.SSH.Users) != 1 || fromFS.Stage1.SSH.Users[0].PubkeyFile != "stage-1/me.pub" {
		t.Fatalf("users %+v", fromFS.Stage1.SSH.Users)
	}
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
