package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestImageRefParsedOnce: Load keeps every base and composed-image
// reference as written together with its parsed form, wherever it is
// written, so nothing after Load parses it again.
func TestImageRefParsedOnce(t *testing.T) {
	dgst := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		ref  string
		want *LayoutRef
	}{
		{"debian:bookworm", nil},
		{"registry.example.com:5000/team/base@" + dgst, nil},
		{"oci-layout://bases/debian", &LayoutRef{Path: "bases/debian"}},
		{"oci-layout://./bases/debian:bookworm", &LayoutRef{Path: "bases/debian", Tag: "bookworm"}},
		{"oci-layout://bases/debian@" + dgst, &LayoutRef{Path: "bases/debian", Digest: dgst}},
		{"oci-layout://b:v1@" + dgst, &LayoutRef{Path: "b", Tag: "v1", Digest: dgst}},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			c, err := Parse([]byte(`
stage_1:
  image: {base: '`+tc.ref+`'}
stage_2:
  image: {base: '`+tc.ref+`'}
  final: {base: '`+tc.ref+`', keep: [/opt/app]}
compose:
  c:
    output: 'c:1'
    layers: [{image: '`+tc.ref+`'}, {diff: {lower: '`+tc.ref+`', upper: '`+tc.ref+`'}}]
`), "user_config.yml", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			layers := c.Compose[0].Layers
			for where, got := range map[string]*ImageRef{
				"stage_1.image.base": c.Stage1.Image.Base, "stage_2.image.base": c.Stage2.Image.Base,
				"stage_2.final.base": c.Stage2.Final.Base, "compose.c.layers[0].image": &layers[0].Image,
				"compose.c.layers[1].diff.lower": &layers[1].Diff.Lower, "compose.c.layers[1].diff.upper": &layers[1].Diff.Upper,
			} {
				if got == nil || got.Raw != tc.ref || !reflect.DeepEqual(got.Layout, tc.want) {
					t.Errorf("%s = %+v, want raw %q, layout %+v", where, got, tc.ref, tc.want)
				}
			}
		})
	}
}

// TestImageRefErrors: the errors of a malformed reference are the ones
// validation has always given, at the value's position.
func TestImageRefErrors(t *testing.T) {
	for _, tc := range []struct {
		yml, want string
	}{
		{"stage_1:\n  image: {base: 'oci-layout://:v1'}\n",
			`user_config.yml:2:17: stage_1.image.base: "oci-layout://:v1" names no directory; write oci-layout://DIR[:TAG], DIR relative to the project`},
		{"stage_1:\n  image: {base: 'oci-layout://d:bad!tag'}\n",
			`user_config.yml:2:17: stage_1.image.base: "oci-layout://d:bad!tag": "bad!tag" is not a valid tag`},
		{"stage_1:\n  image: {base: x}\ncompose:\n  c: {output: 'c:1', layers: [{image: 'oci-layout://d@md5:00'}]}\n",
			`user_config.yml:4:39: compose.c.layers[0].image: "oci-layout://d@md5:00": "md5:00" is not a digest (sha256:<64 hex digits>)`},
		{"stage_1:\n  image: {base: x}\ncompose:\n  c: {output: 'oci-layout://c', layers: [{image: 'x'}]}\n",
			`user_config.yml:4:15: compose.c.output: "oci-layout://c": an OCI layout can be a base, not an output; name the output like my-image:stage-1`},
		{"stage_1:\n  image: {base: 'Debian:Bookworm'}\n",
			`user_config.yml:2:17: stage_1.image.base: "Debian:Bookworm" is not a valid image reference (lowercase name[:tag], e.g. my-image:stage-1): invalid reference format: repository name (library/Debian) must be lowercase`},
	} {
		_, err := Parse([]byte(tc.yml), "user_config.yml", "", nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.yml, err, tc.want)
		}
	}
}

