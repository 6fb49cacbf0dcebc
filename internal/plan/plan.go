package plan

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/shadow"
)

// Plan is everything needed to build and run a project's images.
type Plan struct {
	// Name is the Compose project name, from the project directory.
	Name   string
	Stages []Stage
	// SourceDateEpoch is the config's source_date_epoch, or -1.
	SourceDateEpoch int64
	// Notes are things a user of the generated files should know.
	Notes []string
	// Final is the final image (stage_2.final), or nil: built on its own
	// base from stage-2's kept paths, without the on_build steps.
	Final *Stage
	// Compose are the images composed from others (merge and diff), in the
	// order written.
	Compose []config.Composed
}

// Stage is one image: stage-1 (system), stage-2 (built on it) or the
// final image (Plan.Final).
type Stage struct {
	Index  int    // 1 or 2; 3 for the final image
	Name   string // stage-1, stage-2 or final
	Dir    string // project-relative source folder: installation/stage-1
	Root   string // where Dir lives in the image: /pei-init/stage-1
	Base   string
	Output string
	// BaseStage is the index of the stage whose output is Base, or 0.
	BaseStage int
	// BaseLayout is set when the base is an OCI layout directory; Base is
	// then the name the generated Dockerfile uses for it.
	BaseLayout *config.LayoutRef
	// Carry is what a final image takes from another stage's image.
	Carry *Carry

	Steps  []Step
	Script Script  // data for this stage's generated scripts
	Run    Runtime // how Compose runs the stage's container
	Build  BuildOptions
}

// Internals is the folder (under each stage's Dir) that pei configure owns.
const Internals = "internals"

// StepKind says what a step does.
type StepKind string

// Step kinds.
const (
	StepEnv  StepKind = "env"  // set environment variables
	StepCopy StepKind = "copy" // copy a project path into the image
	StepRun  StepKind = "run"  // run a command
	// StepCarry copies CarryDir of the stage's Carry image to /.
	StepCarry StepKind = "carry"
)

// CarryDir is where a carry step gathers the paths a final image keeps.
const CarryDir = "/pei-carry"

// Carry is the image a final image takes files from: stage From's image
// with Steps run on it, which gather the kept paths under CarryDir.
type Carry struct {
	From  int
	Steps []Step
}

// Step is one cached build step.
type Step struct {
	Kind StepKind
	// Title says what the step is for; Origin is the config path that caused
	// it (empty for steps every project has) and Pos where that path is.
	// Both are for people (messages, image history): code tells steps apart
	// by Kind, OnBuild and Runtime.
	Title  string
	Origin string
	Pos    config.Pos

	// OnBuild marks the step of an on_build hook: only such steps see the
	// config's secrets, and a final image leaves them out.
	OnBuild bool

	Env     []config.EnvVar // StepEnv
	Src     string          // StepCopy: project-relative path
	Dst     string          // StepCopy: image path
	Command []string        // StepRun: argv
	Mounts  []Mount         // StepRun

	// Runtime marks the steps that bring in the stage's run-time hooks and
	// finish it. No build step of a later stage reads what they write, so a
	// backend may apply them after that stage's build steps: then editing a
	// stage-1 run-time hook re-runs no build step of stage-2 either.
	Runtime bool
}

// MountKind is the kind of a build-time mount.
type MountKind string

// Mount kinds: a project path bound for one step (its content keys the
// step's cache, and nothing of it stays in a layer), a cache kept between
// builds, or a secret.
const (
	MountBind   MountKind = "bind"
	MountCache  MountKind = "cache"
	MountSecret MountKind = "secret"
)

// Mount is a build-time mount of a run step.
type Mount struct {
	Kind   MountKind
	Source string // bind: project-relative path; secret: the secret's id
	Target string
	// ReadWrite lets a step change a bound file; the change is discarded.
	ReadWrite bool
}

// BuildOptions are image-build settings outside the steps.
type BuildOptions struct {
	// Args are build arguments; only Docker's predefined proxy arguments,
	// which never reach the image history.
	Args []config.EnvVar
	// HostNetwork builds with the host's network (a proxy on the host).
	HostNetwork bool
	// Secrets are files passed as build secrets.
	Secrets []Secret
}

