package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/testenv"
)

// composeLang is a language built as its own dev project on the dev base.
type composeLang struct {
	name, packages string
	// smoke imports a package of the language's diff and prints want.
	smoke, want string
	// installed and libs are read from the built dev image: the packages
	// the language added to the dev base, and the shared libraries (by
	// soname path) they hold.
	installed, libs []string
}

// TestComposedLanguages composes runtimes from Debian's python3, nodejs and
// ruby, each built as a dev project on a dev base that has more than the
// runtime base (file, libmagic1, a user): every pair and all three. It
// checks that package managers believe the result (dpkg, apt, ldconfig),
// that each language imports a package of its own diff, that the dev base's
// packages and users stay out, that apt installs only what a new package
// needs, that the digest is reproducible, and that what cannot be merged is
// reported: a user two diffs add differently, and a dependency only the dev
// base satisfied (a warning, an error with strict).
func TestComposedLanguages(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	name := fmt.Sprintf("pei-e2e-%d-langs", os.Getpid())
	img := func(tag string) string { return name + ":" + tag }
	var made []string
	t.Cleanup(func() { runErr("", "docker", append([]string{"rmi", "-f"}, made...)...) })
	state := t.TempDir()

	// project builds a one-stage pei project on base, running script.
	project := func(tag, base, script string) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), tag)
		// Each project names its script for itself: the scripts stay in
		// the image (/pei-init), and two diffs holding one path with
		// different contents is reported.
		writeFile(t, filepath.Join(dir, "installation/stage-1/custom/"+tag+".sh"), "#!/bin/sh\nset -e\n"+script, 0o755)
		writeFile(t, filepath.Join(dir, "user_config.yml"), fmt.Sprintf(`stage_1:
  image: {base: '%s', output: '%s'}
  ssh: {enable: false}
  custom: {on_build: ['stage-1/custom/%s.sh']}
`, base, img(tag), tag), 0o644)
		made = append(made, img(tag))
		peiBuild(t, dir, state, os.Stderr)
	}
	const apt = "apt-get update\napt-get install -y --no-install-recommends "
	project("dev-base", baseImage, apt+"file\nuseradd -m -u 1900 devonly\n")
	langs := []*composeLang{
		{name: "python", packages: "python3 python3-six", smoke: `python3 -c 'import six; print(six.__name__)'`, want: "six"},
		{name: "node", packages: "nodejs node-semver", smoke: `node -e 'console.log(require("semver").valid("1.2.3"))'`, want: "1.2.3"},
		{name: "ruby", packages: "ruby ruby-rainbow", smoke: `ruby -e 'require "rainbow"; puts Rainbow.uncolor(Rainbow("rainbow").red)'`, want: "rainbow"},
	}
	baseList := packages(t, img("dev-base"))
	for _, l := range langs {
		project(l.name, img("dev-base"), apt+l.packages+"\n")
		for _, p := range packages(t, img(l.name)) {
			if !slices.Contains(baseList, p) {
				l.installed = append(l.installed, p)
			}
		}
		// The shared libraries the language's packages put where ldconfig
		// looks, by the soname path ldconfig -p prints.
		out := run(t, "", "docker", "run", "--rm", "--entrypoint", "sh", img(l.name), "-c",
			`dpkg -L `+strings.Join(l.installed, " ")+` | grep -E '^/(usr/)?lib/[^/]*-linux-gnu[^/]*/lib[^/]*\.so\.[0-9]+$' | sort -u || true`)
		l.libs = strings.Fields(out)
		t.Logf("%s adds %d packages (%s) and %d libraries (%s)", l.name, len(l.installed), strings.Join(l.installed, " "), len(l.libs), strings.Join(l.libs, " "))
		if len(l.installed) < 2 {
			t.Fatalf("%s: the dev image adds %v to the dev base, want at least the language and its package", l.name, l.installed)
		}
	}
	if len(langs[0].libs) == 0 || len(langs[1].libs) == 0 {
		t.Fatalf("python and node add no shared library (libpython3.11, libnode): %v, %v", langs[0].libs, langs[1].libs)
	}
	// Users and a dependency on what only the dev base has.
	project("svc-a", img("dev-base"), "useradd -u 1500 -r svc\n")
	project("svc-b", img("dev-base"), "useradd -u 1600 -r svc\n")
	project("magic", img("dev-base"), apt+"libmagic-dev\n")
	// Runners: each language with its package manager (and whatever that
	// pulls in), built on the language's dev image.
	project("runner-python", img("python"), apt+"python3-pip\n")
	project("runner-node", img("node"), apt+"npm\n")

	rt := filepath.Join(t.TempDir(), "rt")
	var compose strings.Builder
	// The languages come from the project's catalog (each item leaves out
	// its project's scripts, /pei-init); the other entries write diffs.
	layer := func(u string) string {
		if slices.ContainsFunc(langs, func(l *composeLang) bool { return l.name == u }) {
			return "      - catalog: " + u + "\n"
		}
		return fmt.Sprintf("      - diff: {lower: '%s', upper: '%s'}\n", img("dev-base"), img(u))
	}
	entry := func(key string, strict bool, layers ...string) {
		fmt.Fprintf(&compose, "  %s:\n    output: '%s'\n    strict: %v\n    layers:\n      - image: '%s'\n", key, img("rt-"+key), strict, baseImage)
		for _, l := range layers {
			compose.WriteString(l)
		}
		made = append(made, img("rt-"+key))
	}
	sets := [][]*composeLang{{langs[0], langs[1]}, {langs[0], langs[2]}, {langs[1], langs[2]}, langs}
	for _, set := range sets {
		var names, layers []string
		for _, l := range set {
			names = append(names, l.name)
			layers = append(layers, layer(l.name))
		}
		entry(strings.Join(names, "-"), true, layers...)
	}
	entry("svc", false, layer("svc-a"))
	entry("clash", false, layer("svc-a"), layer("svc-b"))
	entry("magic", false, layer("magic"))
	entry("magic-strict", true, layer("magic"))
	// The project's own dependencies: a wheel built here (PyPI is not
	// reachable) and a package from the npm registry, with its lockfile.
	writeFile(t, filepath.Join(rt, "py/requirements.txt"), "./wheels/peiwheel-1.0-py3-none-any.whl\n", 0o644)
	writeWheel(t, filepath.Join(rt, "py/wheels/peiwheel-1.0-py3-none-any.whl"))
	writeFile(t, filepath.Join(rt, "web/package.json"), `{"name": "web", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}}`+"\n", 0o644)
	writeFile(t, filepath.Join(rt, "web/package-lock.json"), isNumberLock, 0o644)
	entry("app", true, layer("python"), layer("node"),
		fmt.Sprintf("      - runner: {image: '%s', dir: py, pip: requirements.txt}\n", img("runner-python")),
		fmt.Sprintf("      - runner: {image: '%s', dir: web, npm: package.json, target: /srv/web}\n", img("runner-node")))
	// python was built on dev-base, not on svc-a.
	entry("stale", false, fmt.Sprintf("      - diff: {lower: '%s', upper: '%s'}\n", img("svc-a"), img("python")))
	var catalog strings.Builder
	for _, l := range langs {
		fmt.Fprintf(&catalog, "  %s: {lower: '%s', upper: '%s', exclude: [/pei-init]}\n", l.name, img("dev-base"), img(l.name))
	}
	writeFile(t, filepath.Join(rt, "user_config.yml"), fmt.Sprintf("stage_1:\n  image: {base: '%s', output: '%s'}\n  ssh: {enable: false}\ncatalog:\n%scompose:\n%s",
		baseImage, img("rt-stage-1"), catalog.String(), compose.String()), 0o644)
	epoch := func(o *build.Flags) {
		o.Getenv = func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return "1700000000"
			}
			return ""
		}
	}

	digests := map[string]string{}
	for _, set := range sets {
		var names []string
		for _, l := range set {
			names = append(names, l.name)
		}
		key := strings.Join(names, "-")
		t.Run(key, func(t *testing.T) {
			f := build.Flags{Dir: rt, StateDir: state, Stage: key, Progress: "plain"}
			epoch(&f)
			res, err := runBuild(t.Context(), f, os.Stderr)
			if err != nil {
				t.Fatalf("pei build --stage %s: %v", key, err)
			}
			if len(res) != 1 || len(res[0].Warnings) != 0 {
				t.Errorf("composing %s: %+v, want one image and no warnings", key, res)
			}
			digests[key] = res[0].Ref + "@" + res[0].Manifest
			image := img("rt-" + key)
			sh := func(script string) (string, error) {
				return runErr("", "docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script)
			}
			for _, check := range []string{"dpkg --audit", "dpkg -C", "apt-get check -q"} {
				if out, err := sh(check + " 2>&1"); err != nil || (check != "apt-get check -q" && strings.TrimSpace(out) != "") {
					t.Errorf("%s in %s: %v\n%s", check, image, err, out)
				}
			}
			var want []string
			for _, l := range set {
				want = append(want, l.installed...)
			}
			out, err := sh(`dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' ` + strings.Join(want, " "))
			if err != nil {
				t.Errorf("dpkg-query in %s: %v\n%s", image, err, out)
			}
			for _, p := range want {
				if !strings.Contains(out, "\n"+p+" ii ") && !strings.HasPrefix(out, p+" ii ") {
					t.Errorf("%s: dpkg does not know %s as installed:\n%s", image, p, out)
				}
			}
			ldcache, err := sh("ldconfig -p")
			if err != nil {
				t.Fatalf("ldconfig -p in %s: %v", image, err)
			}
			for _, l := range set {
				for _, lib := range l.libs {
					// By soname: with /lib merged into /usr/lib, which of
					// the two paths ldconfig prints is its choice.
					if !strings.Contains(ldcache, "\t"+path.Base(lib)+" (") {
						t.Errorf("%s: ldconfig -p does not list %s (of %s)", image, lib, l.name)
					}
				}
				if out, err := sh(l.smoke); err != nil || strings.TrimSpace(out) != l.want {
					t.Errorf("%s: %s: %v: %q, want %q", image, l.name, err, out, l.want)
				}
			}
			// The dev base's own package and user are not the runtime's.
			if out, err := sh("dpkg-query -W file 2>&1; getent passwd devonly; command -v file || echo no-file"); !strings.Contains(out, "no packages found matching file") ||
				strings.Contains(out, "devonly") || !strings.Contains(out, "no-file") {
				t.Errorf("%s: the dev base's package or user leaked in (%v):\n%s", image, err, out)
			}
		})
	}

	t.Run("runners", func(t *testing.T) {
		res, err := runBuild(t.Context(), build.Flags{Dir: rt, StateDir: state, Stage: "app"}, os.Stderr)
		if err != nil {
			t.Fatalf("compose app: %v", err)
		}
		if len(res[0].Warnings) != 0 {
			t.Errorf("warnings: %q", res[0].Warnings)
		}
		out, err := runErr("", "docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", img("rt-app"), "-c", `
			python3 -c 'import peiwheel; print("peiwheel", peiwheel.ANSWER)'
			cd /srv/web && node -e 'console.log("is-number", require("is-number")(5))'
			ls -d /root/.cache/pip /root/.npm /srv/web/package-lock.json /srv/web/node_modules/is-number/package.json 2>&1
			for c in pip pip3 npm gcc cc; do command -v $c || echo "no $c"; done
			dpkg -s python3-pip npm 2>&1 | grep '^dpkg-query'; dpkg --audit; apt-get check -q >/dev/null && echo apt-check-ok`)
		if err != nil {
			t.Fatalf("run rt-app: %v\n%s", err, out)
		}
		for _, s := range []string{"peiwheel 42\n", "is-number true\n", "/srv/web/package-lock.json\n", "/srv/web/node_modules/is-number/package.json\n",
			"ls: cannot access '/root/.cache/pip'", "ls: cannot access '/root/.npm'",
			"no pip\n", "no pip3\n", "no npm\n", "no gcc\n", "no cc\n",
			"package 'python3-pip' is not installed", "package 'npm' is not installed", "apt-check-ok\n"} {
			if !strings.Contains(out, s) {
				t.Errorf("the runtime with the runners' dependencies does not show %q:\n%s", s, out)
			}
		}
	})

	t.Run("apt installs only the new package", func(t *testing.T) {
		// python3-idna depends on python3 alone, which the python diff
		// installed: apt must not install python3 again.
		out, err := runErr("", "docker", "run", "--rm", "--entrypoint", "sh", img("rt-python-node-ruby"), "-c",
			`set -e; before=$(dpkg-query -W | wc -l); apt-get update -qq; apt-get install -y --no-install-recommends python3-idna >/tmp/log 2>&1 || { cat /tmp/log; exit 1; }
			 grep -E '^(Unpacking|Setting up) ' /tmp/log | sed 's/ (.*//' | sort -u; echo count $(( $(dpkg-query -W | wc -l) - before )); python3 -c 'import idna; print("idna ok")'`)
		if err != nil {
			t.Fatalf("apt-get install python3-idna: %v\n%s", err, out)
		}
		if want := "Setting up python3-idna\nUnpacking python3-idna\ncount 1\nidna ok\n"; out != want {
			t.Errorf("apt-get install python3-idna in the composed image:\n%s\nwant:\n%s", out, want)
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		key := "python-node-ruby"
		again := peiBuild(t, rt, state, os.Stderr, epoch, func(o *build.Flags) { o.Stage = key; o.NoCache = true })
		if len(again) != 1 || again[0] != digests[key] || !strings.Contains(again[0], "@sha256:") {
			t.Errorf("the same composed image built again without cache: %v, first %q", again, digests[key])
		}
	})

	t.Run("a user one diff adds", func(t *testing.T) {
		peiBuild(t, rt, state, os.Stderr, func(o *build.Flags) { o.Stage = "svc" })
		if out := run(t, "", "docker", "run", "--rm", "--entrypoint", "getent", img("rt-svc"), "passwd", "svc"); !strings.HasPrefix(out, "svc:x:1500:") {
			t.Errorf("user svc in the composed image: %q, want uid 1500", out)
		}
	})

	t.Run("a user two diffs add differently", func(t *testing.T) {
		_, err := runBuild(t.Context(), build.Flags{Dir: rt, StateDir: state, Stage: "clash"}, os.Stderr)
		if err == nil {
			t.Fatal("composing two diffs that add user svc with uids 1500 and 1600 succeeded")
		}
		for _, s := range []string{"/etc/passwd", "user svc", "[1] " + img("svc-a"), "[2] " + img("svc-b")} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("the clash error does not say %q:\n%v", s, err)
			}
		}
		if out, _ := runErr("", "docker", "image", "inspect", img("rt-clash")); !strings.Contains(out, "No such image") {
			t.Errorf("a failed compose left an image %s", img("rt-clash"))
		}
	})

	t.Run("a language not built on the lower", func(t *testing.T) {
		res, err := runBuild(t.Context(), build.Flags{Dir: rt, StateDir: state, Stage: "stale"}, os.Stderr)
		if err != nil {
			t.Fatalf("compose stale: %v", err)
		}
		w := strings.Join(res[0].Warnings, "\n")
		if !strings.Contains(w, img("python")+" was not built on "+img("svc-a")) {
			t.Errorf("diff(svc-a, python): warnings %q, want one saying python was not built on svc-a", w)
		}
	})

	t.Run("a dependency only the dev base had", func(t *testing.T) {
		var log bytes.Buffer
		res, err := runBuild(t.Context(), build.Flags{Dir: rt, StateDir: state, Stage: "magic"}, &log)
		if err != nil {
			t.Fatalf("compose magic: %v", err)
		}
		if len(res) != 1 || len(res[0].Warnings) == 0 {
			t.Fatalf("no warning for libmagic-dev's dependency on libmagic1, which only the dev base has: %+v", res)
		}
		w := strings.Join(res[0].Warnings, "\n")
		for _, s := range []string{"libmagic-dev", "libmagic1", "only the dev base", img("magic")} {
			if !strings.Contains(w, s) {
				t.Errorf("the warning does not say %q:\n%s", s, w)
			}
		}
		if !strings.Contains(log.String(), "warning: magic: ") || !strings.Contains(log.String(), "libmagic1") {
			t.Errorf("pei build did not print the warning:\n%s", log.String())
		}
		_, err = runBuild(t.Context(), build.Flags{Dir: rt, StateDir: state, Stage: "magic-strict"}, os.Stderr)
		if err == nil || !strings.Contains(err.Error(), "libmagic1") || !strings.Contains(err.Error(), "strict") {
			t.Errorf("with strict, the same dependency: %v, want an error naming libmagic1 and strict", err)
		}
	})
}