// TestHookParsedOnce: Load splits every hook entry into its script and
// arguments with POSIX shell quoting rules, keeping the entry as written;
// $NAME and ${NAME} stay variables for the container to expand (PeiDocker's
// "script args" rules).
func TestHookParsedOnce(t *testing.T) {
	lits := func(s ...string) []Arg {
		out := []Arg{}
		for _, x := range s {
			out = append(out, LitArg(x))
		}
		return out
	}
	for _, tc := range []struct {
		entry  string // as written in YAML (single-quoted)
		raw    string // after ${VAR} expansion
		script string
		args   []Arg
	}{
		{"stage-1/custom/a.sh", "stage-1/custom/a.sh", "stage-1/custom/a.sh", []Arg{}},
		{"a.sh x y", "a.sh x y", "a.sh", lits("x", "y")},
		{`a.sh "two words" ''single quoted'' ""`, `a.sh "two words" 'single quoted' ""`, "a.sh", []Arg{LitArg("two words"), LitArg("single quoted"), {}}},
		{`a.sh --name="x y" $HOME`, `a.sh --name="x y" $HOME`, "a.sh", []Arg{LitArg("--name=x y"), {{Var: "HOME"}}}},
		{`"dir with space/a.sh" ${V}`, `"dir with space/a.sh" v1`, "dir with space/a.sh", lits("v1")},
		// Variables expand in the container: $NAME, ${NAME} (written $${NAME};
		// {{NAME}} is refused), unquoted or in double quotes, never in single quotes.
		{`a.sh --cache-dir=$PEI_SOFT_DATA/cache`, `a.sh --cache-dir=$PEI_SOFT_DATA/cache`, "a.sh", []Arg{{{Lit: "--cache-dir="}, {Var: "PEI_SOFT_DATA"}, {Lit: "/cache"}}}},
		{`a.sh "$${HOME}x" $${U}`, `a.sh "${HOME}x" ${U}`, "a.sh", []Arg{{{Var: "HOME"}, {Lit: "x"}}, {{Var: "U"}}}},
		{`a.sh ''$HOME'' \$HOME "\$HOME"`, `a.sh '$HOME' \$HOME "\$HOME"`, "a.sh", lits("$HOME", "$HOME", "$HOME")},
		// A backslash in double quotes is kept unless it escapes $ ` " \.
		{`a.sh "i\j" "a\\b" "q\"q" i\j`, `a.sh "i\j" "a\\b" "q\"q" i\j`, "a.sh", lits(`i\j`, `a\b`, `q"q`, "ij")},
		{`a.sh x # a comment`, `a.sh x # a comment`, "a.sh", lits("x")},
		{`a.sh a#b "&&" '';''`, `a.sh a#b "&&" ';'`, "a.sh", lits("a#b", "&&", ";")},
	} {
		t.Run(tc.entry, func(t *testing.T) {
			yml := "stage_1:\n  image: {base: x}\n  custom:\n"
			for _, key := range []string{"on_build", "on_first_run", "on_every_run", "on_user_login", "on_entry"} {
				yml += "    " + key + ": ['" + tc.entry + "']\n"
			}
			c, err := Parse([]byte(yml), "user_config.yml", "", func(string) (string, bool) { return "v1", true })
			if err != nil {
				t.Fatal(err)
			}
			cu := c.Stage1.Custom
			want := Hook{Raw: tc.raw, Script: tc.script, Args: tc.args}
			for key, hooks := range map[string][]Hook{"on_build": cu.OnBuild, "on_first_run": cu.OnFirstRun,
				"on_every_run": cu.OnEveryRun, "on_user_login": cu.OnUserLogin, "on_entry": cu.OnEntry} {
				if len(hooks) != 1 || !reflect.DeepEqual(hooks[0], want) {
					t.Errorf("%s = %#v, want %#v", key, hooks, want)
				}
			}
		})
	}
}

// TestHookErrors: an entry that cannot be split is reported at its
// position, as validation has always done.
func TestHookErrors(t *testing.T) {
	for _, tc := range []struct {
		entry, want string
	}{
		{`a.sh "unclosed`, `user_config.yml:4:16: stage_1.custom.on_build[0]: cannot split "a.sh \"unclosed" into a path and arguments: the " at byte 6 is not closed`},
		{`a.sh x; rm -rf /`, `user_config.yml:4:16: stage_1.custom.on_build[0]: ';' at byte 7 is shell syntax that a hook entry cannot hold (it is a script path and its arguments); quote it (';') to pass it as an argument`},
		{`a.sh $(id)`, `user_config.yml:4:16: stage_1.custom.on_build[0]: "$(" at byte 6: hook arguments expand only $NAME and ${NAME} (inside the container, when the hook runs); write \$ or put it in single quotes for a literal $`},
		{`a.sh "` + "`id`" + `"`, "user_config.yml:4:16: stage_1.custom.on_build[0]: ` at byte 7: command substitution is not supported in hook arguments; run the command in the script, or write \\` for a literal `"},
		{`$$D/a.sh`, `user_config.yml:4:16: stage_1.custom.on_build[0]: the script path "$D/a.sh" holds a variable; give the path relative to installation/ as written`},
		{`  `, `user_config.yml:4:16: stage_1.custom.on_build[0]: empty entry; give a script path relative to installation/`},
		{`/abs.sh`, `user_config.yml:4:16: stage_1.custom.on_build[0]: "/abs.sh" is absolute; paths are relative to installation/ in the project (e.g. stage-1/custom/setup.sh)`},
	} {
		yml := "stage_1:\n  image: {base: x}\n  custom:\n    on_build: ['" + tc.entry + "']\n"
		_, err := Parse([]byte(yml), "user_config.yml", "", nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.entry, err, tc.want)
		}
	}
}

// TestValidTag: one tag rule, for layout tags and pei serve's build tags.
func TestValidTag(t *testing.T) {
	for _, tc := range []struct {
		tag string
		ok  bool
	}{
		{"latest", true}, {"v1.2_3-rc", true}, {"_x", true}, {strings.Repeat("a", 128), true},
		{"", false}, {".x", false}, {"-x", false}, {"a/b", false}, {"a:b", false}, {"bad!tag", false}, {strings.Repeat("a", 129), false},
	} {
		if got := ValidTag(tc.tag); got != tc.ok {
			t.Errorf("ValidTag(%q) = %v", tc.tag, got)
		}
	}
}
