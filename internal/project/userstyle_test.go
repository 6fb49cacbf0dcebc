package project

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
)

// Configs written the way PeiDocker users write them (testdata/userstyle,
// see its README.md): each must configure in pei, be accepted by Docker
// Compose, and mean in docker-compose.yml what its author meant.

// userstyleHome makes the home the userstyle configs read key files from
// (see testdata/userstyle/README.md), holding the repository's test key.
func userstyleHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".ssh", "id_ed25519.pub"), hostPub)
	writeFile(t, filepath.Join(home, ".ssh", "id_ed25519"), hostPriv)
	writeFile(t, filepath.Join(home, "keys", "bob.pub"), strings.Replace(hostPub, "me@host", "bob@laptop", 1))
	return home
}

// gw is what every service pei writes has in extra_hosts.
var gw = []string{"host.docker.internal:host-gateway"}

type userStyleCase struct {
	mounts  map[string]map[string][]string // service → destination → what is mounted there (exact)
	ports   map[string][]string            // service → published ports (exact)
	env     map[string]map[string]string   // service → variables it must have, with these values
	unset   []string                       // variables no service may have (NAME@service: that service)
	gpu     []string                       // the services that reserve GPUs
	compose []string                       // text docker-compose.yml must hold (Compose's own variables)
	check   func(t *testing.T, p plan.Plan)
}

