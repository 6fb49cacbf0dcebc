package render_test

import (
	"bytes"
	"flag"
	"fmt"
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

var update = flag.Bool("update", false, "rewrite golden files")

const testPubkey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGlwZ2ZhbHNlZmFsc2VmYWxzZWZhbHNlZmFsc2VmYWxz dev@example\n"

// testProject copies a testdata config into a project named after the case,
// with every file it names present.
func testProject(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	cfg, err := os.ReadFile(filepath.Join("testdata", name, "user_config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("user_config.yml", cfg)
	for _, line := range strings.Split(string(cfg), "\n") {
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return strings.ContainsRune(" '[],:\"", r) }) {
			if strings.HasPrefix(f, "stage-") && strings.Contains(f, "/") {
				switch {
				case strings.HasSuffix(f, ".pub"):
					write("installation/"+f, []byte(testPubkey))
				case strings.Contains(f, "id_"):
					k := filepath.Join(t.TempDir(), "k")
					if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
						t.Fatalf("ssh-keygen: %v %s", err, out)
					}
					key, err := os.ReadFile(k)
					if err != nil {
						t.Fatal(err)
					}
					write("installation/"+f, key)
				default:
					write("installation/"+f, []byte("#!/bin/bash\n"))
				}
			}
		}
	}
	return dir
}

