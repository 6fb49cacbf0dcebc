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
	want := []string{"apt sources, proxy and system packages", "SSH users", "environment",
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
	two := p.Stages[0].Steps[4]
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
