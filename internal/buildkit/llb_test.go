package buildkit

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
)

func testPlan(t *testing.T) plan.Plan {
	t.Helper()
	return planOf(t, `
stage_1:
  image: {base: debian:bookworm}
  ssh:
    users:
      me: {password: 'hunter2 secret', privkey_text: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBhgDnbjp2OAOhxtgnnBXhdLIapyxDOJyBm4kdaY7ZkywAAAJjZDQTS2Q0E\n0gAAAAtzc2gtZWQyNTUxOQAAACBhgDnbjp2OAOhxtgnnBXhdLIapyxDOJyBm4kdaY7Zkyw\nAAAEBb8dvs5VsVQKeX4bJ0Ai8Mr7aLQSlgKKYX3Fm5OW3x+GGAOduOnY4A6HG2CecFeF0s\nhqnLEM4nIGbiR1pjtmTLAAAAEHRlc3RAZXhhbXBsZS5jb20BAgMEBQ==\n-----END OPENSSH PRIVATE KEY-----\n"}
  environment: {A: '1'}
  custom:
    on_build: ['stage-1/custom/a.sh x', 'stage-1/custom/b.sh']
stage_2:
  environment: {B: '2'}
`)
}

// planOf plans a config given as YAML.
func planOf(t *testing.T, yml string) plan.Plan {
	t.Helper()
	cfg, err := config.Parse([]byte(yml), "user_config.yml", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.New(config.WithDefaults(cfg), "t")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type execInfo struct {
	args     []string
	hostname string
	mounts   []*pb.Mount
	secrets  []string
}

func execs(t *testing.T, st llb.State) []execInfo {
	t.Helper()
	def, err := st.Marshal(context.Background(), llb.LinuxAmd64)
	if err != nil {
		t.Fatal(err)
	}
	var out []execInfo
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		if e := op.GetExec(); e != nil {
			info := execInfo{args: e.Meta.Args, mounts: e.Mounts, hostname: e.Meta.Hostname}
			for _, m := range e.Mounts {
				if m.SecretOpt != nil {
					info.secrets = append(info.secrets, m.SecretOpt.ID)
				}
			}
			out = append(out, info)
		}
		for _, b := range [][]byte{dt} {
			if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "b3BlbnNzaC1rZXktdjE") {
				t.Errorf("a secret is in the LLB definition")
			}
		}
	}
	return out
}

// The LLB has one exec per planned run step, each binding exactly the files
// the plan names, and secrets only as secret mounts.
func TestStageLLB(t *testing.T) {
	p := testPlan(t)
	ctx := Context("t", nil)
	base := llb.Image("docker.io/library/debian:bookworm")
	st1, cfg1 := StageLLB(p.Stages[0], base, ocispecs.Image{}, ctx, llb.Scratch(), []string{"token"}, nil, "")
	st2, cfg2 := StageLLB(p.Stages[1], st1, cfg1, ctx, llb.Scratch(), nil, nil, "")

	runs := 0
	for _, s := range p.Stages[0].Steps {
		if s.Kind == plan.StepRun {
			runs++
		}
	}
	e1 := execs(t, st1)
	if len(e1) != runs {
		t.Fatalf("stage-1: %d execs, plan has %d run steps", len(e1), runs)
	}
	var sawUserSecret, sawKeySecret int
	for _, e := range e1 {
		joined := strings.Join(e.args, " ")
		for _, s := range e.secrets {
			switch s {
			case "token":
				sawUserSecret++
				if !strings.Contains(joined, "run-hook") {
					t.Errorf("the user secret is mounted in a non-on_build step: %s", joined)
				}
			case "pei_privkey_me":
				sawKeySecret++
			}
		}
		if strings.Contains(joined, "custom/a.sh") {
			var selectors []string
			for _, m := range e.mounts {
				if m.Selector != "" {
					selectors = append(selectors, m.Selector)
				}
			}
			sort.Strings(selectors)
			want := "/installation/stage-1/custom/a.sh /installation/stage-1/internals/lib.sh /installation/stage-1/system /installation/stage-1/tmp"
			if got := strings.Join(selectors, " "); got != want {
				t.Errorf("on_build a.sh binds %q, want %q", got, want)
			}
		}
	}
	if sawUserSecret != 2 || sawKeySecret != 1 {
		t.Errorf("user secret in %d steps (want 2 on_build), key secret in %d (want 1)", sawUserSecret, sawKeySecret)
	}
	if got := strings.Join(cfg2.Config.Env, " "); !strings.Contains(got, "A=1") || !strings.Contains(got, "B=2") || !strings.HasPrefix(got, "PATH=") {
		t.Errorf("stage-2 env = %s", got)
	}
	if got := strings.Join(cfg2.Config.Entrypoint, " "); got != "bash /pei-init/stage-2/internals/entrypoint.sh" {
		t.Errorf("entrypoint = %s", got)
	}
	if len(execs(t, st2)) <= len(e1) {
		t.Errorf("stage-2 does not build on stage-1's LLB")
	}
	// Every layer-making step has a history entry naming its origin.
	var origins int
	for _, h := range cfg1.History {
		if strings.Contains(h.CreatedBy, "stage_1.custom.on_build[1], line 9") {
			origins++
		}
	}
	if origins != 1 {
		t.Errorf("history lacks the on_build origin: %+v", cfg1.History)
	}
}

