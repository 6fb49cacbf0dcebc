package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// project makes a project directory holding the given installation files.
func project(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, InstallDir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func parse(t *testing.T, dir, yml string, env map[string]string) (Config, error) {
	t.Helper()
	return Parse([]byte(yml), "user_config.yml", dir, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
}

const pubkey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGlwZ2ZhbHNlZmFsc2VmYWxzZWZhbHNlZmFsc2VmYWxz test"

// Messages are pinned exactly: they are the user interface of a bad config.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yml  string
		want string
	}{
		{"storage enum with did-you-mean", `
stage_1:
  image: {base: debian:bookworm}
stage_2:
  storage:
    app:
      type: volum
`, `user_config.yml:7:13: stage_2.storage.app.type: "volum" is not one of auto-volume, manual-volume, host, image (did you mean "auto-volume"?)`},
		{"unknown key with did-you-mean", `
stage_1:
  image: {base: debian:bookworm}
  sshh: {}
`, `user_config.yml:4:3: stage_1.sshh: unknown key "sshh" (did you mean "ssh"?)`},
		{"unknown key without a near name", `
stage_1:
  image: {base: debian:bookworm}
  zzzzzz: 1
`, `user_config.yml:4:3: stage_1.zzzzzz: unknown key "zzzzzz"; known keys: image, ssh, proxy, apt, environment, ports, device, storage, mount, custom`},
		{"wrong type", `
stage_1:
  image: {base: debian:bookworm}
  ssh:
    port: twenty-two
`, `user_config.yml:5:11: stage_1.ssh.port: expected an integer, got "twenty-two"`},
		{"list where a mapping belongs", `
stage_1:
  image: [debian]
`, `user_config.yml:3:10: stage_1.image: expected a mapping, got a list`},
		{"oci layout outside the project", `
stage_1:
  image: {base: 'oci-layout://../bases/debian:bookworm'}
`, `user_config.yml:3:17: stage_1.image.base: oci-layout: "../bases/debian" leaves the project directory; keep it inside the project`},
		{"oci layout that is not one", `
stage_1:
  image: {base: 'oci-layout://installation:v1'}
`, `user_config.yml:3:17: stage_1.image.base: oci-layout: installation has no index.json, so it is not an OCI image layout (unpack one there, e.g. tar -xf image.tar from pei build --output type=oci)`},
		{"oci layout as an output", `
stage_1:
  image: {base: debian:bookworm, output: 'oci-layout://out'}
`, `user_config.yml:3:42: stage_1.image.output: "oci-layout://out": an OCI layout can be a base, not an output; name the output like my-image:stage-1`},
		{"oci layout with a bad digest", `
stage_1:
  image: {base: 'oci-layout://bases/debian@sha256:123'}
`, `user_config.yml:3:17: stage_1.image.base: "oci-layout://bases/debian@sha256:123": "sha256:123" is not a digest (sha256:<64 hex digits>)`},
		{"final image mistakes", `
stage_1:
  image: {base: debian:bookworm}
stage_2:
  final:
    keep: [opt/app, /, /usr/lib/../lib]
    exclude: [lib/*.a, '']
    apt: ['Bad Name']
    strip: [docs, debugs]
`, `user_config.yml:6:12: stage_2.final.keep[0]: "opt/app" must be an absolute path in the stage-2 image
user_config.yml:6:21: stage_2.final.keep[1]: "/": give a clean path below / (like /opt/app), not / itself
user_config.yml:6:24: stage_2.final.keep[2]: "/usr/lib/../lib": give a clean path below / (like /opt/app), not / itself
user_config.yml:7:15: stage_2.final.exclude[0]: "lib/*.a": a pattern matches file names, without '/'; to leave out a directory give its absolute path
user_config.yml:7:24: stage_2.final.exclude[1]: "" excludes everything; name a path or a file name pattern
user_config.yml:8:11: stage_2.final.apt[0]: "Bad Name" is not a Debian package name
user_config.yml:9:19: stage_2.final.strip[1]: "debugs" is not one of docs, man, locales, debug (did you mean "debug"?)`},
		{"final image without paths", `
stage_1:
  image: {base: debian:bookworm}
stage_2:
  final: {base: debian:bookworm}
`, `user_config.yml:5:10: stage_2.final.keep: list the absolute paths to keep from the stage-2 image, e.g. [/opt/app]`},
		{"composed image mistakes", `
stage_1:
  image: {base: debian:bookworm}
compose:
  runtime:
    layers:
      - {image: rt:1, diff: {lower: a:1, upper: b:1}}
      - diff: {lower: a:1}
        exclude: [build]
  empty: {output: 'x:1'}
  "no whole":
    output: 'y:1'
    layers: [{diff: {lower: a:1, upper: b:1}}]
`, `user_config.yml:6:5: compose.runtime.output: give the composed image a name:tag, e.g. my-runtime:latest
user_config.yml:7:9: compose.runtime.layers[0]: give one of image, diff, catalog or runner
user_config.yml:8:15: compose.runtime.layers[1].diff: a diff needs lower and upper images
user_config.yml:9:19: compose.runtime.layers[1].exclude[0]: "build": give a clean absolute path below /
user_config.yml:10:10: compose.empty.layers: list the images to layer, e.g. [{image: runtime-base:latest}, {diff: {lower: dev-base:latest, upper: dev-lang:latest}}]
user_config.yml:12:5: compose.no whole: name "no whole" must use letters, digits, '_', '.' or '-'
user_config.yml:13:13: compose.no whole.layers: take at least one image whole (image: REF): it gives the composed image its config`},
		{"catalog mistakes", `
stage_1:
  image: {base: debian:bookworm}
catalog:
  python: {lower: dev:base, upper: dev:python, exclude: [pei-init]}
  half: {upper: 'dev:x'}
  "bad name": {lower: a:1, upper: 'b:1'}
compose:
  runtime:
    output: rt:1
    layers:
      - image: debian:bookworm
      - catalog: pyhton
      - {catalog: python, image: x:1}
`, `user_config.yml:5:58: catalog.python.exclude[0]: "pei-init": give a clean absolute path below /
user_config.yml:6:9: catalog.half: a catalog item needs lower (the image it was built on) and upper (that image with it built in)
user_config.yml:7:15: catalog.bad name: name "bad name" must use letters, digits, '_', '.' or '-'
user_config.yml:13:18: compose.runtime.layers[1].catalog: no catalog item "pyhton" (the project's catalog has: python, half, bad name)
user_config.yml:14:9: compose.runtime.layers[2]: give one of image, diff, catalog or runner`},
		{"runner mistakes", `
stage_1:
  image: {base: debian:bookworm}
compose:
  runtime:
    output: rt:1
    layers:
      - image: debian:bookworm
      - runner: {image: 'r:1', pip: requirements.txt, npm: package.json}
      - runner: {pip: reqs/requirements.txt}
      - runner: {image: 'r:1', npm: deps.json}
      - runner: {image: 'r:1', dir: ../outside, pip: requirements.txt}
      - runner: {image: 'r:1', npm: package.json, target: app}
`, `user_config.yml:9:17: compose.runtime.layers[1].runner: give one of pip (a requirements file) or npm (a package.json)
user_config.yml:10:17: compose.runtime.layers[2].runner.image: give the runner image: the language with its package manager and no compilers (e.g. a pei project's debian:bookworm + python3-pip)
user_config.yml:10:23: compose.runtime.layers[2].runner.pip: "reqs/requirements.txt": give a file name in dir (.); set dir to the directory that holds it
user_config.yml:11:37: compose.runtime.layers[3].runner.npm: "deps.json": name the package.json (npm installs what it lists)
user_config.yml:12:37: compose.runtime.layers[4].runner.dir: "../outside/requirements.txt" leaves the project directory; keep it inside the project
user_config.yml:13:37: compose.runtime.layers[5].runner.npm: package.json does not exist in the project (dir is relative to the project directory)
user_config.yml:13:59: compose.runtime.layers[5].runner.target: "app": give a clean absolute path below / for package.json and node_modules, e.g. /app`},
		{"catalog without a catalog", `
stage_1:
  image: {base: debian:bookworm}
compose:
  runtime:
    output: rt:1
    layers: [{image: debian:bookworm}, {catalog: python}]
`, `user_config.yml:7:50: compose.runtime.layers[1].catalog: no catalog item "python": the config has no catalog; declare it under catalog: (python: {lower: DEV-BASE, upper: DEV-BASE-WITH-IT}), or put it in pei serve's catalog for a build there`},
		{"proxy without a port", `
stage_1:
  image: {base: debian:bookworm}
stage_2:
  proxy: {enable_globally: true}
`, `user_config.yml:5:10: stage_2.proxy.port: a proxy port is required when the proxy is used (enable_globally or apt.use_proxy)`},
		{"bad secrets", `
stage_1:
  image: {base: debian:bookworm}
secrets:
  both: {env: TOKEN, file: x}
  "bad id!": {env: TOKEN}
  escape: {file: ../../etc/shadow}
`, `user_config.yml:5:9: secrets.both: give exactly one of env (an environment variable) or file
user_config.yml:6:3: secrets.bad id!.<key>: "bad id!" is not a usable secret id (letters, digits, '_', '.' and '-')
user_config.yml:7:18: secrets.escape.file: "../../etc/shadow" leaves the project directory; use an absolute path for a file elsewhere`},
		{"bad image reference", `
stage_1:
  image: {base: debian:bookworm, output: 'My-Image:stage-1'}
`, `user_config.yml:3:42: stage_1.image.output: "My-Image:stage-1" is not a valid image reference (lowercase name[:tag], e.g. my-image:stage-1): invalid reference format: repository name (library/My-Image) must be lowercase`},
		{"missing base", `
stage_1:
  image: {output: x:y}
`, `user_config.yml:3:10: stage_1.image.base: a base image is required, e.g. base: debian:bookworm`},
		{"missing hook script", `
stage_1:
  image: {base: debian:bookworm}
  custom:
    on_build: ['stage-1/custom/nope.sh --flag']
`, `user_config.yml:5:16: stage_1.custom.on_build[0]: installation/stage-1/custom/nope.sh does not exist (paths are relative to installation/ in the project); PeiDocker would have accepted the config and failed later, at build or start`},
		{"path escaping the project", `
stage_1:
  image: {base: debian:bookworm}
  custom:
    on_first_run: ['../../etc/passwd']
    on_every_run: ['/etc/passwd']
`, `user_config.yml:5:20: stage_1.custom.on_first_run[0]: "../../etc/passwd" leaves the installation/ directory; keep files inside the project
user_config.yml:6:20: stage_1.custom.on_every_run[0]: "/etc/passwd" is absolute; paths are relative to installation/ in the project (e.g. stage-1/custom/setup.sh)`},
		{"duplicate ports", `
stage_1:
  image: {base: debian:bookworm}
  ssh: {host_port: 2222}
  ports: ['8080:80']
stage_2:
  ports: ['2222:22', '127.0.0.1:8080:8080']
`, `user_config.yml:7:11: stage_2.ports[0]: host port 2222 is already published by stage_1.ssh.host_port
user_config.yml:7:22: stage_2.ports[1]: host port 8080 is already published by stage_1.ports[0]`},
		{"host storage without host_path, manual volume without name", `
stage_1:
  image: {base: debian:bookworm}
stage_2:
  storage:
    data: {type: host}
    app: {type: manual-volume}
`, `user_config.yml:6:11: stage_2.storage.data.host_path: host_path is required when type is host: the host directory to mount
user_config.yml:7:10: stage_2.storage.app.volume_name: volume_name is required when type is manual-volume: the name of an existing Docker volume`},
		{"password with a newline", `
stage_1:
  image: {base: debian:bookworm}
  ssh:
    users:
      me:
        password: "line1\nline2"
`, `user_config.yml:7:19: stage_1.ssh.users.me.password: the password has a control character at position 6; passwords may hold any printable character, but no newline, tab or other control character`},
		{"malformed keys", `
stage_1:
  image: {base: debian:bookworm}
  ssh:
    users:
      me:
        pubkey_text: 'ssh-rsa not-base64'
        privkey_text: 'nope'
`, `user_config.yml:7:22: stage_1.ssh.users.me.pubkey_text: not an OpenSSH public key (expected a line like 'ssh-ed25519 AAAA... comment')
user_config.yml:8:23: stage_1.ssh.users.me.privkey_text: not a private key in OpenSSH or PEM format`},
		{"two on_entry", `
stage_1:
  image: {base: debian:bookworm}
  custom:
    on_entry: ['stage-1/custom/a.sh', 'stage-1/custom/a.sh']
`, `user_config.yml:5:39: stage_1.custom.on_entry[1]: on_entry takes at most one entry (the container's main program); found 2`},
		{"yaml syntax error", "stage_1:\n  image:\n\tbase: x\n", `user_config.yml:3:1: YAML syntax error: found character that cannot start any token (a tab: YAML indents with spaces only)`},
		{"duplicate key", `
stage_1:
  image: {base: debian:bookworm}
  ports: []
  ports: []
`, `user_config.yml:5:3: stage_1.ports: duplicate key "ports"`},
		{"bad user name and uid", `
stage_1:
  image: {base: debian:bookworm}
  ssh:
    users:
      Bad Name: {password: x}
      me: {uid: 0}
`, `user_config.yml:6:7: stage_1.ssh.users.Bad Name.<key>: "Bad Name" is not a valid user name (letters, digits, '.', '_' and '-', not starting with '-', at most 32)
user_config.yml:7:17: stage_1.ssh.users.me.uid: 0 is not a usable uid (1-65533; 0 is root)`},
		{"required variable", `
stage_1:
  image: {base: '${BASE:?set BASE to the base image}'}
`, `user_config.yml:3:17: stage_1.image.base: variable BASE: set BASE to the base image`},
		{"bad environment entry", `
stage_1:
  image: {base: debian:bookworm}
  environment: ['NOEQUALS', '1BAD=x']
`, `user_config.yml:4:17: stage_1.environment[0]: expected K=V, got "NOEQUALS"
user_config.yml:4:29: stage_1.environment[1]: "1BAD" is not a valid environment variable name (letters, digits and _, not starting with a digit)`},
		{"merge keys", `
base: &b {base: debian:bookworm}
stage_1:
  image: {<<: *b}
`, `user_config.yml:2:1: base: unknown key "base"; known keys: stage_1, stage_2, source_date_epoch, secrets, compose, catalog
user_config.yml:4:11: stage_1.image: YAML merge keys (<<) are not supported; write the keys out`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := project(t, "stage-1/custom/a.sh")
			_, err := parse(t, dir, tc.yml, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestEveryProblemAtOnceSorted(t *testing.T) {
	_, err := parse(t, t.TempDir(), `
stage_2:
  device: {type: tpu}
stage_1:
  image: {base: debian:bookworm}
  device: {type: gpuu}
  proxy: {port: 99999}
`, nil)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i := 1; i < len(errs); i++ {
		if errs[i].Line < errs[i-1].Line {
			t.Errorf("not sorted by line: %v", err)
		}
	}
}

func TestValid(t *testing.T) {
	dir := project(t, "stage-1/custom/a.sh", "stage-1/system/keys/me.pub")
	os.WriteFile(filepath.Join(dir, InstallDir, "stage-1/system/keys/me.pub"), []byte(pubkey+"\n"), 0o644)
	c, err := parse(t, dir, `
stage_1:
  image: {base: '${BASE:-debian:bookworm}', output: 'x:${TAG}'}
  ssh:
    users:
      me: {password: 'a b,c:d "e" $f', pubkey_file: stage-1/system/keys/me.pub, uid: 1200}
      root: {password: 123456}
  environment:
    - 'A=x=y'
    - 'B={{RUNTIME}}'
  custom:
    on_build: ['stage-1/custom/a.sh "two words" $$HOME']
stage_2:
  environment: {C: 1, D: 'two words'}
  storage:
    app: {type: host, host_path: ./app}
`, map[string]string{"TAG": "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Stage1.Image.Base.Raw; got != "debian:bookworm" {
		t.Errorf("base = %q", got)
	}
	if got := c.Stage1.Image.Output; got != "x:v1" {
		t.Errorf("output = %q", got)
	}
	if u := c.Stage1.SSH.Users; len(u) != 2 || u[0].Name != "me" || u[0].Password != `a b,c:d "e" $f` || *u[0].UID != 1200 || u[1].Password != "123456" {
		t.Errorf("users = %+v", u)
	}
	want := EnvList{{Name: "A", Value: "x=y"}, {Name: "B", Value: "${RUNTIME}", RunRefs: []Span{{0, 10}}}}
	if !reflect.DeepEqual(c.Stage1.Environment, want) {
		t.Errorf("env = %v", c.Stage1.Environment)
	}
	if e := c.Stage2.Environment; !reflect.DeepEqual(e, EnvList{{Name: "C", Value: "1"}, {Name: "D", Value: "two words"}}) {
		t.Errorf("stage-2 env = %v", e)
	}
	if got := c.Stage1.Custom.OnBuild[0].Raw; got != `stage-1/custom/a.sh "two words" $HOME` {
		t.Errorf("on_build = %q", got)
	}
	if p := c.Positions["stage_1.ssh.users.me.password"]; p.Line != 6 {
		t.Errorf("position of the password = %+v", p)
	}
	d := WithDefaults(c)
	if d.Stage2.Image.Base.Raw != "x:v1" || d.Stage2.Storage.Data.Type != "image" || *d.Stage1.SSH.Port != 22 || !*d.Stage1.SSH.Enable {
		t.Errorf("defaults: %+v %+v", d.Stage2.Image, d.Stage1.SSH)
	}
	if c.Stage2.Storage.Data != nil {
		t.Error("WithDefaults changed its input")
	}
}

func TestParseLayoutRef(t *testing.T) {
	const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		in     string
		want   LayoutRef
		engine string
	}{
		{"oci-layout://bases/debian", LayoutRef{Path: "bases/debian"}, "pei-layout/bases-debian:latest"},
		{"oci-layout://./bases/Debian:bookworm", LayoutRef{Path: "bases/Debian", Tag: "bookworm"}, "pei-layout/bases-debian:bookworm"},
		{"oci-layout://b:v1@" + dgst, LayoutRef{Path: "b", Tag: "v1", Digest: dgst}, "pei-layout/b:v1"},
		{"oci-layout://host:5000/x", LayoutRef{Path: "host:5000/x"}, "pei-layout/host-5000-x:latest"},
	} {
		got, ok, err := ParseLayoutRef(tc.in)
		if !ok || err != nil || got != tc.want || got.EngineName() != tc.engine {
			t.Errorf("ParseLayoutRef(%q) = %+v %v %v, engine name %q; want %+v, %q", tc.in, got, ok, err, got.EngineName(), tc.want, tc.engine)
		}
	}
	if _, ok, _ := ParseLayoutRef("debian:bookworm"); ok {
		t.Errorf("a plain image name parsed as a layout")
	}
	for _, bad := range []string{"oci-layout://", "oci-layout://:tag", "oci-layout://d:bad!tag", "oci-layout://d@md5:00"} {
		if _, ok, err := ParseLayoutRef(bad); !ok || err == nil {
			t.Errorf("ParseLayoutRef(%q): no error", bad)
		}
	}
}

func TestSymlinkOutOfProject(t *testing.T) {
	dir := project(t)
	os.MkdirAll(filepath.Join(dir, InstallDir, "stage-1"), 0o755)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, InstallDir, "stage-1/evil.sh")); err != nil {
		t.Fatal(err)
	}
	_, err := parse(t, dir, "stage_1:\n  image: {base: x}\n  custom: {on_build: [stage-1/evil.sh]}\n", nil)
	if err == nil || !strings.Contains(err.Error(), "outside the project") {
		t.Fatalf("symlink out of the project: %v", err)
	}
}

// Hostile input fails fast with a clear message.
func TestHostile(t *testing.T) {
	t.Run("alias bomb", func(t *testing.T) {
		bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		prev := "a"
		for i := 0; i < 9; i++ {
			n := string(rune('b' + i))
			bomb += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
			prev = n
		}
		bomb += "stage_1:\n  image: {base: x}\n  ports: *" + prev + "\n  environment: *" + prev + "\n"
		_, err := parse(t, "", bomb, nil)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) > 40 {
			t.Fatalf("alias bomb: want a few errors, got %d: %v", len(errs), err)
		}
	})
	t.Run("too many nodes", func(t *testing.T) {
		yml := "stage_1:\n  image: {base: x}\n  ports:\n" + strings.Repeat("  - '1'\n", 120_000)
		_, err := parse(t, "", yml, nil)
		if err == nil || !strings.Contains(err.Error(), "more than 100000 nodes") {
			t.Fatalf("120k entries: %v", err)
		}
	})
	t.Run("huge file", func(t *testing.T) {
		dir := t.TempDir()
		f, err := os.Create(filepath.Join(dir, DefaultFile))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(100 << 20)
		f.Close()
		_, err = Load(LoadOptions{ProjectDir: dir})
		if err == nil || !strings.Contains(err.Error(), "a config may be at most 1048576 bytes") || !errors.Is(err, ErrInvalid) {
			t.Fatalf("100 MB file: %v", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if _, err := parse(t, "", "", nil); err == nil || !strings.Contains(err.Error(), "the config is empty") {
			t.Fatalf("empty: %v", err)
		}
	})
}

func TestInterpolate(t *testing.T) {
	env := map[string]string{"SET": "v", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${SET}/${UNSET}", "v/", ""},
		{"${UNSET:-d}|${EMPTY:-d}|${EMPTY-d}|${UNSET-d}", "d|d||d", ""},
		{"$$HOME $x {{RUN}} {{ RUN2 }} {{not a var}}", "$HOME $x ${RUN} ${RUN2} {{not a var}}", ""},
		{"{{TAG:-dev}} {{ T :- a b }} {{E:-}}", "${TAG:-dev} ${T:-a b} ${E:-}", ""},
		{"{{TAG:-`id`}}", "", "a default cannot hold"},
		{"{{TAG:-a\"b}}", "", "a default cannot hold"},
		{"${UNSET:?needed}", "", "variable UNSET: needed"},
		{"${OPEN", "", "unclosed ${"},
		{"${1X}", "", "is not a variable name"},
	} {
		got, err := interpolate(tc.in, lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
