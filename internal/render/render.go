package render

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"text/template"
	"unicode"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
)

//go:embed templates
var templateFS embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"sq":       ShellQuote,
	"dfq":      dockerfileQuote,
	"dfword":   dockerfileWord,
	"dffrom":   dockerfileFrom,
	"comment":  commentText,
	"argdef":   argDefault,
	"json":     func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
	"mount":    mountFlag,
	"carryDir": func() string { return plan.CarryDir },
}).ParseFS(templateFS, "templates/*"))

// File is one generated file, with a project-relative slash path.
type File struct {
	Path string
	Data []byte
	Mode uint32 // 0644 or 0755
}

// Options select optional outputs.
type Options struct {
	// ConfigFile names the config in generated comments.
	ConfigFile string
	// WithMerged adds merged.Dockerfile, build-merged.sh and run-merged.sh.
	WithMerged bool
	// FullCompose writes every setting into docker-compose.yml, including
	// ones equal to Compose's defaults.
	FullCompose bool
}

// Files renders every generated file of a plan, in a fixed order.
func Files(p plan.Plan, opts Options) ([]File, error) {
	if opts.ConfigFile == "" {
		opts.ConfigFile = config.DefaultFile
	}
	var files []File
	for _, s := range p.Stages {
		df, err := Dockerfile(p, s, opts.ConfigFile, false)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: s.Name + ".Dockerfile", Data: df, Mode: 0o644})
		scripts, err := StageScripts(s)
		if err != nil {
			return nil, err
		}
		files = append(files, scripts...)
	}
	if p.Final != nil {
		ff, err := FinalFiles(p, opts.ConfigFile)
		if err != nil {
			return nil, err
		}
		files = append(files, ff...)
	}
	compose, err := Compose(p, opts.FullCompose)
	if err != nil {
		return nil, err
	}
	files = append(files, File{Path: "docker-compose.yml", Data: compose, Mode: 0o644})
	if opts.WithMerged {
		merged, err := Merged(p, opts.ConfigFile)
		if err != nil {
			return nil, err
		}
		files = append(files, merged...)
	}
	return files, nil
}

