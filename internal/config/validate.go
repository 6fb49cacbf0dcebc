package config

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/distribution/reference"
	"golang.org/x/crypto/ssh"

	"github.com/pei-dev/pei/internal/shadow"
)

// AptMirrors are the repo_source names that stand for well-known mirrors.
var AptMirrors = []string{"tuna", "aliyun", "163", "ustc", "cn"}

// InstallDir is the project folder that hook paths are relative to; it is
// copied into images as /pei-init.
const InstallDir = "installation"

type validator struct {
	c          *Config
	projectDir string
	fsys       fs.FS         // the project, when read through an fs.FS (LoadOptions.FS)
	served     []CatalogItem // pei serve's catalog (LoadOptions.Catalog)
	errs       Errors
	failed     map[string]bool // paths that failed to decode
	// lookup is the environment of a local project: HOME, for ~ in key
	// paths.
	lookup LookupFunc
}

// at returns the position of path, or of its nearest parent that has one.
func (v *validator) at(path string) Pos {
	for p := path; p != ""; {
		if pos, ok := v.c.Positions[p]; ok {
			return pos
		}
		if i := strings.LastIndexAny(p, ".["); i >= 0 {
			p = p[:i]
		} else {
			break
		}
	}
	return Pos{Line: 1, Col: 1}
}