// pei build's images carry PeiDocker's path variables as the Dockerfile
// does: in the image config, and in the environment of the run steps after
// them (so an on_build argument $PEI_SOFT_DATA expands as PeiDocker's).
func TestPeiDockerEnvLLB(t *testing.T) {
	p := testPlan(t)
	ctx := Context("t", nil)
	st1, cfg1 := StageLLB(p.Stages[0], llb.Image("docker.io/library/debian:bookworm"), ocispecs.Image{}, ctx, llb.Scratch(), nil, nil, "")
	st2, cfg2 := StageLLB(p.Stages[1], st1, cfg1, ctx, llb.Scratch(), nil, nil, "")
	def, err := st2.Marshal(context.Background(), llb.LinuxAmd64)
	if err != nil {
		t.Fatal(err)
	}
	var lastEnv []string // the environment of stage-2's last exec
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		if e := op.GetExec(); e != nil && strings.Contains(strings.Join(e.Meta.Args, " "), "stage-2") {
			lastEnv = e.Meta.Env
		}
	}
	for _, want := range []string{"PEI_STAGE_DIR_1=/pei-init/stage-1", "PEI_STAGE_DIR_2=/pei-init/stage-2", "PEI_PATH_HARD=/hard", "PEI_PATH_SOFT=/soft",
		"PEI_SOFT_APPS=/soft/app", "PEI_SOFT_DATA=/soft/data", "PEI_SOFT_WORKSPACE=/soft/workspace", "PEI_PREFIX_VOLUME=volume", "PEI_PREFIX_IMAGE=image"} {
		if !strings.Contains(" "+strings.Join(cfg2.Config.Env, " ")+" ", " "+want+" ") {
			t.Errorf("stage-2 image config lacks %s: %v", want, cfg2.Config.Env)
		}
		if !strings.Contains(" "+strings.Join(lastEnv, " ")+" ", " "+want+" ") {
			t.Errorf("stage-2 run steps lack %s: %v", want, lastEnv)
		}
	}
}

// The same plan gives the same LLB digest (no map order, no time).
func TestStageLLBDeterministic(t *testing.T) {
	digest := func() string {
		p := testPlan(t)
		st, _ := StageLLB(p.Stages[0], llb.Image("debian:bookworm"), ocispecs.Image{}, Context("t", nil), llb.Scratch(), []string{"b", "a"}, nil, "")
		def, err := st.Marshal(context.Background(), llb.LinuxAmd64)
		if err != nil {
			t.Fatal(err)
		}
		var sums []string
		for _, d := range def.Def {
			sums = append(sums, digest.FromBytes(d).String())
		}
		sort.Strings(sums) // the list's order is not part of the graph
		return strings.Join(sums, " ")
	}
	if a, b := digest(), digest(); a != b {
		t.Fatal("two marshals of the same plan differ")
	}
}