var userStyleCases = map[string]userStyleCase{
	"template-full": {
		mounts: map[string]map[string][]string{
			"stage-1": {"/var/cache/apt": {"volume mount_apt_cache"}},
			"stage-2": {
				"/hard/volume/app": {"volume app"}, "/hard/volume/data": {"volume data"}, "/hard/volume/workspace": {"volume workspace"},
				"/home/me": {"volume mount_home_me"}, "/var/cache/apt": {"volume mount_apt_cache"},
			},
		},
		ports: map[string][]string{"stage-1": {":2222->22/tcp"}, "stage-2": {":2222->22/tcp"}},
		env: map[string]map[string]string{
			"stage-1": {"EXAMPLE_VAR_STAGE_1": "example env var"},
			"stage-2": {"EXAMPLE_VAR_STAGE_1": "example env var", "EXAMPLE_VAR_STAGE_2": "example env var"},
		},
		unset: append([]string{"EXAMPLE_VAR_STAGE_2@stage-1"}, proxyVars...),
		check: func(t *testing.T, p plan.Plan) {
			wantUsers(t, p, map[string]userWant{"me": {uid: 2000, password: true}, "you": {password: true}, "root": {password: true}})
			// on_entry written as one string, as the template shows it.
			if e := p.Stages[1].Script.Hooks.Entry; e == nil || e.Script != "/pei-init/stage-2/custom/my-entry.sh" ||
				!slices.Equal(hookArgs(*e), []string{"--mode=production", "--log-level=info"}) {
				t.Errorf("stage-2 entry %+v, want my-entry.sh --mode=production --log-level=info", e)
			}
			wantOnBuild(t, p.Stages[0], 1, "stage-1/custom/my-build-2.sh", "--verbose", "--config=/tmp/build.conf")
		},
	},
	"mounts-both-stages": {
		mounts: map[string]map[string][]string{
			"stage-1": {
				"/var/cache/apt": {"volume mount_apt_cache"}, "/var/lib/apt/lists": {"volume mount_apt_lists"},
				"/home/me": {"host /srv/devbox/home-me"},
			},
			"stage-2": {
				"/var/cache/apt": {"volume mount_apt_cache"}, "/home/me": {"volume mount_home_me"},
				"/root": {"external volume devbox-root-home"}, "/data/datasets": {"host /mnt/nas/datasets"},
				"/home/me/notes": {"host ./notes"},
			},
		},
		ports: map[string][]string{"stage-1": {":2200->22/tcp"}, "stage-2": {":2200->22/tcp"}},
	},
	"ssh-keys-home": {
		ports: map[string][]string{"stage-1": {":2345->2345/tcp"}, "stage-2": {":2345->2345/tcp"}},
		check: func(t *testing.T, p plan.Plan) {
			wantUsers(t, p, map[string]userWant{
				"me":  {pub: strings.TrimSpace(hostPub), priv: "id_ed25519"},
				"bob": {password: true, pub: strings.TrimSpace(strings.Replace(hostPub, "me@host", "bob@laptop", 1))},
				"ci":  {pub: strings.TrimSpace(hostPub), priv: "id_ed25519"},
			})
		},
	},
	"compose-vars": {
		ports: map[string][]string{
			"stage-1": {":2222->22/tcp"},
			"stage-2": {":2222->22/tcp", ":18080->80/tcp", "127.0.0.1:5678->5678/tcp", ":3000->3000/tcp", ":3001->3001/tcp", ":3002->3002/tcp"},
		},
		env: map[string]map[string]string{
			"stage-1": {"APP_ENV": "development", "API_TOKEN": "", "LOG_LEVEL": "info"},
			"stage-2": {"APP_ENV": "development", "API_TOKEN": "", "DB_URL": "postgres://db:5432/app", "WORKERS": "4"},
		},
		compose: []string{
			"image: webapp:${STAGE1_TAG:-stage-1}", "image: webapp:${TAG:-dev}", "published: ${SSH_HOST_PORT:-2222}",
			"published: ${WEB_HOST_PORT:-18080}", "published: ${DEBUG_PORT:-5678}", "API_TOKEN: ${API_TOKEN}",
			"APP_ENV: ${APP_ENV:-development}", "DB_URL: postgres://db:5432/${DB_NAME:-app}",
		},
		check: func(t *testing.T, p plan.Plan) {
			// ${BASE_IMAGE:-...} and ${PROJECT_NAME:-...} are pei configure's.
			if b := p.Stages[0].Base; b != "ubuntu:24.04" {
				t.Errorf("stage-1 base %q, want ubuntu:24.04", b)
			}
		},
	},
	"gpu-ml": {
		mounts: map[string]map[string][]string{"stage-1": {}, "stage-2": {"/hard/volume/data": {"host /mnt/datasets"}}},
		ports:  map[string][]string{"stage-1": {":2299->22/tcp"}, "stage-2": {":2299->22/tcp", ":6006->6006/tcp", ":8888->8888/tcp"}},
		env: map[string]map[string]string{
			"stage-1": {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "all"},
			"stage-2": {"NVIDIA_VISIBLE_DEVICES": "all", "HF_HOME": "/soft/data/hf"},
		},
		gpu: []string{"stage-1", "stage-2"},
	},
	"proxy-build-only": {
		// The proxy is the build's only: nothing of it in the containers.
		unset: proxyVars,
		ports: map[string][]string{"stage-1": {":2201->22/tcp"}, "stage-2": {":2201->22/tcp"}},
		check: func(t *testing.T, p plan.Plan) {
			// The build runs on the host's network, where the host's proxy
			// is 127.0.0.1.
			sys := p.Stages[0].Script.System
			if sys.Mirror != "tuna" || sys.AptProxy != "http://127.0.0.1:7890" || sys.KeepAptPxy {
				t.Errorf("apt: mirror %q, proxy %q (kept %v); want tuna through http://127.0.0.1:7890, not kept", sys.Mirror, sys.AptProxy, sys.KeepAptPxy)
			}
		},
	},
	"proxy-kept": {
		env: map[string]map[string]string{
			"stage-1": {"http_proxy": "http://proxy.corp.example.com:3128", "https_proxy": "https://proxy.corp.example.com:3128"},
			"stage-2": {"http_proxy": "http://proxy.corp.example.com:3128", "HTTPS_PROXY": "https://proxy.corp.example.com:3128"},
		},
		check: func(t *testing.T, p plan.Plan) {
			if sys := p.Stages[0].Script.System; sys.Mirror != "ustc" || sys.KeepRepo {
				t.Errorf("apt: mirror %q kept %v; want ustc, not kept", sys.Mirror, sys.KeepRepo)
			}
		},
	},
	"team-users": {
		mounts: map[string]map[string][]string{"stage-2": {
			"/home/alice": {"volume mount_home_alice"}, "/home/bob": {"volume mount_home_bob"}, "/srv/shared": {"external volume team-shared"},
		}},
		ports: map[string][]string{"stage-1": {":2240->22/tcp"}, "stage-2": {":2240->22/tcp"}},
		check: func(t *testing.T, p plan.Plan) {
			wantUsers(t, p, map[string]userWant{
				"alice": {uid: 1100, password: true},
				"bob":   {uid: 1101, gid: 1101, password: true},
				"carol": {uid: 1102, password: true, pubFile: true},
				"dave":  {uid: 1103, gid: 1200, pub: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGGAOduOnY4A6HG2CecFeF0shqnLEM4nIGbiR1pjtmTL dave@laptop"},
				"erin":  {uid: 1104, gid: 1200, password: true, priv: "id_ed25519"}, // where ssh looks, as in PeiDocker
				"root":  {password: true},
			})
			if m := p.Stages[0].Script.System.Mirror; m != "aliyun" {
				t.Errorf("apt mirror %q, want aliyun", m)
			}
		},
	},
	"hooks-args": {
		mounts: map[string]map[string][]string{"stage-1": {}, "stage-2": {}},
		check: func(t *testing.T, p plan.Plan) {
			h1, h2 := p.Stages[0].Script.Hooks, p.Stages[1].Script.Hooks
			for _, c := range []struct {
				what   string
				hooks  []plan.Hook
				script string
				args   []string
			}{
				{"stage-1 on_first_run", h1.FirstRun, "stage-1/custom/setup.sh", []string{"--flag", "two words", "$HOME"}},
				{"stage-1 on_every_run", h1.EveryRun, "stage-1/custom/health.sh", []string{"--check-health"}},
				{"stage-1 on_user_login", h1.UserLogin, "stage-1/custom/motd.sh", []string{"--show-motd"}},
				{"stage-2 on_first_run", h2.FirstRun, "stage-2/custom/init.sh", []string{"--project-name=My App", "--git-remote=origin"}},
			} {
				if len(c.hooks) != 1 || c.hooks[0].Script != "/pei-init/"+c.script || !slices.Equal(hookArgs(c.hooks[0]), c.args) {
					t.Errorf("%s: %+v, want %s %q", c.what, c.hooks, c.script, c.args)
				}
			}
			for _, e := range []struct {
				hook         *plan.Hook
				script, args string
			}{{h1.Entry, "stage-1/custom/entry.sh", "--mode=interactive"}, {h2.Entry, "stage-2/custom/serve.sh", "--port 8080"}} {
				if e.hook == nil || e.hook.Script != "/pei-init/"+e.script || strings.Join(hookArgs(*e.hook), " ") != e.args {
					t.Errorf("entry %+v, want %s %s", e.hook, e.script, e.args)
				}
			}
			wantOnBuild(t, p.Stages[0], 0, "stage-1/custom/install.sh", "--packages=git curl vim", "--update-cache")
			wantOnBuild(t, p.Stages[1], 0, "stage-2/custom/build.sh", "--framework=pytorch", "--cuda-version=12.1")
		},
	},
	"storage-each-type": {
		mounts: map[string]map[string][]string{"stage-1": {}, "stage-2": {
			"/hard/volume/app": {"volume app"}, "/hard/volume/data": {"external volume my-datasets"},
			"/hard/volume/workspace": {"host /home/dev/projects/store"},
			"/models":                {"external volume hf-models"}, "/scratch": {"volume mount_scratch"},
		}},
	},
}

func TestUserStyleConfigs(t *testing.T) {
	const root = "testdata/userstyle"
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	home := userstyleHome(t)
	lookup := func(k string) (string, bool) {
		if k == "HOME" {
			return home, true
		}
		return "", false
	}
	work := t.TempDir()
	configured := map[string]string{}
	seen := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			tc, ok := userStyleCases[name]
			if !ok {
				t.Fatalf("%s/%s has no case in userStyleCases: say what it must mean", root, name)
			}
			dir := filepath.Join(work, name)
			copyTree(t, filepath.Join(root, name), dir)
			cfg := filepath.Join(dir, config.DefaultFile)
			b, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, cfg, strings.ReplaceAll(string(b), "/home/dev", home))
			res, err := Configure(ConfigureOptions{Policy: Local, Dir: dir, Lookup: lookup})
			if err != nil {
				t.Fatalf("pei refuses a config PeiDocker takes: %v", err)
			}
			configured[name] = dir
			composeFile := filepath.Join(dir, "docker-compose.yml")
			text, err := os.ReadFile(composeFile)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.compose {
				if !strings.Contains(string(text), s) {
					t.Errorf("docker-compose.yml does not hold %q:\n%s", s, text)
				}
			}
			proj := loadCompose(t, dir, composeFile)
			if n := len(proj.Services); n != 2 {
				t.Errorf("%d services, want stage-1 and stage-2", n)
			}
			for sname, svc := range proj.Services {
				got := mounts(proj, svc, dir)
				for dst, srcs := range got {
					for i, s := range srcs {
						got[dst][i] = strings.ReplaceAll(s, home, "/home/dev")
					}
				}
				if want, ok := tc.mounts[sname]; ok && !equalJSON(got, want) {
					t.Errorf("%s: mounts %v, want %v", sname, got, want)
				}
				if want, ok := tc.ports[sname]; ok && !slices.Equal(ports(svc), sortedCopy(want)) {
					t.Errorf("%s: ports %v, want %v", sname, ports(svc), sortedCopy(want))
				}
				genv := env(svc)
				for k, v := range tc.env[sname] {
					if got, ok := genv[k]; !ok || got != v {
						t.Errorf("%s: environment %s=%q (set %v), want %q", sname, k, got, ok, v)
					}
				}
				for _, k := range tc.unset {
					k, only, scoped := strings.Cut(k, "@")
					if _, ok := genv[k]; ok && (!scoped || only == sname) {
						t.Errorf("%s: environment has %s=%q, which it must not", sname, k, genv[k])
					}
				}
				if gotGPU, wantGPU := len(gpus(svc)) > 0, slices.Contains(tc.gpu, sname); gotGPU != wantGPU {
					t.Errorf("%s: GPU reservation %v, want %v", sname, gpus(svc), wantGPU)
				}
				if h := hosts(svc); !slices.Equal(h, gw) {
					t.Errorf("%s: extra_hosts %v, want %v", sname, h, gw)
				}
			}
			if tc.check != nil {
				tc.check(t, res.Plan)
			}
		})
	}
	for name := range userStyleCases {
		if !seen[name] {
			t.Errorf("userStyleCases has %s, which %s does not", name, root)
		}
	}
	if len(seen) < 8 {
		t.Errorf("%d configs in %s, want at least 8", len(seen), root)
	}
	composeAccepts(t, configured)
}