// Secret is a build secret read from a project file.
type Secret struct {
	ID   string
	File string // project-relative, or absolute
	Env  string // or the environment variable that holds it
}

// Runtime is how a stage's container runs.
type Runtime struct {
	Env      []config.EnvVar
	Ports    []string
	GPU      bool
	Volumes  []Volume
	HostGW   bool // map host.docker.internal to the host
	Profiles []string
}

// VolumeKind says where a mount comes from.
type VolumeKind string

// Volume kinds, as in user_config.yml.
const (
	AutoVolume   VolumeKind = "auto-volume"
	ManualVolume VolumeKind = "manual-volume"
	HostDir      VolumeKind = "host"
)

// Volume is one run-time mount.
type Volume struct {
	// Key is the Compose volume's key: app, data or workspace for storage,
	// mount_NAME for a mount. These are PeiDocker's, so a PeiDocker
	// project's volumes (PROJECT_KEY) keep their data under pei.
	Key    string
	Kind   VolumeKind
	Source string // host path, external volume name, or the auto volume's key
	Target string
}

// Script is what a stage's generated scripts are made from.
type Script struct {
	Stage    int
	Root     string
	System   *System // stage-1 only
	Users    []User
	Env      []config.EnvVar
	EnvNames []string // every variable to pass to SSH sessions (this and earlier stages)
	Hooks    Hooks
	// Storage lists /soft directories (stage-2 only); Owner owns them.
	Storage []string
	Owner   string
	// Cleanup is what the stage's last step undoes.
	Cleanup Cleanup
	// Final is the final image's carry script data (the final stage only).
	Final *FinalScript
}

// FinalScript says which paths of the build image the final image keeps.
type FinalScript struct {
	Keep       []string
	Exclude    []string // absolute paths, or file name patterns
	StripDebug bool
}

// System is stage-1's apt, proxy and SSH setup.
type System struct {
	Mirror     string // tuna, aliyun, ...; empty for none or a file
	RepoFile   string // image path of a sources.list to install
	AptProxy   string // proxy URL for apt during build, or empty
	SSH        bool
	SSHPort    int
	KeepRepo   bool
	KeepAptPxy bool
}

// User is a login user as the generated script creates it.
type User struct {
	Name         string
	PasswordHash string // SHA-512 crypt; empty for no password
	UID, GID     int    // 0 = pick (ignored for root)
	PubKeys      []string
	PubKeyFile   string // image path where a public key file is bound
	// PrivKeySecret is the id of the build secret that holds the user's
	// private key, or empty.
	PrivKeySecret string
	PrivKeyName   string // file name under ~/.ssh
}

// Hook is one hook script call.
type Hook struct {
	Origin string // config path, e.g. stage_1.custom.on_first_run[0]
	Where  string // user_config.yml:LINE
	Script string // image path
	Args   []config.Arg
}

// Hooks lists a stage's run-time hooks.
type Hooks struct {
	FirstRun  []Hook
	EveryRun  []Hook
	UserLogin []Hook
	Entry     *Hook
}

// Cleanup is undone at the end of a stage.
type Cleanup struct {
	RemoveAptProxy bool
	RestoreRepo    bool
}

// SecretDir is the project folder, ignored by git and by the build context,
// that holds key material given inline in the config (privkey_text), so it
// can be passed as a build secret rather than written into any build file.
const SecretDir = ".pei/secrets"

var projectNameRe = regexp.MustCompile(`[^a-z0-9_-]+`)

// ProjectName turns a directory name into a Compose project name.
func ProjectName(dir string) string {
	n := projectNameRe.ReplaceAllString(strings.ToLower(path.Base(strings.ReplaceAll(dir, "\\", "/"))), "-")
	n = strings.Trim(n, "-_")
	if n == "" {
		return "pei"
	}
	return n
}