func (v *validator) errorf(path, format string, args ...any) {
	for p := path; p != ""; {
		if v.failed[p] {
			return // already reported while decoding
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	p := v.at(path)
	v.errs = append(v.errs, &FieldError{File: v.c.File, Line: p.Line, Col: p.Col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) run() {
	v.oneLine()
	s1 := &v.c.Stage1
	if s1.Image.Base == nil || strings.TrimSpace(s1.Image.Base.Raw) == "" {
		v.errorf("stage_1.image.base", "a base image is required, e.g. base: debian:bookworm")
	} else {
		v.base("stage_1.image.base", s1.Image.Base)
	}
	v.output("stage_1.image.output", s1.Image.Output)
	if s1.SSH != nil {
		v.ssh(s1.SSH)
	}
	v.proxy("stage_1.proxy", s1.Proxy, s1.Apt != nil && ptrTrue(s1.Apt.UseProxy), nil)
	if s1.Apt != nil {
		v.apt(s1.Apt)
	}
	if s1.Device != nil {
		v.enum("stage_1.device.type", s1.Device.Type, "cpu", "gpu")
	}
	if s1.Storage != nil {
		v.storageItems("stage_1.storage", s1.Storage)
	}
	v.mounts("stage_1", s1.Mount, nil)
	v.custom("stage_1.custom", s1.Custom)

	if e := v.c.SourceDateEpoch; e != nil && *e < 0 {
		v.errorf("source_date_epoch", "%d is before 1970; give seconds since 1970-01-01 UTC", *e)
	}
	for _, sec := range v.c.Secrets {
		p := "secrets." + sec.Name
		if !validName(sec.Name) {
			v.errorf(p+".<key>", "%q is not a usable secret id (letters, digits, '_', '.' and '-')", sec.Name)
		}
		switch {
		case (sec.Env == "") == (sec.File == ""):
			v.errorf(p, "give exactly one of env (an environment variable) or file")
		case sec.Env != "" && !validVarName(sec.Env):
			v.errorf(p+".env", "%q is not an environment variable name", sec.Env)
		case sec.File != "" && !filepath.IsAbs(sec.File) && !filepath.IsLocal(filepath.FromSlash(sec.File)):
			v.errorf(p+".file", "%q leaves the project directory; use an absolute path for a file elsewhere", sec.File)
		}
	}

	for i := range v.c.Catalog {
		v.catalogItem("catalog."+v.c.Catalog[i].Name, &v.c.Catalog[i])
	}
	for i := range v.c.Compose {
		v.composed("compose."+v.c.Compose[i].Name, &v.c.Compose[i])
	}

	ports := &portSet{}
	if s1.SSH != nil && s1.SSH.HostPort != nil && (s1.SSH.Enable == nil || *s1.SSH.Enable) {
		ports.seen = append(ports.seen, portUse{lo: *s1.SSH.HostPort, hi: *s1.SSH.HostPort, proto: "tcp", path: "stage_1.ssh.host_port"})
	}
	v.ports("stage_1.ports", s1.Ports, ports)

	if s2 := v.c.Stage2; s2 != nil {
		if s2.Image.Base != nil {
			v.base("stage_2.image.base", s2.Image.Base)
		}
		v.output("stage_2.image.output", s2.Image.Output)
		v.ports("stage_2.ports", s2.Ports, ports)
		if s2.Device != nil {
			v.enum("stage_2.device.type", s2.Device.Type, "cpu", "gpu")
		}
		var inherited *int
		if s1.Proxy != nil {
			inherited = s1.Proxy.Port
		}
		v.proxy("stage_2.proxy", s2.Proxy, false, inherited)
		if s2.Storage != nil {
			v.storageItems("stage_2.storage", s2.Storage)
		}
		v.mounts("stage_2", s2.Mount, s2.Storage)
		v.custom("stage_2.custom", s2.Custom)
		if s2.Final != nil {
			v.final("stage_2.final", s2.Final)
		}
	}
}

func (v *validator) composed(p string, c *Composed) {
	if !validName(c.Name) {
		v.errorf(p, "name %q must use letters, digits, '_', '.' or '-'", c.Name)
	}
	if c.Output == "" {
		v.errorf(p+".output", "give the composed image a name:tag, e.g. my-runtime:latest")
	} else {
		v.output(p+".output", c.Output)
	}
	if len(c.Layers) == 0 {
		v.errorf(p+".layers", "list the images to layer, e.g. [{image: runtime-base:latest}, {diff: {lower: dev-base:latest, upper: dev-lang:latest}}]")
	}
	whole := false
	for i := range c.Layers {
		l := &c.Layers[i]
		at := fmt.Sprintf("%s.layers[%d]", p, i)
		given := 0
		for _, set := range []bool{l.Image.Raw != "", l.Diff != nil, l.Catalog != "", l.Runner != nil} {
			if set {
				given++
			}
		}
		switch {
		case given > 1:
			whole = true // one error is enough
			v.errorf(at, "give one of image, diff, catalog or runner")
		case l.Catalog != "":
			v.catalogLayer(at, l)
		case l.Runner != nil:
			v.runner(at+".runner", l.Runner)
		case l.Image.Raw != "":
			whole = true
			v.composedRef(at+".image", &l.Image)
		case l.Diff != nil:
			if l.Diff.Lower.Raw == "" || l.Diff.Upper.Raw == "" {
				v.errorf(at+".diff", "a diff needs lower and upper images")
			}
			if l.Diff.Lower.Raw != "" {
				v.composedRef(at+".diff.lower", &l.Diff.Lower)
			}
			if l.Diff.Upper.Raw != "" {
				v.composedRef(at+".diff.upper", &l.Diff.Upper)
			}
		default:
			v.errorf(at, "give image: REF or diff: {lower: REF, upper: REF}")
		}
		v.excludes(at, l.Exclude)
	}
	if len(c.Layers) > 0 && !whole {
		v.errorf(p+".layers", "take at least one image whole (image: REF): it gives the composed image its config")
	}
}

func (v *validator) excludes(at string, exclude []string) {
	for j, e := range exclude {
		if !strings.HasPrefix(e, "/") || path.Clean(e) != e || e == "/" {
			v.errorf(fmt.Sprintf("%s.exclude[%d]", at, j), "%q: give a clean absolute path below /", e)
		}
	}
}

// runner checks a runner layer.
func (v *validator) runner(p string, r *Runner) {
	if r.Image.Raw == "" {
		v.errorf(p+".image", "give the runner image: the language with its package manager and no compilers (e.g. a pei project's debian:bookworm + python3-pip)")
	} else {
		v.composedRef(p+".image", &r.Image)
	}
	if r.Dir == "" {
		r.Dir = "."
	}
	if (r.Pip == "") == (r.Npm == "") {
		v.errorf(p, "give one of pip (a requirements file) or npm (a package.json)")
		return
	}
	field, file := p+".pip", r.Pip
	if r.Npm != "" {
		field, file = p+".npm", r.Npm
		if r.Target == "" {
			r.Target = "/app"
		}
		if !strings.HasPrefix(r.Target, "/") || path.Clean(r.Target) != r.Target || r.Target == "/" {
			v.errorf(p+".target", "%q: give a clean absolute path below / for package.json and node_modules, e.g. /app", r.Target)
		}
		if path.Base(file) != "package.json" {
			v.errorf(field, "%q: name the package.json (npm installs what it lists)", file)
			return
		}
	}
	if strings.Contains(file, "/") || file == "." || file == ".." {
		v.errorf(field, "%q: give a file name in dir (%s); set dir to the directory that holds it", file, r.Dir)
		return
	}
	rel := path.Join(r.Dir, file)
	full, err := ResolveProjectPath(v.projectDir, rel)
	if err != nil {
		v.errorf(p+".dir", "%v", err)
		return
	}
	if v.projectDir == "" && v.fsys == nil {
		return
	}
	if !v.projectFileExists(full, rel) {
		v.errorf(field, "%s does not exist in the project (dir is relative to the project directory)", rel)
	}
}

// catalogItem checks a catalog item.
func (v *validator) catalogItem(p string, it *CatalogItem) {
	if !validName(it.Name) {
		v.errorf(p, "name %q must use letters, digits, '_', '.' or '-'", it.Name)
	}
	if it.Lower.Raw == "" || it.Upper.Raw == "" {
		v.errorf(p, "a catalog item needs lower (the image it was built on) and upper (that image with it built in)")
	}
	if it.Lower.Raw != "" {
		v.composedRef(p+".lower", &it.Lower)
	}
	if it.Upper.Raw != "" {
		v.composedRef(p+".upper", &it.Upper)
	}
	v.excludes(p, it.Exclude)
}

// catalogLayer makes a layer that names a catalog item the item's diff,
// with the item's excludes before its own: the project's item of that
// name, else pei serve's.
func (v *validator) catalogLayer(at string, l *Layer) {
	var names, served []string
	take := func(it CatalogItem) {
		l.Diff = &Diff{Lower: it.Lower, Upper: it.Upper}
		ex := slices.Clone(it.Exclude)
		for _, e := range l.Exclude {
			if !slices.Contains(ex, e) {
				ex = append(ex, e)
			}
		}
		l.Exclude = ex
	}
	for _, it := range v.c.Catalog {
		if it.Name == l.Catalog {
			take(it)
			return
		}
		names = append(names, it.Name)
	}
	for _, it := range v.served {
		if it.Name == l.Catalog {
			// The server checked the item when it was written; a
			// reference it cannot parse is still said here, not in the
			// build.
			v.imageName(at+".catalog", it.Lower.Raw)
			v.imageName(at+".catalog", it.Upper.Raw)
			take(it)
			return
		}
		served = append(served, it.Name)
	}
	var has []string
	if len(names) > 0 {
		has = append(has, "the project's catalog has: "+strings.Join(names, ", "))
	}
	if len(served) > 0 {
		has = append(has, "pei serve's catalog has: "+strings.Join(served, ", "))
	}
	if len(has) == 0 {
		v.errorf(at+".catalog", "no catalog item %q: the config has no catalog; declare it under catalog: (%s: {lower: DEV-BASE, upper: DEV-BASE-WITH-IT}), or put it in pei serve's catalog for a build there", l.Catalog, l.Catalog)
		return
	}
	v.errorf(at+".catalog", "no catalog item %q (%s)", l.Catalog, strings.Join(has, "; "))
}

// composedRef checks an input of a composed image: an image name, or an
// OCI layout in the project, whose parsed form it keeps in r.
func (v *validator) composedRef(p string, r *ImageRef) {
	if l, ok, err := ParseLayoutRef(r.Raw); ok {
		if err != nil {
			v.errorf(p, "%v", err)
			return
		}
		r.Layout = &l
		v.layoutDir(p, l.Path)
		return
	}
	v.imageName(p, r.Raw)
}

var debPackageRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?(=[A-Za-z0-9.+~:-]+)?$`)

func (v *validator) final(p string, f *Final) {
	if f.Base != nil {
		v.base(p+".base", f.Base)
	}
	v.output(p+".output", f.Output)
	if len(f.Keep) == 0 {
		v.errorf(p+".keep", "list the absolute paths to keep from the stage-2 image, e.g. [/opt/app]")
	}
	for i, k := range f.Keep {
		at := fmt.Sprintf("%s.keep[%d]", p, i)
		switch {
		case !strings.HasPrefix(k, "/"):
			v.errorf(at, "%q must be an absolute path in the stage-2 image", k)
		case path.Clean(k) != k || k == "/":
			v.errorf(at, "%q: give a clean path below / (like /opt/app), not / itself", k)
		}
	}
	for i, e := range f.Exclude {
		at := fmt.Sprintf("%s.exclude[%d]", p, i)
		switch {
		case e == "" || e == "/":
			v.errorf(at, "%q excludes everything; name a path or a file name pattern", e)
		case strings.HasPrefix(e, "/") && path.Clean(e) != e:
			v.errorf(at, "%q: give a clean absolute path", e)
		case !strings.HasPrefix(e, "/") && strings.Contains(e, "/"):
			v.errorf(at, "%q: a pattern matches file names, without '/'; to leave out a directory give its absolute path", e)
		}
	}
	for i, a := range f.Apt {
		if !debPackageRe.MatchString(a) {
			v.errorf(fmt.Sprintf("%s.apt[%d]", p, i), "%q is not a Debian package name", a)
		}
	}
	for i, s := range f.Strip {
		v.enum(fmt.Sprintf("%s.strip[%d]", p, i), s, "docs", "man", "locales", "debug")
	}
}

func ptrTrue(b *bool) bool { return b != nil && *b }

// base checks the base image of a stage: an image name, or an OCI layout
// in the project, whose parsed form it keeps in r.
func (v *validator) base(path string, r *ImageRef) {
	l, isLayout, err := ParseLayoutRef(r.Raw)
	if isLayout && err == nil {
		// Kept even when a ${VAR} skips the checks below: the reference
		// is still a layout to pei build.
		r.Layout = &l
	}
	switch {
	case r.Raw == "" || isLayout && strings.Contains(r.Raw, "${"):
	case !isLayout:
		v.imageName(path, r.Raw)
	case err != nil:
		v.errorf(path, "%v", err)
	default:
		v.layoutDir(path, l.Path)
	}
}

// output checks the name of an image pei makes: NAME[:TAG], not an OCI
// layout and without a digest (the registry gives that). Only the tag may
// be a run-time variable ({{VAR}}): pei needs the name itself when it
// configures, for the names derived from it (the final image's default).
func (v *validator) output(path, name string) {
	if strings.HasPrefix(name, LayoutPrefix) && !strings.Contains(name, "${") {
		v.errorf(path, "%q: an OCI layout can be a base, not an output; name the output like my-image:stage-1", name)
		return
	}
	if name == "" {
		return
	}
	const mark = "\x00" // stands for a variable: neither '/', ':' nor '@'
	masked := maskVars(name, mark)
	if at := strings.IndexByte(masked, '@'); at >= 0 {
		v.errorf(path, "%q has a digest (@...); an output is NAME[:TAG] (the registry gives the digest when the image is pushed), so remove the @ part", name)
		return
	}
	repo := masked
	if colon := strings.LastIndexByte(masked, ':'); colon > strings.LastIndexByte(masked, '/') {
		repo = masked[:colon]
	}
	if strings.Contains(repo, mark) {
		v.errorf(path, "%q has a run-time variable in the image name; only the tag may be one (e.g. my-image:{{TAG}}), because pei derives other names from it when it configures (the final image's, a composed image's)", name)
		return
	}
	// A run-time tag is checked at its default (a placeholder for one
	// without): what Compose and pei build make of it is a name too.
	v.imageName(path, name)
}

// imageName checks an image name. One holding {{VAR}}s is checked with
// their defaults (a placeholder name for one without), so that what
// Compose makes of it is a name too; any other ${ is left to Compose.
func (v *validator) imageName(path, ref string) {
	what := ""
	if RuntimeVarRe.MatchString(ref) {
		ref, _ = exampleValue(ref, "x")
		what = " with its variables at their defaults"
	}
	if ref == "" || strings.Contains(ref, "${") {
		return
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		v.errorf(path, "%q%s is not a valid image reference (lowercase name[:tag], e.g. my-image:stage-1): %v", ref, what, err)
	}
}

func (v *validator) enum(path, val string, allowed ...string) bool {
	for _, a := range allowed {
		if val == a {
			return true
		}
	}
	if val == "" {
		v.errorf(path, "a value is required: one of %s", strings.Join(allowed, ", "))
		return false
	}
	msg := fmt.Sprintf("%q is not one of %s", val, strings.Join(allowed, ", "))
	if s := suggest(val, allowed); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	v.errorf(path, "%s", msg)
	return false
}

// userRe is shadow's own rule for user names (is_valid_name in shadow
// 4.13's chkname.c; Debian 12's useradd accepts all of them): the portable
// characters, not starting with '-', at most 32 of them. Debian's relaxed
// useradd also takes names outside it ("..", "a/b", quotes), which would
// break home directories and paths, so pei keeps to the rule.
var userRe = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}$`)

const userRule = "letters, digits, '.', '_' and '-', not starting with '-', at most 32"

// userNameProblem says why name is not a usable user name, or "".
func userNameProblem(name string) string {
	switch {
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a valid user name: it names a directory (%s)", name, userRule)
	case strings.Trim(name, "0123456789") == "" && name != "":
		return fmt.Sprintf("%q is not a valid user name: all digits would read as a uid; add a letter (%s)", name, userRule)
	case !userRe.MatchString(name):
		return fmt.Sprintf("%q is not a valid user name (%s)", name, userRule)
	}
	return ""
}

func (v *validator) ssh(s *SSH) {
	if s.Port != nil && (*s.Port < 1 || *s.Port > 65535) {
		v.errorf("stage_1.ssh.port", "%d is not a port number (1-65535)", *s.Port)
	}
	if s.HostPort != nil && (*s.HostPort < 1 || *s.HostPort > 65535) {
		v.errorf("stage_1.ssh.host_port", "%d is not a port number (1-65535)", *s.HostPort)
	}
	uids := map[int]string{}
	for i := range s.Users {
		u := &s.Users[i] // the users share the config's array: host keys are kept in them
		p := "stage_1.ssh.users." + u.Name
		if msg := userNameProblem(u.Name); msg != "" {
			v.errorf(p+".<key>", "%s", msg)
		}
		for i, r := range u.Password {
			if !unicode.IsPrint(r) && r != ' ' {
				v.errorf(p+".password", "the password has a control character at position %d; passwords may hold any printable character, but no newline, tab or other control character", i+1)
				break
			}
		}
		if len(u.Password) > shadow.MaxPasswordBytes {
			v.errorf(p+".password", "the password is %d bytes; a login can match at most %d (the system's crypt refuses longer ones), so shorten it", len(u.Password), shadow.MaxPasswordBytes)
		}
		if u.Name == "root" {
			if u.UID != nil && *u.UID != 0 {
				v.errorf(p+".uid", "root's uid is always 0; remove uid")
			}
			if u.GID != nil && *u.GID != 0 {
				v.errorf(p+".gid", "root's gid is always 0; remove gid")
			}
		} else {
			if u.UID != nil {
				if *u.UID < 1 || *u.UID > 65533 {
					v.errorf(p+".uid", "%d is not a usable uid (1-65533; 0 is root)", *u.UID)
				} else if other, ok := uids[*u.UID]; ok {
					v.errorf(p+".uid", "uid %d is already given to user %q", *u.UID, other)
				} else {
					uids[*u.UID] = u.Name
				}
			}
			if u.GID != nil && (*u.GID < 1 || *u.GID > 65533) {
				v.errorf(p+".gid", "%d is not a usable gid (1-65533; 0 is root)", *u.GID)
			}
		}
		if u.PubkeyFile != "" && u.PubkeyText != "" {
			v.errorf(p+".pubkey_text", "give pubkey_file or pubkey_text, not both")
		}
		if u.PrivkeyFile != "" && u.PrivkeyText != "" {
			v.errorf(p+".privkey_text", "give privkey_file or privkey_text, not both")
		}
		if u.PubkeyFile != "" && isHostPath(u.PubkeyFile) {
			if data, _, ok := v.hostKey(p+".pubkey_file", u.PubkeyFile, true); ok {
				v.pubkey(p+".pubkey_file", data)
				u.HostPubkey = string(data)
			}
		} else if u.PubkeyFile != "" {
			if data, ok := v.installFile(p+".pubkey_file", u.PubkeyFile); ok {
				v.pubkey(p+".pubkey_file", data)
			}
		}
		if u.PubkeyText != "" {
			v.pubkey(p+".pubkey_text", []byte(u.PubkeyText))
		}
		if u.PrivkeyFile != "" && isHostPath(u.PrivkeyFile) {
			if data, file, ok := v.hostKey(p+".privkey_file", u.PrivkeyFile, false); ok {
				u.PrivkeyType = v.privkey(p+".privkey_file", data)
				u.HostPrivkey, u.HostPrivkeyPath = string(data), file
			}
		} else if u.PrivkeyFile != "" {
			if data, ok := v.installFile(p+".privkey_file", u.PrivkeyFile); ok {
				u.PrivkeyType = v.privkey(p+".privkey_file", data)
			}
		}
		if u.PrivkeyText != "" {
			u.PrivkeyType = v.privkey(p+".privkey_text", []byte(u.PrivkeyText))
		}
	}
}

// isHostPath says whether a key path names a file on this machine rather
// than one under installation/: absolute, ~/... or ~ (PeiDocker's forms).
func isHostPath(p string) bool {
	return p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, "/") || filepath.IsAbs(p)
}

// systemKeys are the key names ~ looks for in ~/.ssh, in PeiDocker's order.
var systemKeys = []string{"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"}

// maxKeyFile bounds a key file read from this machine.
const maxKeyFile = 64 << 10

// hostKey reads a key file on this machine (a local project only) and
// returns its content and path. ~ is the first of the user's own keys in
// ~/.ssh: a public one (NAME.pub) for a public key, a private one for a
// private key, so that no private key is ever taken as a public one.
func (v *validator) hostKey(path, spec string, public bool) ([]byte, string, bool) {
	if v.fsys != nil {
		v.errorf(path, "%q is a file on this machine, which a recipe cannot name: copy the key into %s/ and give its path relative to it", spec, InstallDir)
		return nil, "", false
	}
	if v.projectDir == "" {
		return nil, "", false // no file checks
	}
	file := spec
	if spec == "~" || strings.HasPrefix(spec, "~/") {
		home, _ := v.lookup("HOME")
		if home == "" {
			v.errorf(path, "%q is in your home directory, but HOME is not set; give the key's absolute path", spec)
			return nil, "", false
		}
		if spec != "~" {
			file = filepath.Join(home, filepath.FromSlash(spec[2:]))
		} else {
			dir := filepath.Join(home, ".ssh")
			var tried []string
			file = ""
			for _, k := range systemKeys {
				if public {
					k += ".pub"
				}
				tried = append(tried, filepath.Join(dir, k))
				if st, err := os.Stat(tried[len(tried)-1]); err == nil && st.Mode().IsRegular() {
					file = tried[len(tried)-1]
					break
				}
			}
			if file == "" {
				v.errorf(path, "~ means your own key, but none of %s exists; give the key's path instead", strings.Join(tried, ", "))
				return nil, "", false
			}
		}
	}
	f, err := os.Open(file)
	if err != nil {
		if os.IsNotExist(err) {
			v.errorf(path, "%s does not exist", file)
		} else {
			v.errorf(path, "cannot read %s: %v", file, err)
		}
		return nil, "", false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	switch {
	case err != nil:
		v.errorf(path, "cannot read %s: %v", file, err)
		return nil, "", false
	case len(data) > maxKeyFile:
		v.errorf(path, "%s is larger than %d bytes, too large for a key", file, maxKeyFile)
		return nil, "", false
	}
	return data, file, true
}

func (v *validator) pubkey(path string, data []byte) {
	rest := data
	n := 0
	for len(strings.TrimSpace(string(rest))) > 0 {
		_, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			v.errorf(path, "not an OpenSSH public key (expected a line like 'ssh-ed25519 AAAA... comment')")
			return
		}
		rest = r
		n++
	}
	if n == 0 {
		v.errorf(path, "no public key found")
	}
}

// privkey checks a private key and returns its type (rsa, ecdsa, ed25519,
// dsa; "" if unknown), also for an encrypted key, which is not decrypted.
func (v *validator) privkey(path string, data []byte) string {
	signer, err := ssh.ParsePrivateKey(data)
	var pm *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return keyType(signer.PublicKey().Type())
	case errors.As(err, &pm) && pm.PublicKey != nil:
		// An encrypted OpenSSH key shows its public key.
		return keyType(pm.PublicKey.Type())
	case errors.As(err, &pm):
		// An encrypted PEM key says its type only in the block's.
		if b, _ := pem.Decode(data); b != nil {
			return map[string]string{"RSA PRIVATE KEY": "rsa", "EC PRIVATE KEY": "ecdsa", "DSA PRIVATE KEY": "dsa"}[b.Type]
		}
		return ""
	}
	// The parser's message would not leak the key, but keep it generic anyway.
	v.errorf(path, "not a private key in OpenSSH or PEM format")
	return ""
}

// keyType is the type of an SSH key algorithm, as ssh's default key file
// names have it (id_<type>).
func keyType(algo string) string {
	switch {
	case algo == "ssh-rsa":
		return "rsa"
	case algo == "ssh-ed25519":
		return "ed25519"
	case algo == "ssh-dss":
		return "dsa"
	case strings.HasPrefix(algo, "ecdsa-sha2-"):
		return "ecdsa"
	case strings.HasPrefix(algo, "sk-ssh-ed25519"):
		return "ed25519_sk"
	case strings.HasPrefix(algo, "sk-ecdsa-sha2-"):
		return "ecdsa_sk"
	}
	return ""
}

// proxy checks a proxy section; inheritedPort is the port its null port
// falls back to (stage_1's, for stage_2).
func (v *validator) proxy(path string, p *Proxy, usedByApt bool, inheritedPort *int) {
	if p == nil {
		return
	}
	if p.Port != nil && (*p.Port < 1 || *p.Port > 65535) {
		v.errorf(path+".port", "%d is not a port number (1-65535)", *p.Port)
	}
	if p.Address != nil && strings.ContainsAny(*p.Address, " /@") {
		v.errorf(path+".address", "%q is not a host name or address (give the host only; the port goes in port)", *p.Address)
	}
	if (ptrTrue(p.EnableGlobally) || usedByApt) && p.Port == nil && inheritedPort == nil {
		v.errorf(path+".port", "a proxy port is required when the proxy is used (enable_globally or apt.use_proxy)")
	}
}

func (v *validator) apt(a *Apt) {
	src := a.RepoSource
	if src == "" {
		return
	}
	for _, m := range AptMirrors {
		if src == m {
			return
		}
	}
	if !strings.ContainsAny(src, "/.") {
		msg := fmt.Sprintf("%q is neither a mirror name (%s) nor a file under installation/", src, strings.Join(AptMirrors, ", "))
		if s := suggest(src, AptMirrors); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		v.errorf("stage_1.apt.repo_source", "%s", msg)
		return
	}
	v.installFile("stage_1.apt.repo_source", src)
}

func (v *validator) custom(path string, c *Custom) {
	if c == nil {
		return
	}
	lists := []struct {
		key     string
		entries []Hook
	}{
		{"on_build", c.OnBuild}, {"on_first_run", c.OnFirstRun}, {"on_every_run", c.OnEveryRun},
		{"on_user_login", c.OnUserLogin}, {"on_entry", c.OnEntry},
	}
	for _, l := range lists {
		for i := range l.entries {
			p := fmt.Sprintf("%s.%s[%d]", path, l.key, i)
			h, err := parseHook(l.entries[i].Raw)
			if err != nil {
				v.errorf(p, "%v", err)
				continue
			}
			l.entries[i] = h // the entries share the config's array
			v.installFile(p, h.Script)
		}
	}
	if len(c.OnEntry) > 1 {
		v.errorf(path+".on_entry[1]", "on_entry takes at most one entry (the container's main program); found %d", len(c.OnEntry))
	}
}

// installFile checks that rel names a regular file inside installation/ and
// returns its content.
func (v *validator) installFile(path, rel string) ([]byte, bool) {
	full, err := ResolveInstallPath(v.projectDir, rel)
	if err != nil {
		v.errorf(path, "%v", err)
		return nil, false
	}
	if v.fsys != nil {
		return v.installFileFS(path, rel)
	}
	if v.projectDir == "" {
		return nil, false
	}
	data, err := os.ReadFile(full)
	if err != nil {
		if os.IsNotExist(err) {
			v.errorf(path, "%s does not exist (paths are relative to %s/ in the project)%s", filepath.ToSlash(filepath.Join(InstallDir, filepath.FromSlash(rel))), InstallDir, caughtEarly(path))
		} else {
			v.errorf(path, "cannot read %s: %v", rel, err)
		}
		return nil, false
	}
	return data, true
}

// caughtEarly notes, for a hook script, that PeiDocker would only have
// found the problem later: it does not check that hook scripts exist.
func caughtEarly(field string) string {
	if strings.Contains(field, ".custom.") {
		return "; PeiDocker would have accepted the config and failed later, at build or start"
	}
	return ""
}

// layoutDir checks that an OCI layout base names a layout directory inside
// the project.
func (v *validator) layoutDir(path, rel string) {
	full, err := ResolveProjectPath(v.projectDir, rel)
	if err != nil {
		v.errorf(path, "oci-layout: %v", err)
		return
	}
	if v.projectDir == "" && v.fsys == nil {
		return
	}
	if !v.layoutIndexExists(full, rel) {
		v.errorf(path, "oci-layout: %s has no index.json, so it is not an OCI image layout (unpack one there, e.g. tar -xf image.tar from pei build --output type=oci)", rel)
	}
}

// ResolveProjectPath maps a project-relative path to a file path, refusing
// absolute paths and anything that leaves the project directory, through
// '..' or through a symbolic link.
func ResolveProjectPath(projectDir, rel string) (string, error) {
	if rel == "" {
		return "", fmt.Errorf("empty path")
	}
	if strings.HasPrefix(rel, "/") || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%q is absolute; give a path relative to the project directory", rel)
	}
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Errorf("%q leaves the project directory; keep it inside the project", rel)
	}
	if projectDir == "" {
		return "", nil
	}
	full := filepath.Join(projectDir, filepath.FromSlash(rel))
	return full, insideProject(projectDir, full, rel)
}