// Stage-2 built on stage-1 without its run-time steps applies them after its
// own build steps: stage-1's hooks come last but one, before stage-2's.
func TestCarriedRuntimeSteps(t *testing.T) {
	p := testPlan(t)
	ctx := Context("t", nil)
	s1 := p.Stages[0]
	pre := s1
	pre.Steps, _ = SplitRuntime(s1.Steps)
	st1, cfg1 := StageLLB(pre, llb.Image("debian:bookworm"), ocispecs.Image{}, ctx, llb.Scratch(), nil, nil, "")
	_, cfg2 := StageLLB(p.Stages[1], st1, cfg1, ctx, llb.Scratch(), nil, []plan.Stage{s1}, "")
	var order []string
	for _, h := range cfg2.History {
		order = append(order, strings.TrimPrefix(h.CreatedBy, "pei "))
	}
	got := strings.Join(order, "\n")
	want := []string{"[stage-2] environment", "[stage-1] project files", "[stage-1] finish", "[stage-2] project files", "[stage-2] finish"}
	at := 0
	for _, w := range want {
		i := strings.Index(got[at:], w)
		if i < 0 {
			t.Fatalf("history order: want %q after position %d in:\n%s", w, at, got)
		}
		at += i
	}
}

// The final image copies /pei-carry of the carry state, and none of the
// stages' on_build steps runs in it.
func TestFinalLLB(t *testing.T) {
	p := planOf(t, `
stage_1:
  image: {base: debian:bookworm}
  custom:
    on_build: ['stage-1/custom/tools.sh']
stage_2:
  custom:
    on_build: ['stage-2/custom/compile.sh']
  final: {keep: [/opt/app]}
`)
	carry := llb.Image("docker.io/library/busybox:latest").Run(llb.Args([]string{"carry-marker"})).Root()
	st, _ := StageLLB(*p.Final, llb.Image("docker.io/library/debian:bookworm"), ocispecs.Image{}, Context("t", nil), carry, nil, nil, "")
	def, err := st.Marshal(context.Background(), llb.LinuxAmd64)
	if err != nil {
		t.Fatal(err)
	}
	copies, sawCarry := 0, false
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		if e := op.GetExec(); e != nil {
			args := strings.Join(e.Meta.Args, " ")
			sawCarry = sawCarry || args == "carry-marker"
			if strings.Contains(args, "custom/") {
				t.Errorf("an on_build step runs in the final image: %s", args)
			}
		}
		if f := op.GetFile(); f != nil {
			for _, a := range f.Actions {
				if c := a.GetCopy(); c != nil && c.Src == plan.CarryDir && c.Dest == "/" && c.DirCopyContents {
					copies++
				}
			}
		}
	}
	if copies != 1 || !sawCarry {
		t.Errorf("copies of %s/ to /: %d, carry state in the graph: %v", plan.CarryDir, copies, sawCarry)
	}
}

// Build secrets are mounted in the steps the plan marks OnBuild, whatever
// their origin label says.
func TestSecretsFollowOnBuild(t *testing.T) {
	for _, tc := range []struct {
		name string
		step plan.Step
		want []string
	}{
		{"marked", plan.Step{Kind: plan.StepRun, Title: "a", Command: []string{"a"}, OnBuild: true}, []string{"token"}},
		{"marked, no origin", plan.Step{Kind: plan.StepRun, Title: "b", Origin: "", Command: []string{"b"}, OnBuild: true}, []string{"token"}},
		{"unmarked, on_build origin", plan.Step{Kind: plan.StepRun, Title: "c", Origin: "stage_1.custom.on_build[0]", Command: []string{"c"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := plan.Stage{Name: "stage-1", Root: "/pei-init/stage-1", Steps: []plan.Step{tc.step}}
			st, _ := StageLLB(s, llb.Image("docker.io/library/debian:bookworm"), ocispecs.Image{}, Context("t", nil), llb.Scratch(), []string{"token"}, nil, "")
			e := execs(t, st)
			if len(e) != 1 || strings.Join(e[0].secrets, " ") != strings.Join(tc.want, " ") {
				t.Errorf("execs %+v, want one with secrets %q", e, tc.want)
			}
		})
	}
}
