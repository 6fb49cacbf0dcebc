package e2e

import (
	"bytes"
	"fmt"
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

	rt := filepath.Join(t.TempDir(), "rt")
	var compose strings.Builder
	entry := func(key string, strict bool, uppers ...string) {
		fmt.Fprintf(&compose, "  %s:\n    output: '%s'\n    strict: %v\n    layers:\n      - image: '%s'\n", key, img("rt-"+key), strict, baseImage)
		for _, u := range uppers {
			fmt.Fprintf(&compose, "      - diff: {lower: '%s', upper: '%s'}\n", img("dev-base"), img(u))
		}
		made = append(made, img("rt-"+key))
	}
	sets := [][]*composeLang{{langs[0], langs[1]}, {langs[0], langs[2]}, {langs[1], langs[2]}, langs}
	for _, set := range sets {
		var names []string
		for _, l := range set {
			names = append(names, l.name)
		}
		entry(strings.Join(names, "-"), true, names...)
	}
	entry("svc", false, "svc-a")
	entry("clash", false, "svc-a", "svc-b")
	entry("magic", false, "magic")
	entry("magic-strict", true, "magic")
	writeFile(t, filepath.Join(rt, "user_config.yml"), fmt.Sprintf("stage_1:\n  image: {base: '%s', output: '%s'}\n  ssh: {enable: false}\ncompose:\n%s",
		baseImage, img("rt-stage-1"), compose.String()), 0o644)
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
			refs := peiBuild(t, rt, state, os.Stderr, epoch, func(o *build.Flags) { o.Stage = key })
			digests[key] = refs[0]
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