func renderCase(t *testing.T, name string) []render.File {
	t.Helper()
	dir := testProject(t, name)
	cfg, err := config.Load(config.LoadOptions{ProjectDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.New(config.WithDefaults(cfg), plan.ProjectName(dir))
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(p, render.Options{ConfigFile: "user_config.yml", WithMerged: true})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func archive(files []render.File) []byte {
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "-- %s (%04o) --\n", f.Path, f.Mode)
		b.Write(f.Data)
		if len(f.Data) > 0 && f.Data[len(f.Data)-1] != '\n' {
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

// TestGolden pins every generated file for PeiDocker's README example and
// for a config that uses every feature. Run with -update to accept changes.
func TestGolden(t *testing.T) {
	for _, name := range []string{"peidocker-readme", "full-example"} {
		t.Run(name, func(t *testing.T) {
			got := archive(renderCase(t, name))
			golden := filepath.Join("testdata", name, "golden.txt")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("generated files differ from %s; run go test ./internal/render -update and review the diff\n%s", golden, firstDiff(got, want))
			}
		})
	}
}

func firstDiff(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d:\n got: %s\nwant: %s", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("lengths differ: %d vs %d lines", len(la), len(lb))
}

// The same input gives byte-identical files.
func TestDeterministic(t *testing.T) {
	a, b := archive(renderCase(t, "full-example")), archive(renderCase(t, "full-example"))
	if !bytes.Equal(a, b) {
		t.Fatalf("two renders differ:\n%s", firstDiff(a, b))
	}
}

// docker-compose.yml loads with compose-go and means what the config says.
func TestComposeLoads(t *testing.T) {
	files := renderCase(t, "full-example")
	var compose []byte
	for _, f := range files {
		if f.Path == "docker-compose.yml" {
			compose = f.Data
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-compose.yml"), compose, 0o644)
	proj, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: types.Mapping{"HOST_USER": "alice"},
	}, func(o *loader.Options) { o.SetProjectName("full-example", true); o.Profiles = []string{"*"} })
	if err != nil {
		t.Fatalf("compose-go cannot load the generated file: %v\n%s", err, compose)
	}
	s2, err := proj.GetService("stage-2")
	if err != nil {
		t.Fatal(err)
	}
	env := s2.Environment
	if v := env["AT_RUNTIME"]; v == nil || *v != "alice" {
		t.Errorf("{{HOST_USER}} was not resolved by Compose at run time: %v", v)
	}
	if v := env["DOLLAR"]; v == nil || *v != "cost $5" {
		t.Errorf("a literal $ changed: %v", v)
	}
	if v := env["WITH_EQUALS"]; v == nil || *v != "x=1,y=2" {
		t.Errorf("WITH_EQUALS = %v", v)
	}
	if len(s2.Ports) != 4 {
		t.Errorf("stage-2 ports = %v, want ssh + 2 of stage-1 + 1 of stage-2", s2.Ports)
	}
	if proj.Volumes["ext-data"].Name != "shared-data" || !bool(proj.Volumes["ext-data"].External) {
		t.Errorf("manual volume: %+v", proj.Volumes["ext-data"])
	}
	s1, _ := proj.GetService("stage-1")
	if len(s1.Profiles) != 1 || s1.Profiles[0] != "stage-1" || len(s2.Profiles) != 0 {
		t.Errorf("profiles: stage-1 %v, stage-2 %v", s1.Profiles, s2.Profiles)
	}
	if s1.Deploy == nil || len(s1.Deploy.Resources.Reservations.Devices) != 1 || s2.Deploy != nil {
		t.Errorf("gpu: stage-1 must reserve GPUs, stage-2 (device cpu) must not")
	}
	if s1.Build.Network != "host" || s1.Build.Args["http_proxy"] == nil || *s1.Build.Args["http_proxy"] != "http://127.0.0.1:7890" {
		t.Errorf("build-time proxy: network %q args %v", s1.Build.Network, s1.Build.Args)
	}
	if _, ok := s1.Environment["http_proxy"]; ok {
		t.Errorf("remove_after_build: the proxy must not be in the run-time environment")
	}
}

// The generated shell scripts pass shellcheck.
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		testenv.Missing(t, "shellcheck is not installed")
	}
	dir := t.TempDir()
	var paths []string
	for _, f := range renderCase(t, "full-example") {
		if strings.HasSuffix(f.Path, ".sh") {
			p := filepath.Join(dir, strings.ReplaceAll(f.Path, "/", "_"))
			os.WriteFile(p, f.Data, 0o644)
			paths = append(paths, p)
		}
	}
	out, err := exec.Command("shellcheck", append([]string{"-s", "bash", "-S", "warning", "-e", "SC1090,SC1091,SC2034,SC2317"}, paths...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck:\n%s", out)
	}
}

// An image name with {{VAR}}s reaches FROM through a build argument that
// Compose resolves like the image names it builds, so stage-2 builds on
// the stage-1 image Compose named; a {{VAR}} host port is Compose's too.
func TestRuntimeVarsInImagesAndPorts(t *testing.T) {
	cfg, err := config.Parse([]byte(`
stage_1:
  image: {base: '{{BASE:-debian:bookworm}}', output: 'app:{{TAG:-dev}}'}
  ssh: {host_port: '{{SSH_HOST_PORT:-2230}}'}
stage_2:
  image: {output: 'app:{{TAG:-dev}}-2'}
  ports: ['{{WEB:-18080}}:80']
`), "user_config.yml", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.New(config.WithDefaults(cfg), "vars")
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(p, render.Options{ConfigFile: "user_config.yml", WithMerged: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		got[f.Path] = string(f.Data)
	}
	for _, tc := range []struct{ file, want string }{
		{"stage-1.Dockerfile", "ARG PEI_STAGE_1_BASE=\"debian:bookworm\"\nFROM ${PEI_STAGE_1_BASE}\n"},
		{"stage-2.Dockerfile", "ARG PEI_STAGE_2_BASE=\"app:dev\"\nFROM ${PEI_STAGE_2_BASE}\n"},
		{"merged.Dockerfile", "ARG PEI_STAGE_1_BASE=\"debian:bookworm\"\n# stage-1"},
		{"merged.Dockerfile", "FROM ${PEI_STAGE_1_BASE} AS stage-1\n"},
		{"merged.Dockerfile", "FROM stage-1 AS stage-2\n"},
		{"build-merged.sh", `-t "app:${TAG:-dev}" --build-arg "PEI_STAGE_1_BASE=${BASE:-debian:bookworm}"`},
	} {
		if !strings.Contains(got[tc.file], tc.want) {
			t.Errorf("%s does not hold %q:\n%s", tc.file, tc.want, got[tc.file])
		}
	}
	if strings.Count(got["merged.Dockerfile"], "ARG PEI_") != 1 {
		t.Errorf("merged.Dockerfile: want one ARG, before the first FROM:\n%s", got["merged.Dockerfile"])
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(got["docker-compose.yml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run-merged.sh"), []byte(got["run-merged.sh"]), 0o755); err != nil {
		t.Fatal(err)
	}
	// run-merged.sh with a docker that prints its arguments.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte("#!/bin/sh\nprintf '%s\\n' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env                               types.Mapping
		image1, image2, from, pub, sshPub string
	}{
		{types.Mapping{}, "app:dev", "app:dev-2", "app:dev", "18080", "2230"},
		{types.Mapping{"TAG": "v2", "WEB": "9000", "BASE": "debian:trixie", "SSH_HOST_PORT": "2300"}, "app:v2", "app:v2-2", "app:v2", "9000", "2300"},
	} {
		cmd := exec.Command("sh", filepath.Join(dir, "run-merged.sh"))
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
		for k, v := range tc.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("run-merged.sh: %v", err)
		}
		// Compose's image name and ports, resolved as Compose would.
		for _, want := range []string{"\n" + tc.sshPub + ":22\n", "\n" + tc.pub + ":80\n", "\n" + tc.image2 + "\n"} {
			if !strings.Contains("\n"+string(out), want) {
				t.Errorf("env %v: run-merged.sh runs no %q:\n%s", tc.env, strings.TrimSpace(want), out)
			}
		}
		proj, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
			WorkingDir:  dir,
			ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
			Environment: tc.env,
		}, func(o *loader.Options) { o.SetProjectName("vars", true); o.Profiles = []string{"*"} })
		if err != nil {
			t.Fatalf("compose-go: %v\n%s", err, got["docker-compose.yml"])
		}
		s1, s2 := proj.Services["stage-1"], proj.Services["stage-2"]
		if s1.Image != tc.image1 || s2.Image != tc.image2 {
			t.Errorf("env %v: images %q, %q; want %q, %q", tc.env, s1.Image, s2.Image, tc.image1, tc.image2)
		}
		if a := s2.Build.Args["PEI_STAGE_2_BASE"]; a == nil || *a != tc.from {
			t.Errorf("env %v: stage-2 builds FROM %v, want %q (stage-1's image)", tc.env, a, tc.from)
		}
		if len(s2.Ports) != 2 || s2.Ports[0].Published != tc.sshPub || s2.Ports[0].Target != 22 || s2.Ports[1].Published != tc.pub || s2.Ports[1].Target != 80 {
			t.Errorf("env %v: stage-2 ports %+v, want %s:22 and %s:80", tc.env, s2.Ports, tc.sshPub, tc.pub)
		}
	}
}