// packages lists the packages dpkg knows in an image.
func packages(t *testing.T, image string) []string {
	t.Helper()
	return strings.Fields(run(t, "", "docker", "run", "--rm", "--entrypoint", "dpkg-query", image, "-W", "-f", "${Package}\n"))
}

// isNumberLock is an npm lockfile (v3) for is-number 7.0.0, which has no
// dependencies.
const isNumberLock = `{
  "name": "web",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {"name": "web", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}},
    "node_modules/is-number": {
      "version": "7.0.0",
      "resolved": "https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz",
      "integrity": "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==",
      "engines": {"node": ">=0.12.0"}
    }
  }
}
`

// writeWheel writes a pure-Python wheel of package peiwheel 1.0 (ANSWER =
// 42), with the RECORD pip checks.
func writeWheel(t *testing.T, file string) {
	t.Helper()
	files := []struct{ name, body string }{
		{"peiwheel/__init__.py", "ANSWER = 42\n"},
		{"peiwheel-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: peiwheel\nVersion: 1.0\n"},
		{"peiwheel-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: pei-e2e\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name, body string) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, body); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		sum := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
		add(f.name, f.body)
	}
	record.WriteString("peiwheel-1.0.dist-info/RECORD,,\n")
	add("peiwheel-1.0.dist-info/RECORD", record.String())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, buf.String(), 0o644)
}