// New makes the plan of a config that has been through config.WithDefaults.
// name is the project name (see ProjectName).
func New(c config.Config, name string) (Plan, error) {
	if c.Stage2 == nil || c.Stage1.SSH == nil {
		return Plan{}, fmt.Errorf("plan: config has no defaults applied")
	}
	p := Plan{Name: name, SourceDateEpoch: -1}
	if c.SourceDateEpoch != nil {
		p.SourceDateEpoch = int64(*c.SourceDateEpoch)
	}
	b := &builder{c: c, project: name}
	p.Stages = []Stage{b.stage1(), b.stage2()}
	if b.c.Stage2.Final != nil {
		f := b.final(p.Stages[0], p.Stages[1])
		p.Final = &f
	}
	p.Compose = c.Compose
	if c.Stage1.Storage != nil {
		p.Notes = append(p.Notes, "stage_1.storage has no effect (as in PeiDocker): /soft/app, /soft/data and /soft/workspace are stage-2's; set them in stage_2.storage")
	}
	for _, ci := range c.Compose {
		p.Notes = append(p.Notes, fmt.Sprintf("compose.%s (%s) is built by pei build --stage %s: Compose has no merge or diff of images", ci.Name, ci.Output, ci.Name))
	}
	for _, st := range append(p.Stages, finalOrNone(p.Final)...) {
		if st.BaseLayout != nil {
			p.Notes = append(p.Notes, fmt.Sprintf("%s's base is the OCI layout %s: pei build reads it; docker compose build needs that image in the engine as %s", st.Name, st.BaseLayout.Path, st.Base))
		}
	}
	return p, nil
}

func finalOrNone(f *Stage) []Stage {
	if f == nil {
		return nil
	}
	return []Stage{*f}
}

// CarryScript is the generated script that gathers a final image's kept
// paths, in stage-2's internals folder.
const CarryScript = "carry.sh"

// final plans the final image: stage-1's and stage-2's steps on the final
// base without their on_build steps (the build tools), the runtime
// packages, and the kept paths of the stage-2 image.
func (b *builder) final(s1, s2 Stage) Stage {
	f := *b.c.Stage2.Final
	s := newStage(3, *f.Base, f.Output)
	s.Name, s.Dir, s.Root = "final", s2.Dir, s2.Root
	s.Script = s2.Script
	s.Run = s2.Run
	s.Build = s2.Build
	s.Build.Secrets = nil // only on_build steps see build secrets
	strip := map[string]bool{}
	for _, x := range f.Strip {
		strip[x] = true
	}
	var left []string
	for _, x := range f.Strip {
		if x != "debug" {
			left = append(left, x)
		}
	}
	if len(left) > 0 {
		// Written before any package is installed, so dpkg never unpacks
		// what is left out: nothing to delete, no layer holds it.
		var rules []string
		if strip["docs"] {
			rules = append(rules, "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright")
		}
		if strip["man"] {
			rules = append(rules, "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*")
		}
		if strip["locales"] {
			rules = append(rules, "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias")
		}
		s.Steps = append(s.Steps, Step{Kind: StepRun, Title: "leave out " + strings.Join(left, ", "), Origin: "stage_2.final.strip", Pos: b.pos("stage_2.final.strip"),
			Command: []string{"sh", "-c", "mkdir -p /etc/dpkg/dpkg.cfg.d && printf '%s\\n' " + shellWords(rules) + " > /etc/dpkg/dpkg.cfg.d/pei-final"}})
	}
	keep := func(st Step) bool { return !st.Runtime && !st.OnBuild }
	for _, st := range s1.Steps {
		if keep(st) {
			s.Steps = append(s.Steps, st)
		}
	}
	if len(f.Apt) > 0 {
		s.Steps = append(s.Steps, Step{Kind: StepRun, Title: "run-time packages", Origin: "stage_2.final.apt", Pos: b.pos("stage_2.final.apt"),
			Command: append([]string{"sh", "-c", `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"`, "apt-get"}, f.Apt...),
			Mounts:  append([]Mount(nil), aptCaches...)})
	}
	for _, st := range s2.Steps {
		if keep(st) {
			s.Steps = append(s.Steps, st)
		}
	}
	s.Steps = append(s.Steps, Step{Kind: StepCarry, Title: "kept paths of stage-2", Origin: "stage_2.final.keep", Pos: b.pos("stage_2.final.keep")})
	for _, st := range append(append([]Step(nil), s1.Steps...), s2.Steps...) {
		if st.Runtime {
			s.Steps = append(s.Steps, st)
		}
	}
	src, dst := s2.internal(CarryScript)
	s.Carry = &Carry{From: 2, Steps: []Step{{Kind: StepRun, Title: "gather the kept paths", Origin: "stage_2.final.keep", Pos: b.pos("stage_2.final.keep"),
		Command: []string{"bash", dst}, Mounts: []Mount{{Kind: MountBind, Source: src, Target: dst}}}}}
	s.Script.Final = &FinalScript{Keep: f.Keep, Exclude: f.Exclude, StripDebug: strip["debug"]}
	return s
}

