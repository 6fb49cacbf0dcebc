package project

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// PeiDocker's own example projects (testdata/peidocker, copied from
// PeiDocker 2.0.1 with the docker-compose.yml it generated for each) must
// configure in pei and run with the same meaning: the same services,
// images, ports, mounts, environment, GPUs and extra hosts; and Docker
// Compose itself must accept what pei wrote.

// comparedFields are the service fields whose meaning must be the same.
var comparedFields = []string{"image", "ports", "volumes", "environment", "deploy", "extra_hosts", "networks"}

// intendedDifferences are the service and project fields pei writes
// differently on purpose, each with its reason. Any other field that
// either side sets fails the test, so nothing differs silently.
var intendedDifferences = []struct{ field, reason string }{
	{"build", "PeiDocker passes its settings as build.args, SSH passwords in plain text; pei's Dockerfiles take no arguments but Docker's proxy ones (password hashes in generated scripts, private keys as build secrets)"},
	{"profiles", "both keep stage-1 out of 'docker compose up'; PeiDocker names the profile build-helper, pei stage-1 (checked below)"},
	{"command", "PeiDocker runs /bin/bash and needs a tty to stay up; pei's entrypoint idles without one and starts a login shell with one"},
	{"tty", "see command"},
	{"stdin_open", "see command; pei writes it with --full-compose"},
	{"secrets", "pei passes private keys and the config's secrets as build secrets (top-level secrets:, build.secrets); PeiDocker has none"},
	{"name", "the service's name, the map key both sides agree on"},
	{"environment: " + strings.Join(proxyVars, ", "), "a proxy kept after the build (enable_globally without remove_after_build): PeiDocker writes it into the image's shell profiles, pei into the image's and the container's environment, where every process sees it"},
}

// proxyVars are the variables of a kept global proxy.
var proxyVars = []string{"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"}

// peidockerScaffold are files of PeiDocker's scaffold ('pei-docker-cli
// create') that the examples name. Their content is not what is compared:
// each project gets a placeholder of each.
var peidockerScaffold = []string{
	"stage-1/system/conda/activate-conda-on-login.sh",
	"stage-1/system/conda/install-miniconda.sh",
	"stage-1/system/nodejs/install-nvm-nodejs.sh",
	"stage-1/system/opengl/setup-opengl-win32.sh",
	"stage-1/system/pixi/create-env-common.bash",
	"stage-1/system/pixi/create-env-ml.bash",
	"stage-1/system/pixi/install-pixi.bash",
	"stage-1/system/ros2/install-ros2.sh",
	"stage-1/system/ros2/setup-ros2-repo.sh",
	"stage-1/system/uv/install-uv.sh",
	"stage-1/system/vision-dev/install-vision-dev.bash",
}

const examplePubkey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKzLbt3iOYP1nV3yEbqvq0U3bY7oC8tN3kqJ5Qx0cGm7 example@peidocker\n"

// knownFailing are examples pei does not yet configure with PeiDocker's
// meaning, with the reason. It must shrink to nothing.
var knownFailing = map[string]string{}

func TestPeiDockerExamples(t *testing.T) {
	const root = "testdata/peidocker"
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	work := t.TempDir()
	configured := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		name := e.Name()
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(work, name)
			defer func() {
				// Even when the comparison stopped the subtest: Compose's
				// word on the file is worth having then too.
				if _, err := os.Stat(filepath.Join(dir, "docker-compose.yml")); err == nil {
					configured[name] = dir
				}
			}()
			problems := comparePeiDocker(t, filepath.Join(root, name), dir)
			reason, known := knownFailing[name]
			switch {
			case known && len(problems) == 0:
				t.Errorf("%s now matches PeiDocker: remove it from knownFailing (%s)", name, reason)
			case known:
				t.Logf("known difference (%s):\n%s", reason, strings.Join(problems, "\n"))
			case len(problems) > 0:
				t.Errorf("pei's docker-compose.yml means something else than PeiDocker's:\n%s", strings.Join(problems, "\n"))
			}
		})
	}
	if n != 19 {
		t.Errorf("%d examples in %s, want PeiDocker's 19", n, root)
	}
	composeAccepts(t, configured)
}

// comparePeiDocker configures a copy of the example in dir with pei and
// lists how its compose file differs from PeiDocker's.
func comparePeiDocker(t *testing.T, example, dir string) []string {
	t.Helper()
	copyTree(t, example, dir)
	for _, f := range peidockerScaffold {
		writeFile(t, filepath.Join(dir, "installation", f), "#!/bin/bash\n")
	}
	writeFile(t, filepath.Join(dir, "installation/stage-1/system/ssh/keys/example-pubkey.pub"), examplePubkey)
	peiDockerCompose := filepath.Join(dir, "peidocker-compose.yml")
	if err := os.Rename(filepath.Join(dir, "docker-compose.yml"), peiDockerCompose); err != nil {
		t.Fatal(err)
	}
	if _, err := Configure(ConfigureOptions{Policy: Local, Dir: dir, Lookup: noEnv}); err != nil {
		return []string{fmt.Sprintf("pei refuses the config: %v", err)}
	}
	want := loadCompose(t, dir, peiDockerCompose)
	got := loadCompose(t, dir, filepath.Join(dir, "docker-compose.yml"))
	return diffProjects(want, got, dir)
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		writeFile(t, filepath.Join(dst, rel), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// loadCompose loads a compose file as Compose would with no variables
// set (so ${VAR:-default} takes its default), with every profile.
func loadCompose(t *testing.T, dir, file string) *types.Project {
	t.Helper()
	proj, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("example", true); o.Profiles = []string{"*"} })
	if err != nil {
		t.Fatalf("compose-go cannot load %s: %v", file, err)
	}
	return proj
}