// insideProject refuses a path whose symbolic links lead out of the project.
func insideProject(projectDir, full, rel string) error {
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return nil // existence is reported by the caller
	}
	root, err := filepath.EvalSymlinks(projectDir)
	if err != nil {
		return fmt.Errorf("project directory: %w", err)
	}
	if r, err := filepath.Rel(root, real); err != nil || !filepath.IsLocal(r) {
		return fmt.Errorf("%q is a link to %s, outside the project; copy it into the project instead", rel, real)
	}
	return nil
}

// ResolveInstallPath maps a path relative to installation/ to a file path,
// refusing absolute paths and anything that leaves the project directory,
// through '..' or through a symbolic link.
func ResolveInstallPath(projectDir, rel string) (string, error) {
	if rel == "" {
		return "", fmt.Errorf("empty path")
	}
	if strings.HasPrefix(rel, "/") || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%q is absolute; paths are relative to %s/ in the project (e.g. stage-1/custom/setup.sh)", rel, InstallDir)
	}
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Errorf("%q leaves the %s/ directory; keep files inside the project", rel, InstallDir)
	}
	if projectDir == "" {
		return "", nil
	}
	full := filepath.Join(projectDir, InstallDir, filepath.FromSlash(rel))
	if err := insideProject(projectDir, full, rel); err != nil {
		return "", err
	}
	return full, nil
}