func execute(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

type dockerStep struct {
	plan.Step
	Where string
}

// Dockerfile renders one stage. In a merged Dockerfile each stage is named
// and stage-2 builds on the stage-1 target.
func Dockerfile(p plan.Plan, s plan.Stage, configFile string, merged bool) ([]byte, error) {
	steps := dockerSteps(s.Steps, configFile)
	base, carry, args := fromImages(p, s, merged)
	as := ""
	if merged {
		as = s.Name
		// A merged Dockerfile's ARGs for FROM must come before its first
		// FROM: Merged writes them all there.
		args = nil
	}
	data := map[string]any{
		"Name": s.Name, "Project": p.Name, "ConfigFile": path.Base(configFile),
		"Base": base, "As": as, "Steps": steps, "Root": s.Root, "Args": args,
	}
	if c := s.Carry; c != nil {
		// Compose builds the final image after the stage it keeps paths of.
		data["Carry"] = map[string]any{"From": c.From, "Image": carry, "Steps": dockerSteps(c.Steps, configFile)}
	}
	return execute("Dockerfile.tmpl", data)
}

// fromImages are the images a stage's Dockerfile starts FROM (its base, and
// its carry image or ""), as written there. An image name holding {{VAR}}s
// cannot be written in FROM as it is: it becomes a build argument (args:
// its name and the config's value), which Compose resolves from its
// environment as it does the image names of docker-compose.yml, and whose
// default in the Dockerfile is the name at its variables' defaults.
func fromImages(p plan.Plan, s plan.Stage, merged bool) (base, carry string, args []config.EnvVar) {
	from := func(arg, image string) string {
		if !config.RuntimeVarRe.MatchString(image) {
			return image
		}
		args = append(args, config.EnvVar{Name: arg, Value: image})
		return "${" + arg + "}"
	}
	switch {
	case merged && s.BaseStage > 0:
		base = fmt.Sprintf("stage-%d", s.BaseStage)
	default:
		base = from(fmt.Sprintf("PEI_STAGE_%d_BASE", s.Index), s.Base)
	}
	if c := s.Carry; c != nil {
		carry = from("PEI_CARRY_IMAGE", p.Stages[c.From-1].Output)
	}
	return base, carry, args
}

// argDefault is a FROM argument's default in a Dockerfile: the image name
// with its variables at their defaults.
func argDefault(image string) (string, error) {
	return dockerfileQuote(config.ResolveRuntime(image, nil))
}

func dockerSteps(in []plan.Step, configFile string) []dockerStep {
	steps := make([]dockerStep, len(in))
	for i, st := range in {
		steps[i] = dockerStep{Step: st}
		if st.Pos.Line > 0 {
			steps[i].Where = fmt.Sprintf("%s:%d", path.Base(configFile), st.Pos.Line)
		}
	}
	return steps
}

// FinalFiles renders the final image's Dockerfile and the script that
// gathers its kept paths.
func FinalFiles(p plan.Plan, configFile string) ([]File, error) {
	f := p.Final
	df, err := Dockerfile(p, *f, configFile, false)
	if err != nil {
		return nil, err
	}
	script, err := execute("carry.sh.tmpl", f.Script.Final)
	if err != nil {
		return nil, err
	}
	return []File{
		{Path: f.Name + ".Dockerfile", Data: df, Mode: 0o644},
		{Path: f.Dir + "/" + plan.Internals + "/" + plan.CarryScript, Data: script, Mode: 0o755},
	}, nil
}

// StageScripts renders a stage's in-image scripts under its internals folder.
func StageScripts(s plan.Stage) ([]File, error) {
	dir := s.Dir + "/" + plan.Internals + "/"
	rootLogin := false
	for _, u := range s.Script.Users {
		if u.Name == "root" {
			rootLogin = true
		}
	}
	data := map[string]any{
		"Stage": s.Script.Stage, "Root": s.Root, "System": s.Script.System, "Users": s.Script.Users,
		"EnvNames": s.Script.EnvNames, "Hooks": s.Script.Hooks, "Storage": s.Script.Storage,
		"Owner": s.Script.Owner, "Cleanup": s.Script.Cleanup, "RootLogin": rootLogin,
		"Where": "stage_1.ssh.users",
	}
	var files []File
	add := func(name, tmplName string) error {
		b, err := execute(tmplName, data)
		if err != nil {
			return err
		}
		files = append(files, File{Path: dir + name, Data: b, Mode: 0o755})
		return nil
	}
	for _, f := range []struct{ name, tmpl string }{
		{"lib.sh", "lib.sh"}, {"entrypoint.sh", "entrypoint.sh"}, {"profile.sh", "profile.sh"},
		{"hooks.sh", "hooks.sh.tmpl"}, {"finish.sh", "finish.sh.tmpl"},
	} {
		if err := add(f.name, f.tmpl); err != nil {
			return nil, err
		}
	}
	if s.Script.System != nil {
		if err := add("system.sh", "system.sh.tmpl"); err != nil {
			return nil, err
		}
	}
	if len(s.Script.Users) > 0 {
		if err := add("users.sh", "users.sh.tmpl"); err != nil {
			return nil, err
		}
	}
	if len(s.Script.Storage) > 0 {
		if err := add("storage.sh", "storage.sh.tmpl"); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// ShellQuote quotes s as one POSIX shell word.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dockerfileQuote quotes an ENV value so the Dockerfile keeps it literally.
// A Dockerfile instruction is one line and its quotes have no escape for a
// control character, so a value holding one is refused (validation reports
// it with its place in the config first).
func dockerfileQuote(s string) (string, error) {
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return "", fmt.Errorf("Dockerfile value %q: control character at byte %d", s, i+1)
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)
	return `"` + r.Replace(s) + `"`, nil
}

// dockerfileWord writes s where a Dockerfile takes one unquoted word (FROM,
// COPY, an ENV name): anything that would end the word or the line, start
// a quote, escape or a variable is refused, not written.
func dockerfileWord(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, " \"'$`#") || strings.IndexFunc(s, unicode.IsControl) >= 0 || strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return "", fmt.Errorf("%q cannot be one word of a Dockerfile instruction", s)
	}
	return s, nil
}

// argRefRe is a FROM image that is one of pei's own ARGs (fromImages),
// which Compose or pei build fill with the image name.
var argRefRe = regexp.MustCompile(`^\$\{PEI_[A-Z0-9_]+\}$`)

// dockerfileFrom writes the image of a FROM line: a word (dockerfileWord),
// or a reference to one of pei's FROM arguments.
func dockerfileFrom(s string) (string, error) {
	if argRefRe.MatchString(s) {
		return s, nil
	}
	return dockerfileWord(s)
}

