package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/testenv"
)

// A recipe build (pei worker) reads nothing of the worker's: not its
// environment (even when a caller passes a lookup), not a file outside the
// recipe through a link. Build stops before BuildKit on these, so no
// daemon is needed; the accepted cases stop at the (absent) daemon, after
// Configure has written the generated files, which are then inspected.
func TestRecipeBuildReadsOnlyTheRecipe(t *testing.T) {
	const canary = "worker-s3cret-value"
	t.Setenv("PEI_TEST_WORKER_ENV", canary)
	const cfg = "stage_1:\n  image:\n    base: debian:bookworm\n    output: x:${PEI_TEST_WORKER_ENV:-none}\n"
	for _, tc := range []struct {
		name   string
		recipe bool
		files  map[string]string // "->" makes a link; @OUT is outside
		want   string            // in the error; "" means Configure passed
		output string            // the image name the generated files hold
	}{
		{"a local project expands the environment", false, map[string]string{"user_config.yml": cfg}, "", "x:" + canary},
		{"a recipe does not", true, map[string]string{"user_config.yml": cfg}, "", "x:none"},
		{"a recipe's config linked outside", true, map[string]string{"user_config.yml": "->@OUT"}, "user_config.yml: is a symbolic link", ""},
		{"a recipe's hook linked outside", true, map[string]string{
			"user_config.yml":                  cfg + "  custom: {on_build: [stage-1/custom/a.sh]}\n",
			"installation/stage-1/custom/a.sh": "->@OUT",
		}, "cannot read installation/stage-1/custom/a.sh", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			out := filepath.Join(top, "outside.yml")
			if err := os.WriteFile(out, []byte("stage_1:\n  image: {base: debian:bookworm, output: "+canary+"}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(top, "recipe")
			for name, content := range tc.files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if target, ok := strings.CutPrefix(content, "->"); ok {
					err := os.Symlink(strings.ReplaceAll(target, "@OUT", out), p)
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := Build(ctx, Options{Dir: dir, Recipe: tc.recipe, Lookup: os.LookupEnv, Output: OCIOutput(filepath.Join(top, "img.tar")),
				Daemon: Daemon{Builder: "unix://" + filepath.Join(top, "no-buildkitd.sock"), StateDir: filepath.Join(top, "state")}})
			if err == nil {
				t.Fatal("built without a BuildKit daemon")
			}
			if strings.Contains(err.Error(), canary) {
				t.Fatalf("the error carries the worker's secret: %v", err)
			}
			if tc.want != "" {
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want it to say %q", err, tc.want)
				}
				return
			}
			generated := strings.Join(mapValues(testenv.Snapshot(t, dir)), "\n")
			if !strings.Contains(generated, tc.output) {
				t.Fatalf("the generated files do not name %s (error %v)", tc.output, err)
			}
			if tc.recipe && strings.Contains(generated, canary) {
				t.Fatal("the worker's environment reached the recipe's generated files")
			}
		})
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestRecipeSecrets(t *testing.T) {
	stages := func(secs ...plan.Secret) plan.Plan {
		return plan.Plan{Stages: []plan.Stage{{Name: "stage-1", Build: plan.BuildOptions{Secrets: secs}}}}
	}
	worker := map[string]string{"npm": "/etc/pei/npm"}
	for _, tc := range []struct {
		name string
		in   plan.Plan
		want []plan.Secret
		err  string
	}{
		{"from the environment, served by the worker", stages(plan.Secret{ID: "npm", Env: "NPM_TOKEN"}), []plan.Secret{{ID: "npm", File: "/etc/pei/npm"}}, ""},
		{"from an absolute path, served by the worker", stages(plan.Secret{ID: "npm", File: "/home/me/.npmrc"}), []plan.Secret{{ID: "npm", File: "/etc/pei/npm"}}, ""},
		{"from a file in the recipe, kept", stages(plan.Secret{ID: "key", File: "installation/key"}), []plan.Secret{{ID: "key", File: "installation/key"}}, ""},
		{"from the environment, no worker secret", stages(plan.Secret{ID: "gh", Env: "GITHUB_TOKEN"}), nil, "submit with --secret gh"},
		{"from an absolute path, no worker secret", stages(plan.Secret{ID: "gh", File: "/root/.ssh/id_ed25519"}), nil, "submit with --secret gh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.in
			err := recipeSecrets(&p, worker)
			if testenv.WantErr(t, err, tc.err) {
				return
			}
			got := p.Stages[0].Build.Secrets
			if len(got) != len(tc.want) || got[0] != tc.want[0] {
				t.Fatalf("secrets %+v, want %+v", got, tc.want)
			}
		})
	}
}