func (v *validator) storageItems(path string, st *Storage) {
	for _, it := range storageList(st) {
		if it.item != nil {
			v.storage(path+"."+it.name, it.item.Type, it.item.HostPath, it.item.VolumeName, "auto-volume", "manual-volume", "host", "image")
		}
	}
}

type namedStorage struct {
	name string
	item *StorageItem
}

func storageList(st *Storage) []namedStorage {
	return []namedStorage{{"app", st.App}, {"data", st.Data}, {"workspace", st.Workspace}}
}

// mounts checks a stage's mounts. Two mounts on one container path would
// make Docker refuse to start the container (PeiDocker only warns), and so
// would a mount on the path of a mounted storage directory (st, stage-2's).
func (v *validator) mounts(section string, ms []Mount, st *Storage) {
	dsts := map[string]string{}
	if st != nil {
		for _, it := range storageList(st) {
			if it.item != nil && it.item.Type != "" && it.item.Type != "image" {
				dsts["/hard/volume/"+it.name] = "storage " + it.name
			}
		}
	}
	for _, m := range ms {
		p := section + ".mount." + m.Name
		v.storage(p, m.Type, m.HostPath, m.VolumeName, "auto-volume", "manual-volume", "host")
		switch {
		case m.DstPath == "":
			v.errorf(p+".dst_path", "dst_path is required: the absolute path inside the container")
		case !strings.HasPrefix(m.DstPath, "/"):
			v.errorf(p+".dst_path", "%q must be an absolute path inside the container", m.DstPath)
		default:
			clean := filepath.Clean(m.DstPath)
			if prev, ok := dsts[clean]; ok {
				v.errorf(p+".dst_path", "%s is already the target of %s; give each mount its own dst_path", clean, prev)
			}
			dsts[clean] = fmt.Sprintf("mount %q", m.Name)
		}
		if !validName(m.Name) {
			v.errorf(p, "mount name %q must use letters, digits, '_', '.' or '-'", m.Name)
		}
	}
}