// diffProjects lists the differences of meaning between PeiDocker's
// project (want) and pei's (got).
func diffProjects(want, got *types.Project, dir string) []string {
	var out []string
	names := func(p *types.Project) []string {
		var n []string
		for k := range p.Services {
			n = append(n, k)
		}
		sort.Strings(n)
		return n
	}
	if w, g := names(want), names(got); !slices.Equal(w, g) {
		out = append(out, fmt.Sprintf("services: PeiDocker %v, pei %v", w, g))
	}
	allowed := map[string]bool{}
	for _, f := range comparedFields {
		allowed[f] = true
	}
	for _, d := range intendedDifferences {
		allowed[d.field] = true
	}
	for _, name := range names(want) {
		ws := want.Services[name]
		gs, ok := got.Services[name]
		if !ok {
			continue
		}
		for _, side := range []struct {
			who string
			svc types.ServiceConfig
		}{{"PeiDocker", ws}, {"pei", gs}} {
			for _, f := range setFields(side.svc) {
				if !allowed[f] {
					out = append(out, fmt.Sprintf("%s: %s sets %s, which is neither compared nor an intended difference", name, side.who, f))
				}
			}
		}
		// stage-1 is in a profile on both sides, stage-2 in none.
		if (len(ws.Profiles) > 0) != (len(gs.Profiles) > 0) {
			out = append(out, fmt.Sprintf("%s: profiles: PeiDocker %v, pei %v", name, ws.Profiles, gs.Profiles))
		}
		cmp := func(field string, w, g any) {
			wj, _ := json.Marshal(w)
			gj, _ := json.Marshal(g)
			if string(wj) != string(gj) {
				out = append(out, fmt.Sprintf("%s: %s:\n\tPeiDocker %s\n\tpei       %s", name, field, wj, gj))
			}
		}
		cmp("image", ws.Image, gs.Image)
		cmp("ports", ports(ws), ports(gs))
		cmp("volumes", mounts(want, ws, dir), mounts(got, gs, dir))
		genv := env(gs)
		for _, v := range proxyVars {
			if _, ok := env(ws)[v]; !ok {
				delete(genv, v)
			}
		}
		cmp("environment", env(ws), genv)
		cmp("deploy.resources.reservations.devices", gpus(ws), gpus(gs))
		cmp("extra_hosts", hosts(ws), hosts(gs))
		cmp("networks", ws.Networks, gs.Networks)
	}
	return out
}

// setFields are the top-level keys a service sets.
func setFields(s types.ServiceConfig) []string {
	b, _ := json.Marshal(s)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	var out []string
	for k, v := range m {
		if v == nil || v == false || v == "" {
			continue
		}
		if l, ok := v.([]any); ok && len(l) == 0 {
			continue
		}
		if l, ok := v.(map[string]any); ok && len(l) == 0 {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ports are a service's published ports, one per container port.
func ports(s types.ServiceConfig) []string {
	var out []string
	for _, p := range s.Ports {
		pub := p.Published
		if lo, hi, ok := strings.Cut(pub, "-"); ok && lo != hi {
			// A range left unexpanded: a mismatch shows it.
			pub = lo + ".." + hi
		}
		out = append(out, fmt.Sprintf("%s:%s->%d/%s", p.HostIP, pub, p.Target, p.Protocol))
	}
	sort.Strings(out)
	return out
}

// mounts maps each container path to what is mounted there: a project
// volume by its key, an external volume by its name, or a host path
// (relative to the project when inside it).
func mounts(p *types.Project, s types.ServiceConfig, dir string) map[string][]string {
	out := map[string][]string{}
	for _, v := range s.Volumes {
		var src string
		switch v.Type {
		case types.VolumeTypeVolume:
			vc := p.Volumes[v.Source]
			if vc.External {
				src = "external volume " + vc.Name
			} else {
				src = "volume " + v.Source
			}
		case types.VolumeTypeBind:
			src = v.Source
			if rel, err := filepath.Rel(dir, v.Source); err == nil && filepath.IsLocal(rel) {
				src = "./" + filepath.ToSlash(rel)
			}
			src = "host " + src
		default:
			src = string(v.Type) + " " + v.Source
		}
		if v.ReadOnly {
			src += " (ro)"
		}
		out[v.Target] = append(out[v.Target], src)
	}
	return out
}

func env(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			out[k] = "<from the environment>"
		} else {
			out[k] = *v
		}
	}
	return out
}

func gpus(s types.ServiceConfig) []types.DeviceRequest {
	if s.Deploy == nil || s.Deploy.Resources.Reservations == nil {
		return nil
	}
	return s.Deploy.Resources.Reservations.Devices
}

func hosts(s types.ServiceConfig) []string {
	return s.ExtraHosts.AsList(":")
}
