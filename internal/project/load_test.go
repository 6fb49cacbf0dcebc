package project

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pei-dev/pei/internal/testenv"
)

// TestLoadPolicy: a local project reads the environment and may be reached
// through a link; a recipe reads neither, whatever the caller passes.
func TestLoadPolicy(t *testing.T) {
	const canary = "host-value"
	lookup := func(k string) (string, bool) {
		if k == "PEI_TEST_VAR" {
			return canary, true
		}
		return "", false
	}
	const cfg = "stage_1:\n  image:\n    base: debian:bookworm\n    output: x:${PEI_TEST_VAR:-none}\n"
	top := t.TempDir()
	dir := filepath.Join(top, "My Project")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "user_config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(top, "linked")
	if err := os.MkdirAll(linked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "user_config.yml"), filepath.Join(linked, "user_config.yml")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, tc := range []struct {
		name     string
		opts     LoadOptions
		output   string // stage 1's image
		planName string
		err      string
	}{
		{"local expands", LoadOptions{Policy: Local, Dir: dir, Lookup: lookup}, "x:" + canary, "my-project", ""},
		{"recipe does not", LoadOptions{Policy: Recipe, Dir: dir, Lookup: lookup}, "x:none", "my-project", ""},
		{"the zero policy is a recipe", LoadOptions{Dir: dir, Lookup: lookup}, "x:none", "my-project", ""},
		{"a recipe opened as an fs.FS", LoadOptions{FS: root.FS(), Lookup: lookup}, "x:none", "recipe", ""},
		{"a name given", LoadOptions{Policy: Local, Dir: dir, Name: "other"}, "x:none", "other", ""},
		{"a local config through a link", LoadOptions{Policy: Local, Dir: linked, Lookup: lookup}, "x:" + canary, "linked", ""},
		{"a recipe's config through a link", LoadOptions{Policy: Recipe, Dir: linked}, "", "", "is a symbolic link"},
		{"a recipe that is not there", LoadOptions{Policy: Recipe, Dir: filepath.Join(top, "none")}, "", "", "recipe:"},
		{"an unknown policy", LoadOptions{Policy: Policy(7), Dir: dir}, "", "", "unknown policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Load(tc.opts)
			if testenv.WantErr(t, err, tc.err) {
				return
			}
			if got := p.Config.Stage1.Image.Output; got != tc.output {
				t.Errorf("stage 1 output %q, want %q", got, tc.output)
			}
			if p.Plan.Name != tc.planName {
				t.Errorf("plan name %q, want %q", p.Plan.Name, tc.planName)
			}
			if p.File == "" || len(p.Exclude) == 0 || p.Config.Stage2 == nil {
				t.Errorf("file %q, exclude %v, stage 2 %v: want the config's path, the excludes and the defaults applied", p.File, p.Exclude, p.Config.Stage2)
			}
		})
	}
}