// userWant is what a user of a config must get.
type userWant struct {
	uid, gid int
	password bool
	pub      string // the one public key's text; "" for none (or a file, with pubFile)
	pubFile  bool   // a public key file from installation/, bound into the build
	priv     string // the private key's file name under ~/.ssh; "" for none
}

func wantUsers(t *testing.T, p plan.Plan, want map[string]userWant) {
	t.Helper()
	users := p.Stages[0].Script.Users
	if len(users) != len(want) {
		t.Errorf("%d users, want %d", len(users), len(want))
	}
	for _, u := range users {
		w, ok := want[u.Name]
		if !ok {
			t.Errorf("unexpected user %s", u.Name)
			continue
		}
		var pub string
		if len(u.PubKeys) == 1 {
			pub = u.PubKeys[0]
		}
		if u.Name != "root" && (u.UID != w.uid || u.GID != w.gid) {
			t.Errorf("%s: uid %d gid %d, want %d %d", u.Name, u.UID, u.GID, w.uid, w.gid)
		}
		if (u.PasswordHash != "") != w.password || len(u.PubKeys) > 1 || pub != w.pub || (u.PubKeyFile != "") != w.pubFile || u.PrivKeyName != w.priv ||
			(u.PrivKeySecret != "") != (w.priv != "") {
			t.Errorf("%s: password %v, public keys %q (file %q), private key %q (secret %q); want password %v, public %q (file %v), private %q",
				u.Name, u.PasswordHash != "", u.PubKeys, u.PubKeyFile, u.PrivKeyName, u.PrivKeySecret, w.password, w.pub, w.pubFile, w.priv)
		}
	}
}

// hookArgs are a hook's arguments as written, a variable as $NAME.
func hookArgs(h plan.Hook) []string {
	var out []string
	for _, a := range h.Args {
		var s string
		for _, part := range a {
			if part.Var != "" {
				s += "$" + part.Var
			} else {
				s += part.Lit
			}
		}
		out = append(out, s)
	}
	return out
}

// wantOnBuild checks that a stage's i-th on_build step runs script with
// args (the step's argv ends with them).
func wantOnBuild(t *testing.T, s plan.Stage, i int, script string, args ...string) {
	t.Helper()
	var builds []plan.Step
	for _, st := range s.Steps {
		if st.OnBuild {
			builds = append(builds, st)
		}
	}
	want := append([]string{"/pei-init/" + script}, args...)
	if i >= len(builds) || len(builds[i].Command) < len(want) || !slices.Equal(builds[i].Command[len(builds[i].Command)-len(want):], want) {
		t.Errorf("%s on_build[%d]: steps %+v, want argv ending %q", s.Name, i, builds, want)
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func equalJSON(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
