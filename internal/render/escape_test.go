package render_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/render"
	"github.com/pei-dev/pei/internal/testenv"
)

// renderYAML renders a config given as text, in a project with the hook
// scripts it names.
func renderYAML(t *testing.T, yml string, scripts ...string) (map[string]string, string) {
	t.Helper()
	dir := t.TempDir()
	for _, s := range scripts {
		p := filepath.Join(dir, "installation", filepath.FromSlash(s))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("#!/bin/bash\n"), 0o644)
	}
	cfg, err := config.Parse([]byte(yml), "user_config.yml", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.New(config.WithDefaults(cfg), "esc")
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(p, render.Options{WithMerged: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		out[f.Path] = string(f.Data)
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f.Path)), 0o755)
		os.WriteFile(filepath.Join(dir, f.Path), f.Data, os.FileMode(f.Mode))
	}
	return out, dir
}

// TestEnvDollarBraces: $${VAR} is literal ${VAR} in the image, in Compose
// and in run-merged.sh; {{VAR}} is resolved by Compose and by run-merged.sh
// from their environment, empty with a warning when unset (as Compose does).
func TestEnvDollarBraces(t *testing.T) {
	files, dir := renderYAML(t, "stage_1:\n  image: {base: debian, output: 'e:1'}\n  environment: {LIT: 'a$${HOME}b', RUN: 'x{{PEI_UNSET_VAR}}y', BOTH: '$${V}{{V}}'}\n")
	proj, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: types.Mapping{"V": "v", "HOME": "/h"},
	}, func(o *loader.Options) { o.SetProjectName("esc", true); o.Profiles = []string{"*"} })
	if err != nil {
		t.Fatal(err)
	}
	s, _ := proj.GetService("stage-1")
	for name, want := range map[string]string{"LIT": "a${HOME}b", "RUN": "xy", "BOTH": "${V}v"} {
		if got := s.Environment[name]; got == nil || *got != want {
			t.Errorf("compose %s = %v, want %q", name, got, want)
		}
	}
	if df := files["stage-1.Dockerfile"]; !strings.Contains(df, `LIT="a\${HOME}b"`) {
		t.Errorf("image LIT:\n%s", df)
	}

	// run-merged.sh with a docker that prints its arguments.
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "docker"), []byte("#!/bin/sh\nprintf '%s\\n' \"$@\"\n"), 0o755)
	cmd := exec.Command("sh", filepath.Join(dir, "run-merged.sh"))
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "V=v"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run-merged.sh: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"LIT=a${HOME}b\n", "RUN=xy\n", "BOTH=${V}v\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run-merged.sh passes no %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), `The "PEI_UNSET_VAR" variable is not set. Defaulting to a blank string.`) || strings.Contains(stderr.String(), `"V"`) {
		t.Errorf("warnings: %q", stderr.String())
	}
}

// TestHookArgsRun: hook arguments reach the script as the config writes
// them, variables expanded when the hook runs, in hooks.sh and in the
// on_build step's command.
func TestHookArgsRun(t *testing.T) {
	testenv.Tools(t, "bash")
	files, _ := renderYAML(t, "stage_1:\n  image: {base: debian}\n  custom:\n"+
		"    on_build: ['stage-1/custom/a.sh --d=$HOME/x \"i\\j\" ''$HOME'' \"a b\"']\n"+
		"    on_every_run: ['stage-1/custom/a.sh --d=$HOME/x \"i\\j\" ''$HOME'' \"a b\"']\n", "stage-1/custom/a.sh")
	want := "--d=/h/x|i\\j|$HOME|a b|"
	// on_build: the RUN's JSON argv, run as BuildKit would.
	df := files["stage-1.Dockerfile"]
	res, err := parser.Parse(strings.NewReader(df))
	if err != nil {
		t.Fatal(err)
	}
	var argv []string
	for _, n := range res.AST.Children {
		var a []string
		for c := n.Next; c != nil; c = c.Next {
			a = append(a, c.Value)
		}
		if strings.EqualFold(n.Value, "run") && len(a) > 2 && a[1] == "-c" {
			argv = a
		}
	}
	if len(argv) < 3 || argv[0] != "bash" || argv[1] != "-c" {
		t.Fatalf("on_build argv = %q\n%s", argv, df)
	}
	// Replace the run-hook call by a printer of its arguments.
	script := strings.Replace(argv[2], "exec bash /pei-init/stage-1/internals/lib.sh run-hook user_config.yml:4 /pei-init/stage-1/custom/a.sh", "printf '%s|'", 1)
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = []string{"HOME=/h"}
	out, err := cmd.Output()
	if err != nil || string(out) != want {
		t.Errorf("on_build args = %q (%v), want %q; script %s", out, err, want, argv[2])
	}
	// on_every_run: hooks.sh, with pei_run_hook printing its arguments.
	hooks := files["installation/stage-1/internals/hooks.sh"]
	cmd = exec.Command("bash", "-c", "pei_run_hook() { shift 2; printf '%s|' \"$@\"; }\n"+hooks+"\npei_hooks_every_run_1")
	cmd.Env = []string{"HOME=/h"}
	out, err = cmd.Output()
	if err != nil || string(out) != want {
		t.Errorf("on_every_run args = %q (%v), want %q", out, err, want)
	}
}

// TestDockerfileWords: a value that could end a Dockerfile line or word is
// quoted or refused by the renderer itself, not only by validation.
func TestDockerfileWords(t *testing.T) {
	files, _ := renderYAML(t, "stage_1:\n  image: {base: debian}\n  custom:\n    on_build: ['\"stage-1/my dir/a,b.sh\" x']\n", "stage-1/my dir/a,b.sh")
	res, err := parser.Parse(strings.NewReader(files["stage-1.Dockerfile"]))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range res.AST.Children {
		for _, f := range n.Flags {
			if strings.Contains(f, "my dir") {
				found = true
				if f != `--mount=type=bind,"source=installation/stage-1/my dir/a,b.sh","target=/pei-init/stage-1/my dir/a,b.sh",rw` {
					t.Errorf("mount flag = %s", f)
				}
			}
		}
	}
	if !found {
		t.Errorf("no mount of the hook script:\n%s", files["stage-1.Dockerfile"])
	}
	for _, tc := range []struct {
		name string
		p    plan.Plan
	}{
		{"base with a newline", plan.Plan{Name: "x", Stages: []plan.Stage{{Name: "stage-1", Base: "x\nRUN id", Root: "/r"}}}},
		{"env value with a newline", plan.Plan{Name: "x", Stages: []plan.Stage{{Name: "stage-1", Base: "x", Root: "/r",
			Steps: []plan.Step{{Kind: plan.StepEnv, Env: []config.EnvVar{{Name: "A", Value: "1\nRUN id"}}}}}}}},
	} {
		if out, err := render.Dockerfile(tc.p, tc.p.Stages[0], "user_config.yml", false); err == nil {
			t.Errorf("%s: rendered\n%s", tc.name, out)
		}
	}
	// A title is a comment: a newline in it cannot start an instruction.
	p := plan.Plan{Name: "x", Stages: []plan.Stage{{Name: "stage-1", Base: "x", Root: "/r",
		Steps: []plan.Step{{Kind: plan.StepRun, Title: "t\nRUN id", Command: []string{"true"}}}}}}
	out, err := render.Dockerfile(p, p.Stages[0], "user_config.yml", false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "\nRUN id") {
		t.Errorf("a title added an instruction:\n%s", out)
	}
}