// nameRe is the rule for the names a config gives: secret ids, mounts,
// volumes and composed images.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func validName(s string) bool { return nameRe.MatchString(s) }

func (v *validator) storage(path, typ, hostPath, volume string, allowed ...string) {
	if !v.enum(path+".type", typ, allowed...) {
		return
	}
	switch typ {
	case "host":
		if hostPath == "" {
			v.errorf(path+".host_path", "host_path is required when type is host: the host directory to mount")
		} else if !filepath.IsAbs(hostPath) && !strings.HasPrefix(hostPath, "${") && !filepath.IsLocal(filepath.FromSlash(hostPath)) {
			v.errorf(path+".host_path", "%q leaves the project directory; use an absolute path to mount a directory elsewhere", hostPath)
		} else if strings.Contains(withoutVars(hostPath), ":") {
			// docker compose hands a bind it may create to the engine as
			// SOURCE:TARGET:MODE, even from the long syntax pei writes.
			v.errorf(path+".host_path", "%q holds ':', which Docker takes as the end of the host path of a bind mount; rename the directory or mount a link to it without ':'", hostPath)
		}
	case "manual-volume":
		if volume == "" {
			v.errorf(path+".volume_name", "volume_name is required when type is manual-volume: the name of an existing Docker volume")
		} else if !validName(volume) && !strings.HasPrefix(volume, "${") {
			v.errorf(path+".volume_name", "%q is not a valid volume name", volume)
		}
	}
}

