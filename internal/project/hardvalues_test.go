package project

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"gopkg.in/yaml.v3"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/testenv"
)

// hardPieces are the parts of the hard values: quotes, escapes, every kind
// of $ reference, shell and YAML syntax, control characters, unicode.
var hardPieces = []string{
	`"`, `'`, `\`, `\\`, `$`, `$$`, `${X}`, `$${X}`, `{{X}}`, `$X`, "`id`", `$(id)`, "\n", "\r", "\t",
	"\r\n", "#", ";", "&&", "|", ">", " ", "=", ",", ":", "@", "/", "..", "é", "日本", "\u2028", "\x00",
	"\x7f", "a", "b-c", "x.y", "%", "*", "~", "\\n", "RUN id", "\nRUN touch /pwned",
}

func hardValue(r *rand.Rand) string {
	if r.Intn(20) == 0 {
		return strings.Repeat("a$\"'", 300) // very long
	}
	var b strings.Builder
	for n := 1 + r.Intn(4); n > 0; n-- {
		b.WriteString(hardPieces[r.Intn(len(hardPieces))])
	}
	return b.String()
}

// hardField sets one string field of a config (a YAML tree) to v.
type hardField struct {
	name string
	set  func(c map[string]any, v string)
}

func sect(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}

var hardFields = []hardField{
	{"stage_1.image.base", func(c map[string]any, v string) { sect(c, "stage_1", "image")["base"] = v }},
	{"stage_1.image.output", func(c map[string]any, v string) { sect(c, "stage_1", "image")["output"] = v }},
	{"stage_2.image.output", func(c map[string]any, v string) { sect(c, "stage_2", "image")["output"] = v }},
	{"stage_2.final.output", func(c map[string]any, v string) { sect(c, "stage_2", "final")["output"] = v }},
	{"stage_1.environment value", func(c map[string]any, v string) { sect(c, "stage_1", "environment")["HARD"] = v }},
	{"stage_2.environment value", func(c map[string]any, v string) { sect(c, "stage_2", "environment")["HARD"] = v }},
	{"stage_1.environment key", func(c map[string]any, v string) { sect(c, "stage_1", "environment")[v] = "x" }},
	{"stage_1.custom.on_build args", func(c map[string]any, v string) {
		sect(c, "stage_1", "custom")["on_build"] = []any{"stage-1/custom/a.sh " + v}
	}},
	{"stage_1.custom.on_build script", func(c map[string]any, v string) { sect(c, "stage_1", "custom")["on_build"] = []any{v} }},
	{"stage_1.custom.on_first_run args", func(c map[string]any, v string) {
		sect(c, "stage_1", "custom")["on_first_run"] = []any{"stage-1/custom/a.sh " + v}
	}},
	{"stage_2.custom.on_every_run args", func(c map[string]any, v string) {
		sect(c, "stage_2", "custom")["on_every_run"] = []any{"stage-2/custom/b.sh x " + v}
	}},
	{"stage_2.custom.on_user_login args", func(c map[string]any, v string) {
		sect(c, "stage_2", "custom")["on_user_login"] = []any{"stage-2/custom/b.sh " + v}
	}},
	{"stage_2.custom.on_entry args", func(c map[string]any, v string) {
		sect(c, "stage_2", "custom")["on_entry"] = []any{"stage-2/custom/b.sh " + v}
	}},
	{"stage_1.ssh.users password", func(c map[string]any, v string) { sect(c, "stage_1", "ssh", "users", "me")["password"] = v }},
	{"stage_1.ssh.users name", func(c map[string]any, v string) {
		sect(c, "stage_1", "ssh", "users")[v] = map[string]any{"password": "pw"}
	}},
	{"stage_1.ports", func(c map[string]any, v string) {
		// {{VAR}} in ports is left to Compose unchecked (not this test's part).
		sect(c, "stage_1")["ports"] = []any{strings.NewReplacer("{{", "", "${", "").Replace(v)}
	}},
	{"stage_1.proxy.address", func(c map[string]any, v string) { sect(c, "stage_1", "proxy")["address"] = v }},
	{"stage_1.apt.repo_source", func(c map[string]any, v string) { sect(c, "stage_1", "apt")["repo_source"] = v }},
	{"stage_2.mount.m.dst_path", func(c map[string]any, v string) { sect(c, "stage_2", "mount", "m")["dst_path"] = "/" + v }},
	{"stage_2.mount.m.host_path", func(c map[string]any, v string) { sect(c, "stage_2", "mount", "m")["host_path"] = v }},
}

// hardBase is a config that uses every generated file: ssh, proxy, apt,
// environment, hooks of every kind, a mount and a final image.
func hardBase() map[string]any {
	return map[string]any{
		"stage_1": map[string]any{
			"image":       map[string]any{"base": "debian:bookworm", "output": "hard:stage-1"},
			"ssh":         map[string]any{"users": map[string]any{"me": map[string]any{"password": "pw"}}},
			"proxy":       map[string]any{"address": "proxy.local", "port": 3128, "enable_globally": true},
			"apt":         map[string]any{"repo_source": "tuna"},
			"environment": map[string]any{"PLAIN": "v"},
			"custom":      map[string]any{"on_build": []any{"stage-1/custom/a.sh plain"}},
		},
		"stage_2": map[string]any{
			"image":       map[string]any{"output": "hard:stage-2"},
			"environment": map[string]any{"PLAIN2": "v"},
			"mount":       map[string]any{"m": map[string]any{"type": "host", "host_path": "./m", "dst_path": "/m"}},
			"custom":      map[string]any{"on_every_run": []any{"stage-2/custom/b.sh plain"}},
			"final":       map[string]any{"keep": []any{"/opt", "/srv"}},
		},
	}
}

var positionRe = regexp.MustCompile(`^(.*/)?user_config\.yml:\d+:\d+: `)

// TestHardValues: for random hard values in every string field, a config
// either is refused with errors that name file:line:col, or configures into
// files that parse as their kind with the value where it was given:
// Dockerfiles with BuildKit's parser and the instructions of the same config
// with plain values, docker-compose.yml with compose-go (interpolation on,
// no environment), shell scripts with bash -n and shellcheck.
func TestHardValues(t *testing.T) {
	testenv.Tools(t, "bash", "shellcheck")
	seed := int64(20261130)
	if s := os.Getenv("PEI_HARD_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (PEI_HARD_SEED=%d reruns it)", seed, seed)
	r := rand.New(rand.NewSource(seed))
	checked := map[[32]byte]bool{} // scripts already shellchecked
	plain := configureHard(t, hardBase())
	valid := 0
	for trial := 0; trial < 50; trial++ {
		f := hardFields[r.Intn(len(hardFields))]
		v := hardValue(r)
		c := hardBase()
		f.set(c, v)
		files, dir, err := configureHardErr(t, c)
		what := fmt.Sprintf("seed %d trial %d: %s = %q", seed, trial, f.name, v)
		if err != nil {
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Errorf("%s: not a config error: %v", what, err)
				continue
			}
			for _, e := range errs {
				if !positionRe.MatchString(e.Error()) {
					t.Errorf("%s: error without file:line:col: %v", what, e)
				}
			}
			continue
		}
		valid++
		var scripts []string
		for name, data := range files {
			switch {
			case strings.HasSuffix(name, "Dockerfile"):
				got, err := instructions(data)
				if err != nil {
					t.Errorf("%s: %s does not parse: %v\n%s", what, name, err, data)
				} else if want := plain[name]; want != "" && got != mustInstructions(t, want) {
					t.Errorf("%s: %s has instructions\n%s\nwant\n%s", what, name, got, mustInstructions(t, want))
				}
			case strings.HasSuffix(name, ".sh"):
				sum := sha256.Sum256([]byte(data))
				if checked[sum] {
					continue
				}
				checked[sum] = true
				p := filepath.Join(dir, filepath.FromSlash(name))
				if out, err := exec.Command("bash", "-n", p).CombinedOutput(); err != nil {
					t.Errorf("%s: bash -n %s: %v\n%s", what, name, err, out)
				}
				scripts = append(scripts, p)
			}
		}
		if len(scripts) > 0 {
			// One shellcheck for the trial's new scripts: it is the slow part.
			args := append([]string{"-s", "bash", "-S", "warning", "-e", "SC1090,SC1091,SC2034,SC2317"}, scripts...)
			if out, err := exec.Command("shellcheck", args...).CombinedOutput(); err != nil {
				t.Errorf("%s: shellcheck:\n%s", what, out)
			}
		}
		checkCompose(t, what, dir, f.name)
	}
	t.Logf("%d of 50 configs were valid", valid)
}

// checkCompose loads docker-compose.yml and, for an environment value,
// checks Compose yields the value the config gives the image ({{VAR}},
// unset here, as empty).
func checkCompose(t *testing.T, what, dir, field string) {
	t.Helper()
	proj, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("hard", true); o.Profiles = []string{"*"} })
	if err != nil {
		data, _ := os.ReadFile(filepath.Join(dir, "docker-compose.yml"))
		t.Errorf("%s: compose-go cannot load docker-compose.yml: %v\n%s", what, err, data)
		return
	}
	if !strings.HasSuffix(field, "environment value") {
		return
	}
	c, err := config.Load(config.LoadOptions{ProjectDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	env := c.Stage1.Environment
	if strings.HasPrefix(field, "stage_2") {
		env = c.Stage2.Environment
	}
	for _, e := range env {
		if e.Name != "HARD" {
			continue
		}
		want := e.Value
		for i := len(e.RunRefs) - 1; i >= 0; i-- {
			sp := e.RunRefs[i]
			want = want[:sp.Start] + want[sp.End:]
		}
		s, _ := proj.GetService("stage-2")
		if got := s.Environment["HARD"]; got == nil || *got != want {
			t.Errorf("%s: Compose gives HARD=%v, want %q", what, got, want)
		}
	}
}

func configureHard(t *testing.T, c map[string]any) map[string]string {
	files, _, err := configureHardErr(t, c)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// configureHardErr writes c into a new project with its hook scripts and
// configures it, returning the generated files by project-relative path.
func configureHardErr(t *testing.T, c map[string]any) (map[string]string, string, error) {
	t.Helper()
	dir := t.TempDir()
	for _, s := range []string{"stage-1/custom/a.sh", "stage-2/custom/b.sh"} {
		p := filepath.Join(dir, config.InstallDir, s)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, config.DefaultFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Configure(ConfigureOptions{Policy: Local, Dir: dir, WithMerged: true, Lookup: noEnv})
	if err != nil {
		return nil, dir, err
	}
	files := map[string]string{}
	for _, f := range res.Files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	return files, dir, nil
}

// instructions lists a Dockerfile's instructions with their flags, one a
// line: what a value must not change.
func instructions(df string) (string, error) {
	res, err := parser.Parse(strings.NewReader(df))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, n := range res.AST.Children {
		fmt.Fprintf(&b, "%s %d\n", n.Value, len(n.Flags))
	}
	return b.String(), nil
}

func mustInstructions(t *testing.T, df string) string {
	s, err := instructions(df)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
