package project

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/render"
	"github.com/pei-dev/pei/internal/testenv"
)

func noEnv(string) (string, bool) { return "", false }

// snapshot reads every file under dir.
func TestCreateEveryQuickModeConfigures(t *testing.T) {
	for _, q := range QuickModes {
		t.Run(q, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "proj")
			if _, err := Create(CreateOptions{Dir: dir, Quick: q}); err != nil {
				t.Fatal(err)
			}
			res, err := Configure(ConfigureOptions{Policy: Local, Dir: dir, Lookup: noEnv})
			if err != nil {
				t.Fatalf("the scaffold of --quick %s does not configure: %v", q, err)
			}
			s1 := res.Plan.Stages[0]
			if hasSSH := s1.Script.System.SSH; hasSSH != (q != "minimal") {
				t.Errorf("ssh = %v", hasSSH)
			}
			if s1.Run.GPU != (q == "gpu" || q == "cn-ml") {
				t.Errorf("gpu = %v", s1.Run.GPU)
			}
			if _, err := os.Stat(filepath.Join(dir, "installation/stage-1/custom/my-build-1.sh")); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCreatePeiDockerQuickTemplates: PeiDocker's quick templates (its
// templates/quick/config-*.yml) are pei create's quick modes, with their
// base, mirror, SSH port, proxy, users, GPU, storage, mounts and hooks.
func TestCreatePeiDockerQuickTemplates(t *testing.T) {
	for _, tc := range []struct {
		quick, base, mirror string
		sshPort             int
		proxy               string // stage-1's run-time proxy port, "" for none
		gpu                 bool
		data                plan.VolumeKind
		s1Hooks, s2Hooks    []string
	}{
		{"cn-demo", "ubuntu:24.04", "aliyun", 333, "", false, plan.HostDir,
			[]string{"stage-1/custom/my-build-1.sh", "stage-1/custom/install-dev-tools.sh"},
			[]string{"stage-2/custom/my-build-1.sh", "stage-1/system/pixi/install-pixi.bash --pypi-repo tuna --conda-repo tuna --user me", "stage-1/system/uv/install-uv.sh --pypi-repo tuna --user me"}},
		{"cn-dev", "ubuntu:24.04", "tuna", 22, "7890", false, plan.AutoVolume,
			[]string{"stage-1/custom/my-build-1.sh", "stage-1/custom/install-dev-tools.sh"},
			[]string{"stage-2/custom/my-build-1.sh", "stage-1/system/pixi/install-pixi.bash --pypi-repo tuna --conda-repo tuna --user me", "stage-1/system/uv/install-uv.sh --pypi-repo tuna --user me"}},
		{"cn-ml", "nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04", "tuna", 22, "7890", true, plan.AutoVolume,
			[]string{"stage-1/custom/my-build-1.sh", "stage-1/custom/install-dev-tools.sh", "stage-1/system/vision-dev/install-vision-dev.bash"},
			[]string{"stage-2/custom/my-build-1.sh", "stage-1/system/pixi/install-pixi.bash --pypi-repo tuna --conda-repo tuna --user me", "stage-1/system/uv/install-uv.sh --pypi-repo tuna --user me"}},
	} {
		t.Run(tc.quick, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "proj")
			if _, err := Create(CreateOptions{Dir: dir, Quick: tc.quick}); err != nil {
				t.Fatal(err)
			}
			res, err := Load(LoadOptions{Policy: Local, Dir: dir, Lookup: noEnv})
			if err != nil {
				t.Fatalf("does not load: %v", err)
			}
			c := res.Config
			s1, s2 := c.Stage1, c.Stage2
			var users []string
			for _, u := range s1.SSH.Users {
				users = append(users, u.Name)
			}
			proxy := ""
			if s1.Proxy.Port != nil {
				proxy = strconv.Itoa(*s1.Proxy.Port)
			}
			hooks := func(hs []config.Hook) (out []string) {
				for _, h := range hs {
					out = append(out, h.Raw)
				}
				return out
			}
			var home, data plan.VolumeKind
			for _, v := range res.Plan.Stages[1].Run.Volumes {
				switch v.Target {
				case "/home/me":
					home = v.Kind
				case "/hard/volume/data":
					data = v.Kind
				}
			}
			for _, check := range []struct {
				what      string
				got, want any
			}{
				{"base", s1.Image.Base.Raw, tc.base},
				{"mirror", s1.Apt.RepoSource, tc.mirror},
				{"ssh port", *s1.SSH.Port, tc.sshPort},
				{"ssh host port", *s1.SSH.HostPort, 2222},
				{"users", strings.Join(users, " "), "me root"},
				{"proxy port", proxy, tc.proxy},
				{"proxy enabled", *s1.Proxy.EnableGlobally, false},
				{"gpu", res.Plan.Stages[1].Run.GPU, tc.gpu},
				{"data", data, tc.data},
				{"home", home, plan.AutoVolume},
				{"stage-1 on_build", strings.Join(hooks(s1.Custom.OnBuild), "|"), strings.Join(tc.s1Hooks, "|")},
				{"stage-2 on_build", strings.Join(hooks(s2.Custom.OnBuild), "|"), strings.Join(tc.s2Hooks, "|")},
			} {
				if check.got != check.want {
					t.Errorf("%s = %v, want %v", check.what, check.got, check.want)
				}
			}
		})
	}
}

func TestCreateRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(CreateOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, config.DefaultFile)
	os.WriteFile(cfg, []byte("mine"), 0o644)
	if _, err := Create(CreateOptions{Dir: dir}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "mine" {
		t.Fatal("create overwrote the config without --force")
	}
	if _, err := Create(CreateOptions{Dir: dir, Force: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(cfg); string(b) == "mine" {
		t.Fatal("--force did not overwrite")
	}
	if _, err := Create(CreateOptions{Dir: t.TempDir(), Quick: "huge"}); err == nil || !strings.Contains(err.Error(), "choose one of minimal, ssh, gpu, full") {
		t.Fatalf("bad --quick: %v", err)
	}
}

// Configuring twice gives byte-identical files; a bad config changes nothing.
func TestConfigureDeterministicAndAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proj")
	if _, err := Create(CreateOptions{Dir: dir, Quick: "full"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Configure(ConfigureOptions{Policy: Local, Dir: dir, Lookup: noEnv, WithMerged: true}); err != nil {
		t.Fatal(err)
	}
	first := testenv.Snapshot(t, dir)
	if _, err := Configure(ConfigureOptions{Policy: Local, Dir: dir, Lookup: noEnv, WithMerged: true}); err != nil {
		t.Fatal(err)
	}
	second := testenv.Snapshot(t, dir)
	if len(first) != len(second) {
		t.Fatalf("file count changed: %d -> %d", len(first), len(second))
	}
	for k, v := range first {
		if second[k] != v {
			t.Errorf("%s changed between two runs", k)
		}
	}
	for _, want := range []string{"stage-1.Dockerfile", "stage-2.Dockerfile", "docker-compose.yml", "merged.Dockerfile", "build-merged.sh", "run-merged.sh", ".dockerignore", "installation/stage-1/internals/entrypoint.sh"} {
		if _, ok := first[want]; !ok {
			t.Errorf("%s was not written", want)
		}
	}

	// Break the config in two places: nothing may change.
	cfgPath := filepath.Join(dir, config.DefaultFile)
	cfg, _ := os.ReadFile(cfgPath)
	bad := strings.Replace(string(cfg), "      type: auto-volume", "      type: volum", 1)
	bad = strings.Replace(bad, "my-build-1.sh'", "missing.sh'", 1)
	os.WriteFile(cfgPath, []byte(bad), 0o644)
	before := testenv.Snapshot(t, dir)
	_, err := Configure(ConfigureOptions{Policy: Local, Dir: dir, Lookup: noEnv})
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	after := testenv.Snapshot(t, dir)
	if len(before) != len(after) {
		t.Fatalf("a failed configure added or removed files")
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("a failed configure changed %s", k)
		}
	}
}

// privkey_text reaches the build only as a secret file outside the context.
func TestInlinePrivateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proj")
	os.MkdirAll(dir, 0o755)
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBhgDnbjp2OAOhxtgnnBXhdLIapyxDOJyBm4kdaY7ZkywAAAJjZDQTS2Q0E\n0gAAAAtzc2gtZWQyNTUxOQAAACBhgDnbjp2OAOhxtgnnBXhdLIapyxDOJyBm4kdaY7Zkyw\nAAAEBb8dvs5VsVQKeX4bJ0Ai8Mr7aLQSlgKKYX3Fm5OW3x+GGAOduOnY4A6HG2CecFeF0s\nhqnLEM4nIGbiR1pjtmTLAAAAEHRlc3RAZXhhbXBsZS5jb20BAgMEBQ==\n-----END OPENSSH PRIVATE KEY-----\n"
	cfg := "stage_1:\n  image: {base: debian:bookworm}\n  ssh:\n    users:\n      me:\n        privkey_text: |\n" +
		"          " + strings.ReplaceAll(strings.TrimSpace(key), "\n", "\n          ") + "\n"
	os.WriteFile(filepath.Join(dir, config.DefaultFile), []byte(cfg), 0o644)
	if _, err := Configure(ConfigureOptions{Policy: Local, Dir: dir, Lookup: noEnv}); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, plan.SecretDir, "privkey_me")
	st, err := os.Stat(secret)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v", st.Mode())
	}
	if b, _ := os.ReadFile(secret); string(b) != key {
		t.Errorf("secret file content differs")
	}
	var names []string
	for name, content := range testenv.Snapshot(t, dir) {
		if strings.Contains(content, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ") && name != config.DefaultFile && !strings.HasPrefix(name, ".pei") {
			names = append(names, name)
		}
		if name == ".dockerignore" && !strings.Contains(content, "\n.pei\n") {
			t.Errorf(".dockerignore does not keep .pei out of the build context")
		}
	}
	sort.Strings(names)
	if len(names) > 0 {
		t.Errorf("the private key is in generated files %v", names)
	}
}

// FuzzConfigure feeds arbitrary text to the loader and, when it loads, to
// the planner and renderers: nothing may panic, and a loaded config renders.
func FuzzConfigure(f *testing.F) {
	for _, seed := range []string{
		"stage_1:\n  image: {base: debian:bookworm}\n",
		"stage_1:\n  image: {base: x}\n  ssh: {users: {me: {password: 'a b'}, root: {}}}\n  environment: {A: '{{B}}'}\nstage_2:\n  storage: {app: {type: host, host_path: /x}}\n  mount: {m: {type: auto-volume, dst_path: /m}}\n",
		"a: &a [x, *a]\n",
		"stage_1: {image: {base: '${X:-y}'}, ports: ['1:2', '3'], custom: {on_entry: [\"a 'b c'\"]}}\n",
	} {
		f.Add([]byte(seed))
	}
	if b, err := scaffoldFS.ReadFile("scaffold/user_config.yml.tmpl"); err == nil {
		f.Add(bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("{{.Base}}"), []byte("debian:bookworm")), []byte("{{"), []byte("#")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, "user_config.yml", "", noEnv)
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("a config error that is not ErrInvalid: %v", err)
			}
			return
		}
		p, err := plan.New(config.WithDefaults(cfg), "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := render.Files(p, render.Options{WithMerged: true}); err != nil {
			t.Fatalf("a valid config does not render: %v", err)
		}
	})
}