// portRange reads "N" or "N-M"; a single port is a range of one.
func portRange(s string) (lo, hi int) {
	a, b, isRange := strings.Cut(s, "-")
	lo, _ = strconv.Atoi(a)
	hi = lo
	if isRange {
		hi, _ = strconv.Atoi(b)
	}
	return lo, hi
}

func nPorts(n int, side string) string {
	if n == 1 {
		return "1 " + side + " port"
	}
	return fmt.Sprintf("%d %s ports", n, side)
}

// withoutVars is s without its ${VAR...} and {{VAR...}} expressions,
// whose text is not part of the value.
func withoutVars(s string) string { return maskVars(s, "") }

// maskVars replaces each ${VAR...} and {{VAR...}} expression in s by repl.
func maskVars(s, repl string) string {
	var b strings.Builder
	for s != "" {
		i := strings.IndexAny(s, "${")
		if i < 0 {
			break
		}
		end := ""
		switch {
		case strings.HasPrefix(s[i:], "${"):
			end = "}"
		case strings.HasPrefix(s[i:], "{{"):
			end = "}}"
		}
		j := -1
		if end != "" {
			j = strings.Index(s[i+2:], end)
		}
		if j < 0 {
			b.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s = s[i+2+j+len(end):]
	}
	b.WriteString(s)
	return b.String()
}

// portUse is a published host port or range: ip "" binds every address.
type portUse struct {
	ip     string
	lo, hi int
	proto  string
	path   string
}

// clashes says whether two published ports would bind the same host port:
// same protocol, overlapping ports, and the same address or one of them on
// every address.
func (a portUse) clashes(b portUse) bool {
	return a.proto == b.proto && a.lo <= b.hi && b.lo <= a.hi && (a.ip == b.ip || a.ip == "" || b.ip == "")
}

type portSet struct{ seen []portUse }

var portRe = regexp.MustCompile(`^(?:(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d+(?:-\d+)?):)?(\d+(?:-\d+)?)(?:/(tcp|udp|sctp))?$`)

// portVarRe is a port mapping whose host port is a run-time variable: the
// one place in a mapping a variable can be written so that the mapping
// still has one shape whatever its value.
var portVarRe = regexp.MustCompile(`^(?:(?:\[[0-9a-fA-F:.]+\]|[0-9.]+):)?\$\{[A-Za-z_][A-Za-z0-9_]*(?::-\d+)?\}:\d+(?:/(?:tcp|udp|sctp))?$`)

func (v *validator) ports(path string, ports []string, set *portSet) {
	for i, p := range ports {
		pp := fmt.Sprintf("%s[%d]", path, i)
		if RuntimeVarRe.MatchString(p) {
			if !portVarRe.MatchString(p) {
				v.errorf(pp, "%q: a {{VAR}} in a port mapping can only be the whole host port, with a port number as its default, e.g. '{{WEB_PORT:-8080}}:80'", p)
				continue
			}
			// Compose resolves it at run time; checked on its defaults.
			var all bool
			if p, all = exampleValue(p, ""); !all {
				continue
			}
		}
		if strings.Contains(p, "${") {
			continue // resolved by Compose at run time
		}
		m := portRe.FindStringSubmatch(p)
		if m == nil {
			v.errorf(pp, "%q is not a port mapping; write HOST:CONTAINER, IP:HOST:CONTAINER or CONTAINER, optionally /udp", p)
			continue
		}
		bad := false
		for _, part := range []string{m[2], m[3]} {
			for _, n := range strings.Split(part, "-") {
				if n == "" {
					continue
				}
				if x, _ := strconv.Atoi(n); x < 1 || x > 65535 {
					v.errorf(pp, "%s in %q is not a port number (1-65535)", n, p)
					bad = true
				}
			}
		}
		if bad {
			continue
		}
		clo, chi := portRange(m[3])
		if chi < clo {
			v.errorf(pp, "%s in %q is not a range: the first port is above the last", m[3], p)
			continue
		}
		if m[2] == "" {
			continue
		}
		u := portUse{ip: m[1], proto: m[4], path: pp}
		if u.ip == "0.0.0.0" || u.ip == "[::]" {
			u.ip = ""
		}
		if u.proto == "" {
			u.proto = "tcp"
		}
		u.lo, u.hi = portRange(m[2])
		if u.hi < u.lo {
			v.errorf(pp, "%s in %q is not a range: the first port is above the last", m[2], p)
			continue
		}
		// Docker maps a host range onto one container port (it picks a
		// free host port), but a container range only onto as many.
		if chi != clo && u.hi-u.lo != chi-clo {
			v.errorf(pp, "%q maps %s onto %s; give ranges of the same length on both sides", p, nPorts(u.hi-u.lo+1, "host"), nPorts(chi-clo+1, "container"))
			continue
		}
		for _, s := range set.seen {
			if s.clashes(u) {
				v.errorf(pp, "host port %s is already published by %s", m[2], s.path)
			}
		}
		set.seen = append(set.seen, u)
	}
}