// commentText puts s in a Dockerfile comment: a control character, which
// could end the comment line and start an instruction, becomes a space.
func commentText(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

func mountFlag(m plan.Mount) (string, error) {
	var fields []string
	switch m.Kind {
	case plan.MountBind:
		fields = []string{"type=bind", "source=" + m.Source, "target=" + m.Target}
		if m.ReadWrite {
			fields = append(fields, "rw")
		}
	case plan.MountCache:
		fields = []string{"type=cache", "target=" + m.Target, "sharing=locked"}
	case plan.MountSecret:
		fields = []string{"type=secret", "id=" + m.Source, "target=" + m.Target}
		if strings.HasPrefix(m.Source, "pei_") {
			fields = append(fields, "required=true") // pei's own (keys): the build must not go on without them
		}
	default:
		return "", fmt.Errorf("unknown mount kind %q", m.Kind)
	}
	return mountValue(fields)
}

// mountValue writes a --mount flag: its value is CSV (a field holding a
// comma, quote or space is CSV-quoted) and the flag is one word of the RUN
// line (quoted, with \ escapes, when it holds a quote or a space). A
// control character cannot be written on the line at all and is refused.
func mountValue(fields []string) (string, error) {
	for i, f := range fields {
		if j := strings.IndexFunc(f, unicode.IsControl); j >= 0 {
			return "", fmt.Errorf("mount %q: control character at byte %d", f, j+1)
		}
		if strings.ContainsAny(f, ",\" \t'\\") || strings.IndexFunc(f, unicode.IsSpace) >= 0 {
			fields[i] = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
		}
	}
	v := strings.Join(fields, ",")
	if strings.ContainsAny(v, "\"' \\") || strings.IndexFunc(v, unicode.IsSpace) >= 0 {
		v = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
	}
	return "--mount=" + v, nil
}

// composeValue escapes a value for docker-compose.yml: ${VAR} (and
// ${VAR:-default}, see config.RuntimeVarRe) stays for
// Compose to resolve at run time (pei writes {{VAR}} so), any other $ is
// literal.
func composeValue(s string) string {
	return keepRuntimeVars(s, strings.NewReplacer("$", "$$"))
}

// shellValue quotes a value for a shell script the way composeValue keeps
// it for Compose: ${VAR} expands, everything else is literal.
func shellValue(s string) string {
	return `"` + keepRuntimeVars(s, strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)) + `"`
}

// composeEnvValue escapes an environment value for docker-compose.yml:
// only its run-time references (written {{VAR}}) stay ${VAR} for Compose;
// every other $, a ${VAR} written $${VAR} included, is literal.
func composeEnvValue(e config.EnvVar) string {
	return escapeRefs(e, strings.NewReplacer("$", "$$"), func(name string) string { return "${" + name + "}" })
}

// escapeRefs writes e's value with esc applied to its literal text and
// ref to the name of each run-time reference.
func escapeRefs(e config.EnvVar, esc *strings.Replacer, ref func(name string) string) string {
	var b strings.Builder
	last := 0
	for _, sp := range e.RunRefs {
		if sp.Start < last || sp.End > len(e.Value) || sp.End-sp.Start < 4 {
			continue // not a span of this value: keep the text literal
		}
		b.WriteString(esc.Replace(e.Value[last:sp.Start]))
		b.WriteString(ref(e.Value[sp.Start+2 : sp.End-1]))
		last = sp.End
	}
	b.WriteString(esc.Replace(e.Value[last:]))
	return b.String()
}

// keepRuntimeVars escapes s with esc except for its ${VAR} references.
func keepRuntimeVars(s string, esc *strings.Replacer) string {
	var b strings.Builder
	last := 0
	for _, loc := range config.RuntimeVarRe.FindAllStringIndex(s, -1) {
		b.WriteString(esc.Replace(s[last:loc[0]]))
		b.WriteString(s[loc[0]:loc[1]])
		last = loc[1]
	}
	b.WriteString(esc.Replace(s[last:]))
	return b.String()
}

// shellEnvValue quotes NAME=VALUE of an environment variable as one word of
// run-merged.sh: its run-time references expand from the caller's
// environment (empty when unset, as Compose does), everything else is
// literal.
func shellEnvValue(e config.EnvVar) string {
	lit := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)
	return `"` + lit.Replace(e.Name+"=") + escapeRefs(e, lit, func(name string) string { return "${" + name + "-}" }) + `"`
}
