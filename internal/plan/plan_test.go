package plan

import (
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/config"
)

func newPlan(t *testing.T, yml string) Plan {
	t.Helper()
	cfg, err := config.Parse([]byte(yml), "user_config.yml", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(config.WithDefaults(cfg), "proj")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Steps are ordered by how often their inputs change, and each on_build
// script is a step of its own that binds only its own file.
func TestStepOrder(t *testing.T) {
	p := newPlan(t, `
stage_1:
  image: {base: debian:bookworm}
  ssh: {users: {me: {password: x}}}
  environment: ['A=1']
  custom:
    on_build: ['stage-1/custom/one.sh', 'stage-1/custom/two.sh --flag']
    on_every_run: ['stage-1/custom/every.sh']
stage_2:
  custom:
    on_build: ['stage-2/custom/three.sh']
`)
	var got []string
	for _, s := range p.Stages[0].Steps {
		got = append(got, s.Title)
	}
	want := []string{"PeiDocker's path variables", "apt sources, proxy and system packages", "SSH users", "environment",
		"on_build: stage-1/custom/one.sh", "on_build: stage-1/custom/two.sh --flag",
		"project files and run-time hooks", "finish the stage"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("stage-1 steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range p.Stages[0].Steps {
		if s.Runtime != (s.Kind == StepCopy || s.Title == "finish the stage") {
			t.Errorf("%s: Runtime = %v", s.Title, s.Runtime)
		}
		if !strings.HasPrefix(s.Title, "on_build:") {
			continue
		}
		for _, m := range s.Mounts {
			if m.Kind == MountBind && strings.Contains(m.Source, "/custom/") && !strings.Contains(s.Title, strings.TrimPrefix(m.Source, "installation/")) {
				t.Errorf("%s binds another script: %s", s.Title, m.Source)
			}
		}
	}
	two := p.Stages[0].Steps[5]
	if got := strings.Join(two.Command, " "); got != "bash /pei-init/stage-1/internals/lib.sh run-hook user_config.yml:7 /pei-init/stage-1/custom/two.sh --flag" {
		t.Errorf("on_build command: %s", got)
	}
	if p.Stages[1].BaseStage != 1 || p.Stages[1].Base != "pei-image:stage-1" {
		t.Errorf("stage-2 base: %q (stage %d)", p.Stages[1].Base, p.Stages[1].BaseStage)
	}
	if hooks := p.Stages[0].Script.Hooks.EveryRun; len(hooks) != 1 || hooks[0].Script != "/pei-init/stage-1/custom/every.sh" || hooks[0].Where != "user_config.yml:8" {
		t.Errorf("every-run hooks: %+v", hooks)
	}
}

// Passwords reach the plan only as hashes; run-time ports include SSH.
func TestUsersAndPorts(t *testing.T) {
	p := newPlan(t, `
stage_1:
  image: {base: debian:bookworm}
  ssh: {host_port: 2222, users: {me: {password: 'plain text'}}}
  ports: ['8080:80']
stage_2:
  ports: ['9090:90']
`)
	u := p.Stages[0].Script.Users[0]
	if !strings.HasPrefix(u.PasswordHash, "$6$") || strings.Contains(u.PasswordHash, "plain text") {
		t.Errorf("password hash %q", u.PasswordHash)
	}
	if got := strings.Join(p.Stages[1].Run.Ports, " "); got != "2222:22 8080:80 9090:90" {
		t.Errorf("stage-2 ports: %s", got)
	}
	if got := strings.Join(p.Stages[0].Run.Profiles, " "); got != "stage-1" {
		t.Errorf("stage-1 profiles: %s", got)
	}
}

// The final image has the stages' setup without their on_build steps, the
// run-time packages before stage-2's steps, the kept paths, and the
// run-time steps last; its carry runs on stage-2's image.
func TestFinal(t *testing.T) {
	p := newPlan(t, `
stage_1:
  image: {base: debian:bookworm, output: 'app:stage-1'}
  ssh: {users: {me: {password: x}}}
  environment: ['A=1']
  custom:
    on_build: ['stage-1/custom/tools.sh']
stage_2:
  image: {output: 'app:stage-2'}
  custom:
    on_build: ['stage-2/custom/compile.sh']
  final:
    base: debian:bookworm-slim
    keep: [/opt/app]
    apt: [libgomp1]
    strip: [docs, debug]
`)
	f := p.Final
	if f == nil {
		t.Fatal("no final stage")
	}
	if f.Base != "debian:bookworm-slim" || f.Output != "app:final" || f.BaseStage != 0 || f.Root != p.Stages[1].Root {
		t.Errorf("final: base %q output %q base stage %d root %q", f.Base, f.Output, f.BaseStage, f.Root)
	}
	var got []string
	for _, s := range f.Steps {
		got = append(got, s.Title)
	}
	want := []string{"leave out docs", "PeiDocker's path variables", "apt sources, proxy and system packages", "SSH users", "environment", "run-time packages",
		"PeiDocker's path variables", "storage directories", "kept paths of stage-2",
		"project files and run-time hooks", "finish the stage", "project files and run-time hooks", "finish the stage"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("final steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if f.Steps[5].Command[len(f.Steps[5].Command)-1] != "libgomp1" {
		t.Errorf("run-time packages: %v", f.Steps[5].Command)
	}
	if f.Carry == nil || f.Carry.From != 2 || len(f.Carry.Steps) != 1 || f.Carry.Steps[0].Mounts[0].Source != "installation/stage-2/internals/carry.sh" {
		t.Errorf("carry: %+v", f.Carry)
	}
	if fs := f.Script.Final; fs == nil || !fs.StripDebug || len(fs.Keep) != 1 {
		t.Errorf("carry script data: %+v", fs)
	}
	if len(f.Build.Secrets) != 0 {
		t.Errorf("the final image has no on_build step, yet build secrets: %v", f.Build.Secrets)
	}
	if newPlan(t, "stage_1:\n  image: {base: debian:bookworm}\n").Final != nil {
		t.Errorf("a final stage without stage_2.final")
	}
}

// Each stage's image sets PeiDocker's variables for its paths (stage-2:
// its storage), with PeiDocker's values, in an env step before any script
// runs, and SSH sessions get them; a configured variable of the same name
// is passed once and, set later, wins.
func TestPeiDockerEnv(t *testing.T) {
	p := newPlan(t, `
stage_1:
  image: {base: debian:bookworm}
stage_2:
  environment: ['PEI_SOFT_DATA=/elsewhere']
`)
	for _, tc := range []struct {
		stage      int
		name, want string
	}{
		{0, "PEI_STAGE_DIR_1", "/pei-init/stage-1"},
		{1, "PEI_STAGE_DIR_2", "/pei-init/stage-2"},
		{1, "PEI_PREFIX_DATA", "data"},
		{1, "PEI_PREFIX_APPS", "app"},
		{1, "PEI_PREFIX_WORKSPACE", "workspace"},
		{1, "PEI_PREFIX_VOLUME", "volume"},
		{1, "PEI_PREFIX_IMAGE", "image"},
		{1, "PEI_PATH_HARD", "/hard"},
		{1, "PEI_PATH_SOFT", "/soft"},
		{1, "PEI_SOFT_APPS", "/soft/app"},
		{1, "PEI_SOFT_WORKSPACE", "/soft/workspace"},
		{1, "PEI_SOFT_DATA", "/soft/data"},
	} {
		s := p.Stages[tc.stage]
		first := s.Steps[0]
		got, found := "", false
		for _, e := range first.Env {
			if e.Name == tc.name {
				got, found = e.Value, true
			}
		}
		if first.Kind != StepEnv || !found || got != tc.want {
			t.Errorf("%s: first step %s %q sets %s=%q (set: %v), want %q", s.Name, first.Kind, first.Title, tc.name, got, found, tc.want)
		}
		if n := strings.Count(" "+strings.Join(s.Script.EnvNames, " ")+" ", " "+tc.name+" "); n != 1 {
			t.Errorf("%s: %s is passed to SSH sessions %d times: %v", s.Name, tc.name, n, s.Script.EnvNames)
		}
	}
}

// Composed images keep the order written, and configure says how to build
// them.
func TestComposeOrder(t *testing.T) {
	p := newPlan(t, `
stage_1:
  image: {base: debian:bookworm}
compose:
  zeta: {output: 'z:1', layers: [{image: 'a:1'}]}
  alpha: {output: 'a:2', layers: [{image: 'b:1'}, {diff: {lower: 'c:1', upper: 'd:1'}, exclude: [/build]}]}
`)
	if len(p.Compose) != 2 || p.Compose[0].Name != "zeta" || p.Compose[1].Name != "alpha" || p.Compose[1].Layers[1].Diff.Upper.Raw != "d:1" {
		t.Fatalf("compose: %+v", p.Compose)
	}
	if len(p.Notes) != 2 || !strings.Contains(p.Notes[1], "pei build --stage alpha") {
		t.Errorf("notes: %q", p.Notes)
	}
}

// Exactly the steps of on_build hooks are marked OnBuild, whatever their
// titles and origins say; the final image has none of them.
func TestOnBuildMarked(t *testing.T) {
	p := newPlan(t, `
stage_1:
  image: {base: debian:bookworm}
  ssh: {users: {me: {password: x}}}
  environment: ['A=1']
  custom:
    on_build: ['stage-1/custom/one.sh', 'stage-1/custom/two.sh "an arg"']
    on_first_run: ['stage-1/custom/first.sh']
secrets:
  token: {env: TOKEN}
stage_2:
  custom:
    on_build: ['stage-2/custom/three.sh']
    on_every_run: ['stage-2/custom/every.sh']
  final: {keep: [/opt/app], apt: [libgomp1]}
`)
	for _, tc := range []struct {
		stage Stage
		want  []string // origins of the OnBuild steps
	}{
		{p.Stages[0], []string{"stage_1.custom.on_build[0]", "stage_1.custom.on_build[1]"}},
		{p.Stages[1], []string{"stage_2.custom.on_build[0]"}},
		{*p.Final, nil},
	} {
		var got []string
		for _, s := range tc.stage.Steps {
			if s.OnBuild {
				got = append(got, s.Origin)
				if s.Kind != StepRun || !strings.HasPrefix(s.Title, "on_build: ") {
					t.Errorf("%s: %s step %q is marked OnBuild", tc.stage.Name, s.Kind, s.Title)
				}
			} else if strings.HasPrefix(s.Title, "on_build: ") {
				t.Errorf("%s: step %q is not marked OnBuild", tc.stage.Name, s.Title)
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: OnBuild steps %q, want %q", tc.stage.Name, got, tc.want)
		}
	}
	if p.Final.Carry.Steps[0].OnBuild {
		t.Error("the carry step is marked OnBuild")
	}
	if got := p.Stages[0].Steps[5].Command; strings.Join(got[len(got)-2:], "|") != "/pei-init/stage-1/custom/two.sh|an arg" {
		t.Errorf("two.sh runs as %q", got)
	}
}

// A base given as an OCI layout reaches the plan in its parsed form, and
// the stage's Base is the name the generated Dockerfile uses for it.
func TestBaseLayout(t *testing.T) {
	for _, tc := range []struct {
		base, wantBase string
		want           *config.LayoutRef
	}{
		{"debian:bookworm", "debian:bookworm", nil},
		{"oci-layout://bases/deb", "pei-layout/bases-deb:latest", &config.LayoutRef{Path: "bases/deb"}},
		{"oci-layout://bases/deb:v1", "pei-layout/bases-deb:v1", &config.LayoutRef{Path: "bases/deb", Tag: "v1"}},
	} {
		p := newPlan(t, "stage_1:\n  image: {base: '"+tc.base+"'}\nstage_2:\n  final: {keep: [/opt/app]}\n")
		for _, s := range []Stage{p.Stages[0], *p.Final} {
			if s.Base != tc.wantBase || (s.BaseLayout == nil) != (tc.want == nil) || (tc.want != nil && *s.BaseLayout != *tc.want) {
				t.Errorf("%s of %s: base %q, layout %+v; want %q, %+v", s.Name, tc.base, s.Base, s.BaseLayout, tc.wantBase, tc.want)
			}
		}
		if p.Stages[1].BaseLayout != nil || p.Stages[1].BaseStage != 1 {
			t.Errorf("stage-2 of %s: layout %+v, base stage %d", tc.base, p.Stages[1].BaseLayout, p.Stages[1].BaseStage)
		}
	}
}

// Each stage's container gets its own stage's mounts (PeiDocker's meaning),
// named as PeiDocker names them; stage_1.storage has no effect but a note.
func TestStageMounts(t *testing.T) {
	p := newPlan(t, `
stage_1:
  image: {base: debian:bookworm}
  storage: {app: {type: auto-volume}}
  mount:
    apt_cache: {type: auto-volume, dst_path: /var/cache/apt}
    shared: {type: manual-volume, volume_name: team-data, dst_path: /shared}
stage_2:
  storage: {data: {type: auto-volume}}
  mount:
    home: {type: host, host_path: /srv/home, dst_path: /home/me}
`)
	vols := func(s Stage) string {
		var out []string
		for _, v := range s.Run.Volumes {
			out = append(out, string(v.Kind)+" "+v.Key+" "+v.Source+" "+v.Target)
		}
		return strings.Join(out, "\n")
	}
	for _, tc := range []struct {
		stage Stage
		want  string
	}{
		{p.Stages[0], "auto-volume mount_apt_cache mount_apt_cache /var/cache/apt\nmanual-volume mount_shared team-data /shared"},
		{p.Stages[1], "auto-volume data data /hard/volume/data\nhost mount_home /srv/home /home/me"},
	} {
		if got := vols(tc.stage); got != tc.want {
			t.Errorf("%s volumes:\n%s\nwant:\n%s", tc.stage.Name, got, tc.want)
		}
	}
	if !strings.Contains(strings.Join(p.Notes, "\n"), "stage_1.storage has no effect") {
		t.Errorf("no note for stage_1.storage: %q", p.Notes)
	}
}

// pei build names the images as Compose would: each {{VAR}} from its
// environment, else its default; the plan it was given is unchanged.
func TestResolveImages(t *testing.T) {
	p := newPlan(t, `
stage_1:
  image: {base: '{{BASE:-debian:bookworm}}', output: 'app:{{TAG:-dev}}'}
stage_2:
  image: {output: 'app:{{TAG:-dev}}-2'}
  final: {output: 'app:{{TAG}}-final', keep: [/opt/app]}
compose:
  rt: {output: 'rt:{{TAG:-dev}}', layers: [{image: 'app:{{TAG:-dev}}'}]}
`)
	env := map[string]string{"TAG": "v2"}
	for _, tc := range []struct {
		lookup config.LookupFunc
		want   string
	}{
		{nil, "debian:bookworm app:dev | app:dev app:dev-2 | debian:bookworm app:-final | rt:dev app:dev"},
		{func(k string) (string, bool) { v, ok := env[k]; return v, ok }, "debian:bookworm app:v2 | app:v2 app:v2-2 | debian:bookworm app:v2-final | rt:v2 app:v2"},
	} {
		r := p.ResolveImages(tc.lookup)
		got := strings.Join([]string{
			r.Stages[0].Base + " " + r.Stages[0].Output, r.Stages[1].Base + " " + r.Stages[1].Output,
			r.Final.Base + " " + r.Final.Output, r.Compose[0].Output + " " + r.Compose[0].Layers[0].Image.Raw,
		}, " | ")
		if got != tc.want {
			t.Errorf("resolved: %s\nwant:     %s", got, tc.want)
		}
	}
	if p.Stages[0].Output != "app:${TAG:-dev}" || p.Final.Output != "app:${TAG}-final" || p.Compose[0].Layers[0].Image.Raw != "app:${TAG:-dev}" {
		t.Errorf("ResolveImages changed the plan it was given: %s %s %s", p.Stages[0].Output, p.Final.Output, p.Compose[0].Layers[0].Image.Raw)
	}
}