// shellWords quotes each word for sh.
func shellWords(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

type builder struct {
	c       config.Config
	project string
}

func (b *builder) pos(origin string) config.Pos {
	for p := origin; p != ""; {
		if pos, ok := b.c.Positions[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return config.Pos{}
}

func (b *builder) where(origin string) string {
	pos := b.pos(origin)
	if pos.Line == 0 {
		return path.Base(b.c.File)
	}
	return fmt.Sprintf("%s:%d", path.Base(b.c.File), pos.Line)
}

func newStage(i int, base config.ImageRef, output string) Stage {
	s := Stage{Index: i, Name: fmt.Sprintf("stage-%d", i), Base: base.Raw, Output: output}
	if base.Layout != nil {
		l := *base.Layout
		s.BaseLayout, s.Base = &l, l.EngineName()
	}
	s.Dir = config.InstallDir + "/" + s.Name
	s.Root = "/pei-init/" + s.Name
	s.Script.Stage = i
	s.Script.Root = s.Root
	// As in PeiDocker, every container reaches the Docker host by name,
	// proxy or not: hooks and users rely on it.
	s.Run.HostGW = true
	return s
}

// internal returns the project path and image path of a generated file.
func (s *Stage) internal(name string) (src, dst string) {
	return s.Dir + "/" + Internals + "/" + name, s.Root + "/" + Internals + "/" + name
}

// aptCaches keep apt's lists and downloads out of every layer and warm
// between builds.
var aptCaches = []Mount{
	{Kind: MountCache, Target: "/var/cache/apt"},
	{Kind: MountCache, Target: "/var/lib/apt/lists"},
}

func (s *Stage) runInternal(title, origin string, pos config.Pos, script string, apt bool, extra ...Mount) {
	src, dst := s.internal(script)
	lib, libDst := s.internal("lib.sh")
	mounts := []Mount{{Kind: MountBind, Source: lib, Target: libDst}, {Kind: MountBind, Source: src, Target: dst}}
	if apt {
		mounts = append(mounts, aptCaches...)
	}
	mounts = append(mounts, extra...)
	s.Steps = append(s.Steps, Step{Kind: StepRun, Title: title, Origin: origin, Pos: pos, Command: []string{"bash", dst}, Mounts: mounts})
}

func (b *builder) proxyURL(p *config.Proxy, buildTime bool) string {
	if p.Port == nil || p.Address == nil {
		return ""
	}
	host := *p.Address
	if buildTime && host == config.DefaultProxyAddress {
		// host-gateway cannot be used at build time on older engines; the
		// build runs on the host's network instead, where the proxy is local.
		host = "127.0.0.1"
	}
	return fmt.Sprintf("http://%s:%d", host, *p.Port)
}

func proxyEnv(url string, https bool) []config.EnvVar {
	hurl := url
	if https {
		hurl = "https" + strings.TrimPrefix(url, "http")
	}
	return []config.EnvVar{
		{Name: "http_proxy", Value: url}, {Name: "https_proxy", Value: hurl},
		{Name: "HTTP_PROXY", Value: url}, {Name: "HTTPS_PROXY", Value: hurl},
	}
}

// proxy sets a stage's build arguments, image env and run-time env for its
// proxy settings.
func (b *builder) proxy(s *Stage, p *config.Proxy, aptProxy bool) (imageEnv []config.EnvVar) {
	global := *p.EnableGlobally
	if !global && !aptProxy {
		return nil
	}
	if p.Address != nil && *p.Address == config.DefaultProxyAddress {
		s.Build.HostNetwork = true
	}
	if !global {
		return nil
	}
	https := p.UseHTTPS != nil && *p.UseHTTPS
	// Docker's predefined proxy build arguments reach every RUN step but
	// never the image's history or config.
	s.Build.Args = proxyEnv(b.proxyURL(p, true), https)
	if *p.RemoveAfterBuild {
		return nil
	}
	env := proxyEnv(b.proxyURL(p, false), https)
	s.Run.Env = append(s.Run.Env, env...)
	return env
}

func (b *builder) stage1() Stage {
	c := b.c.Stage1
	s := newStage(1, *c.Image.Base, c.Image.Output)
	s.Run.Profiles = []string{"stage-1"}
	s.Run.GPU = c.Device.Type == "gpu"

	aptProxy := *c.Apt.UseProxy && c.Proxy.Port != nil
	proxyImageEnv := b.proxy(&s, c.Proxy, aptProxy)

	s.Steps = append(s.Steps, peiDockerEnvStep(stageDirEnv(1)))
	sys := &System{SSH: *c.SSH.Enable, SSHPort: *c.SSH.Port, KeepRepo: *c.Apt.KeepRepoAfterBuild, KeepAptPxy: *c.Apt.KeepProxyAfterBuild}
	var extra []Mount
	switch src := c.Apt.RepoSource; {
	case src == "":
	case isMirror(src):
		sys.Mirror = src
	default:
		sys.RepoFile = "/run/pei/sources.list"
		extra = append(extra, Mount{Kind: MountBind, Source: config.InstallDir + "/" + src, Target: sys.RepoFile})
	}
	if aptProxy {
		sys.AptProxy = b.proxyURL(c.Proxy, true)
	}
	s.Script.System = sys
	s.Script.Cleanup = Cleanup{RemoveAptProxy: aptProxy && !sys.KeepAptPxy, RestoreRepo: c.Apt.RepoSource != "" && !sys.KeepRepo}
	s.runInternal("apt sources, proxy and system packages", "stage_1.apt", b.pos("stage_1.apt"), "system.sh", true, extra...)

	if len(c.SSH.Users) > 0 {
		var secrets []Mount
		for _, u := range c.SSH.Users {
			pu := User{Name: u.Name}
			if u.Password != "" {
				pu.PasswordHash = shadow.Hash(u.Password, b.project+"/"+u.Name)
			}
			if u.UID != nil {
				pu.UID = *u.UID
			}
			if u.GID != nil {
				pu.GID = *u.GID
			}
			if u.PubkeyText != "" {
				pu.PubKeys = append(pu.PubKeys, authorizedLines(u.PubkeyText)...)
			}
			if u.HostPubkey != "" {
				// A public key from this machine goes into the users script
				// as pubkey_text does: the project holds no copy to bind.
				pu.PubKeys = append(pu.PubKeys, authorizedLines(u.HostPubkey)...)
			} else if u.PubkeyFile != "" {
				pu.PubKeyFile = "/run/pei/pubkeys/" + u.Name + ".pub"
				secrets = append(secrets, Mount{Kind: MountBind, Source: config.InstallDir + "/" + u.PubkeyFile, Target: pu.PubKeyFile})
			}
			if u.PrivkeyFile != "" || u.PrivkeyText != "" {
				pu.PrivKeySecret = "pei_privkey_" + u.Name
				pu.PrivKeyName = privKeyName(u.PrivkeyFile, u.PrivkeyType)
				if u.HostPrivkeyPath != "" {
					pu.PrivKeyName = privKeyName(u.HostPrivkeyPath, u.PrivkeyType)
				}
				// privkey_text and a private key from this machine are
				// written under SecretDir by pei configure (mode 600).
				file := SecretDir + "/privkey_" + u.Name
				if u.PrivkeyFile != "" && u.HostPrivkey == "" {
					file = config.InstallDir + "/" + u.PrivkeyFile
				}
				s.Build.Secrets = append(s.Build.Secrets, Secret{ID: pu.PrivKeySecret, File: file})
				secrets = append(secrets, Mount{Kind: MountSecret, Source: pu.PrivKeySecret, Target: "/run/secrets/" + pu.PrivKeySecret})
			}
			s.Script.Users = append(s.Script.Users, pu)
		}
		s.runInternal("SSH users", "stage_1.ssh.users", b.pos("stage_1.ssh.users"), "users.sh", false, secrets...)
	}

	env := append(append([]config.EnvVar(nil), proxyImageEnv...), c.Environment...)
	s.Script.Env = c.Environment
	s.Script.EnvNames = uniqueNames(envNames(stageDirEnv(1)), envNames(c.Environment))
	s.Run.Env = append(s.Run.Env, c.Environment...)
	b.hookSteps(&s, "stage_1", c.Custom, env)

	s.Run.Ports = stage1Ports(c)
	s.Run.Volumes = mounts(c.Mount)
	return s
}

func (b *builder) stage2() Stage {
	c := *b.c.Stage2
	s1 := b.c.Stage1
	s := newStage(2, *c.Image.Base, c.Image.Output)
	if c.Image.Base.Raw == s1.Image.Output {
		s.BaseStage = 1
	}
	s.Run.GPU = c.Device.Type == "gpu"
	proxyImageEnv := b.proxy(&s, c.Proxy, false)

	for _, u := range s1.SSH.Users {
		if u.Name != "root" && s.Script.Owner == "" {
			s.Script.Owner = u.Name
		}
	}
	s.Steps = append(s.Steps, peiDockerEnvStep(append(stageDirEnv(2), StorageEnv...)))
	s.Script.Storage = []string{"app", "data", "workspace"}
	items := []*config.StorageItem{c.Storage.App, c.Storage.Data, c.Storage.Workspace}
	for i, key := range s.Script.Storage {
		if v, ok := volume(key, items[i].Type, items[i].HostPath, items[i].VolumeName, "/hard/volume/"+key); ok {
			s.Run.Volumes = append(s.Run.Volumes, v)
		}
	}
	s.Run.Volumes = append(s.Run.Volumes, mounts(c.Mount)...)
	s.runInternal("storage directories", "stage_2.storage", b.pos("stage_2.storage"), "storage.sh", false)

	env := append(append([]config.EnvVar(nil), proxyImageEnv...), c.Environment...)
	s.Script.Env = c.Environment
	s.Script.EnvNames = uniqueNames(envNames(stageDirEnv(1)), envNames(s1.Environment), envNames(stageDirEnv(2)), envNames(StorageEnv), envNames(c.Environment))
	// The stage-2 container gets stage-1's variables too (they are in the
	// image already; Compose resolves run-time ${VAR}s in both).
	s.Run.Env = append(append(s.Run.Env, s1.Environment...), c.Environment...)
	b.hookSteps(&s, "stage_2", c.Custom, env)
	s.Run.Ports = append(append([]string(nil), stage1Ports(s1)...), c.Ports...)
	return s
}

// StorageEnv are the variables PeiDocker's stage-2 image sets for its
// storage paths (stage-2.Dockerfile's ENV lines, with its defaults), so a
// hook argument such as $PEI_SOFT_DATA, or a script ported from PeiDocker,
// finds the same paths under pei.
var StorageEnv = []config.EnvVar{
	{Name: "PEI_PREFIX_DATA", Value: "data"},
	{Name: "PEI_PREFIX_APPS", Value: "app"},
	{Name: "PEI_PREFIX_WORKSPACE", Value: "workspace"},
	{Name: "PEI_PREFIX_VOLUME", Value: "volume"},
	{Name: "PEI_PREFIX_IMAGE", Value: "image"},
	{Name: "PEI_PATH_HARD", Value: "/hard"},
	{Name: "PEI_PATH_SOFT", Value: "/soft"},
	{Name: "PEI_SOFT_APPS", Value: "/soft/app"},
	{Name: "PEI_SOFT_WORKSPACE", Value: "/soft/workspace"},
	{Name: "PEI_SOFT_DATA", Value: "/soft/data"},
}

// stageDirEnv is PeiDocker's PEI_STAGE_DIR_N, where installation/stage-N
// is in the image (PeiDocker's installers read $PEI_STAGE_DIR_1/tmp); pei
// keeps it under /pei-init rather than PeiDocker's /pei-from-host.
func stageDirEnv(i int) []config.EnvVar {
	return []config.EnvVar{{Name: fmt.Sprintf("PEI_STAGE_DIR_%d", i), Value: fmt.Sprintf("/pei-init/stage-%d", i)}}
}

// peiDockerEnvStep sets PeiDocker's variables first: they never change, so
// the step never invalidates another's cache.
func peiDockerEnvStep(env []config.EnvVar) Step {
	return Step{Kind: StepEnv, Title: "PeiDocker's path variables", Env: env}
}

// uniqueNames joins lists of names, each name once (a configured variable
// may override one of PeiDocker's).
func uniqueNames(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, n := range l {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

func stage1Ports(s1 config.Stage1) []string {
	ports := append([]string(nil), s1.Ports...)
	switch {
	case !*s1.SSH.Enable:
	case s1.SSH.HostPortVar != "":
		// Compose resolves the variable as the published port.
		ports = append([]string{fmt.Sprintf("%s:%d", s1.SSH.HostPortVar, *s1.SSH.Port)}, ports...)
	case s1.SSH.HostPort != nil:
		ports = append([]string{fmt.Sprintf("%d:%d", *s1.SSH.HostPort, *s1.SSH.Port)}, ports...)
	}
	return ports
}

// mounts are a stage's own mounts: as in PeiDocker, a stage does not
// inherit another's.
func mounts(ms []config.Mount) []Volume {
	var out []Volume
	for _, m := range ms {
		if v, ok := volume("mount_"+m.Name, m.Type, m.HostPath, m.VolumeName, m.DstPath); ok {
			out = append(out, v)
		}
	}
	return out
}

func volume(key, typ, hostPath, name, target string) (Volume, bool) {
	switch typ {
	case "auto-volume":
		return Volume{Key: key, Kind: AutoVolume, Source: key, Target: target}, true
	case "manual-volume":
		return Volume{Key: key, Kind: ManualVolume, Source: name, Target: target}, true
	case "host":
		return Volume{Key: key, Kind: HostDir, Source: hostPath, Target: target}, true
	}
	return Volume{}, false
}

// hookSteps adds a stage's environment, one step per on_build script, and
// the final copy of the stage's folder that the run-time hooks live in.
// The order is by how often inputs change: env and build scripts before the
// run-time hooks, so editing a run-time hook re-runs no build script.
func (b *builder) hookSteps(s *Stage, section string, c *config.Custom, env []config.EnvVar) {
	if len(c.OnBuild) > 0 {
		for _, sec := range b.c.Secrets {
			s.Build.Secrets = append(s.Build.Secrets, Secret{ID: sec.Name, File: sec.File, Env: sec.Env})
		}
	}
	if len(env) > 0 {
		s.Steps = append(s.Steps, Step{Kind: StepEnv, Title: "environment", Origin: section + ".environment", Pos: b.pos(section + ".environment"), Env: env})
	}
	lib, libDst := s.internal("lib.sh")
	for i, entry := range c.OnBuild {
		origin := fmt.Sprintf("%s.custom.on_build[%d]", section, i)
		h := b.hook(origin, entry)
		// Each build script sees its own file (read-write, so line endings
		// can be fixed in place) and the stage's system/ and tmp/ folders.
		mounts := []Mount{
			{Kind: MountBind, Source: lib, Target: libDst},
			{Kind: MountBind, Source: config.InstallDir + "/" + strings.TrimPrefix(h.Script, "/pei-init/"), Target: h.Script, ReadWrite: true},
		}
		for _, dir := range []string{"system", "tmp"} {
			mounts = append(mounts, Mount{Kind: MountBind, Source: s.Dir + "/" + dir, Target: s.Root + "/" + dir})
		}
		mounts = append(mounts, aptCaches...)
		for _, sec := range b.c.Secrets {
			mounts = append(mounts, Mount{Kind: MountSecret, Source: sec.Name, Target: "/run/secrets/" + sec.Name})
		}
		cmd := onBuildCommand(libDst, h)
		s.Steps = append(s.Steps, Step{Kind: StepRun, Title: "on_build: " + entry.Raw, Origin: origin, Pos: b.pos(origin), OnBuild: true, Command: cmd, Mounts: mounts})
	}
	for i, e := range c.OnFirstRun {
		s.Script.Hooks.FirstRun = append(s.Script.Hooks.FirstRun, b.hook(fmt.Sprintf("%s.custom.on_first_run[%d]", section, i), e))
	}
	for i, e := range c.OnEveryRun {
		s.Script.Hooks.EveryRun = append(s.Script.Hooks.EveryRun, b.hook(fmt.Sprintf("%s.custom.on_every_run[%d]", section, i), e))
	}
	for i, e := range c.OnUserLogin {
		s.Script.Hooks.UserLogin = append(s.Script.Hooks.UserLogin, b.hook(fmt.Sprintf("%s.custom.on_user_login[%d]", section, i), e))
	}
	if len(c.OnEntry) > 0 {
		h := b.hook(section+".custom.on_entry[0]", c.OnEntry[0])
		s.Script.Hooks.Entry = &h
	}
	s.Steps = append(s.Steps, Step{Kind: StepCopy, Title: "project files and run-time hooks", Src: s.Dir, Dst: s.Root, Runtime: true})
	// finish.sh came in with the copy above, which is its cache key.
	_, finalDst := s.internal("finish.sh")
	s.Steps = append(s.Steps, Step{Kind: StepRun, Title: "finish the stage", Command: []string{"bash", finalDst}, Runtime: true})
}

func (b *builder) hook(origin string, h config.Hook) Hook {
	return Hook{Origin: origin, Where: b.where(origin), Script: "/pei-init/" + path.Clean(h.Script), Args: h.Args}
}

// onBuildCommand is the argv of an on_build step. Arguments with variables
// ($HOME) need a shell to expand them when the step runs; the shell code is
// made of quoted words only (config.Arg.Shell), so no argument adds code.
func onBuildCommand(lib string, h Hook) []string {
	argv := []string{"bash", lib, "run-hook", h.Where, h.Script}
	shell := false
	for _, a := range h.Args {
		if _, ok := a.Literal(); !ok {
			shell = true
		}
	}
	if !shell {
		for _, a := range h.Args {
			s, _ := a.Literal()
			argv = append(argv, s)
		}
		return argv
	}
	words := []string{"exec"}
	for _, s := range argv {
		words = append(words, config.LitArg(s).Shell())
	}
	for _, a := range h.Args {
		words = append(words, a.Shell())
	}
	return []string{"bash", "-c", strings.Join(words, " ")}
}

func isMirror(s string) bool { return slices.Contains(config.AptMirrors, s) }

func envNames(env []config.EnvVar) []string {
	var out []string
	for _, e := range env {
		out = append(out, e.Name)
	}
	return out
}

func authorizedLines(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// sshKeyNames are the private key files ssh tries by default.
var sshKeyNames = []string{"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_dsa"}

// privKeyName is the name under ~/.ssh a private key is installed as: one
// ssh tries by default, so ssh and git in the container use it, as with
// PeiDocker (which installs keys as id_rsa, id_ecdsa or id_dsa). A file
// already named so keeps its name; any other key is named by its type
// (PeiDocker's id_rsa when the type is unknown).
func privKeyName(file, keyType string) string {
	if base := path.Base(file); slices.Contains(sshKeyNames, base) {
		return base
	}
	if keyType == "" {
		return "id_rsa"
	}
	return "id_" + keyType
}

// ResolveImages returns p with the {{VAR}}s of its image names (bases,
// outputs, composed images and their layers) resolved as Compose resolves
// them, for a backend that names the images itself (pei build): lookup is
// its environment; nil sets nothing, so each variable takes its default.
func (p Plan) ResolveImages(lookup config.LookupFunc) Plan {
	r := func(s string) string { return config.ResolveRuntime(s, lookup) }
	ref := func(x config.ImageRef) config.ImageRef {
		x.Raw = r(x.Raw)
		return x
	}
	out := p
	out.Stages = append([]Stage(nil), p.Stages...)
	for i := range out.Stages {
		out.Stages[i].Base, out.Stages[i].Output = r(out.Stages[i].Base), r(out.Stages[i].Output)
	}
	if p.Final != nil {
		f := *p.Final
		f.Base, f.Output = r(f.Base), r(f.Output)
		out.Final = &f
	}
	out.Compose = append([]config.Composed(nil), p.Compose...)
	for i, ci := range out.Compose {
		ci.Output = r(ci.Output)
		ci.Layers = append([]config.Layer(nil), ci.Layers...)
		for j, l := range ci.Layers {
			l.Image = ref(l.Image)
			if l.Diff != nil {
				d := config.Diff{Lower: ref(l.Diff.Lower), Upper: ref(l.Diff.Upper)}
				l.Diff = &d
			}
			ci.Layers[j] = l
		}
		out.Compose[i] = ci
	}
	return out
}
