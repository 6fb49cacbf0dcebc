package config

// The types below mirror PeiDocker's user_config.yml. Struct tags drive the
// strict decoder, the JSON Schema and the scaffolded reference config:
//
//	yaml:"name"   the key in user_config.yml
//	doc:"..."     one line of documentation (schema description)
//	enum:"a|b"    the allowed values of a string (of each, for a list)
//	default:"..." the value WithDefaults gives when the key is absent or null
//
// Pointers mark values whose absence matters (null inherits or defaults).
// ImageRef and Hook are written as one string each; Load keeps the string
// and fills in its parsed form, so nothing after Load parses them again.

// Config is a parsed, validated user_config.yml.
type Config struct {
	Stage1 Stage1  `yaml:"stage_1" doc:"The base image: system packages, SSH, proxy, apt and build hooks."`
	Stage2 *Stage2 `yaml:"stage_2" doc:"The final image, built on stage-1: storage, mounts and more hooks."`
	// SourceDateEpoch and Secrets are pei extensions (PeiDocker has neither).
	SourceDateEpoch *int          `yaml:"source_date_epoch" doc:"Seconds since 1970 that pei build clamps file times to, for reproducible digests (default: SOURCE_DATE_EPOCH from the environment, else the project's last git commit)."`
	Secrets         []BuildSecret `yaml:"secrets" key:"id" doc:"Build secrets by id, visible to every on_build script at /run/secrets/ID and never stored in the image."`
	Compose         []Composed    `yaml:"compose" key:"name" doc:"Images composed from other images with BuildKit's merge and diff (pei build only), keyed by a name for pei build --stage NAME."`
	Catalog         []CatalogItem `yaml:"catalog" key:"name" doc:"Prebuilt diffs by name (a language built on a dev base), for compose layers to take with catalog: NAME."`

	// File is the config's path as shown in messages.
	File string `yaml:"-"`
	// Positions maps a dotted field path (stage_1.ssh.users.me.password) to
	// where it was written, for error messages and image labels.
	Positions map[string]Pos `yaml:"-"`
}

// Pos is a place in the config file.
type Pos struct {
	Line, Col int
}

// Stage1 is the stage_1 section.
type Stage1 struct {
	Image       Image    `yaml:"image" doc:"Input and output image names."`
	SSH         *SSH     `yaml:"ssh" doc:"OpenSSH server and login users."`
	Proxy       *Proxy   `yaml:"proxy" doc:"HTTP proxy used during build and/or run."`
	Apt         *Apt     `yaml:"apt" doc:"apt mirror and proxy settings."`
	Environment EnvList  `yaml:"environment" doc:"Environment variables (a list of K=V or a mapping), set at build and run time and in SSH sessions."`
	Ports       []string `yaml:"ports" doc:"Extra port mappings, host:container (Compose syntax)."`
	Device      *Device  `yaml:"device" doc:"cpu or gpu."`
	// Storage is accepted as PeiDocker accepts it, and means what it means
	// there: nothing (plan notes it).
	Storage *Storage `yaml:"storage" doc:"Without effect, as in PeiDocker: the /soft directories are stage-2's (stage_2.storage)."`
	Mount   []Mount  `yaml:"mount" key:"name" doc:"Extra mounts of the stage-1 container, keyed by a name (stage-2 does not inherit them)."`
	Custom  *Custom  `yaml:"custom" doc:"Hook scripts; each entry is 'path [args...]' relative to installation/, split into words as a POSIX shell splits them ('...' literal, \\ kept in \"...\" unless before $ \\ \" or a backquote). In arguments $VAR and $${VAR} expand in the container when the hook runs (${VAR} is filled by pei configure); shell syntax (; &, pipes, redirections, parentheses, backquotes, $(...)) is refused: quote it to pass it."`
}

// Stage2 is the stage_2 section.
type Stage2 struct {
	Image       Image    `yaml:"image" doc:"Input and output image names; a null base means stage-1's output."`
	Environment EnvList  `yaml:"environment" doc:"Environment variables, added to stage-1's."`
	Ports       []string `yaml:"ports" doc:"Port mappings, appended to stage-1's."`
	Device      *Device  `yaml:"device" doc:"Overrides stage-1's device."`
	Proxy       *Proxy   `yaml:"proxy" doc:"Proxy settings; null fields inherit stage-1's."`
	Storage     *Storage `yaml:"storage" doc:"Where /soft/app, /soft/data and /soft/workspace live."`
	Mount       []Mount  `yaml:"mount" key:"name" doc:"Extra mounts of the stage-2 container, keyed by a name (stage-1's are not inherited)."`
	Custom      *Custom  `yaml:"custom" doc:"Hook scripts run after stage-1's."`
	Final       *Final   `yaml:"final" doc:"A final image (pei extension): the paths kept from the stage-2 image on a final base, with the stages' users, SSH, environment, storage and hooks but none of their on_build steps."`
}

// Final is an image that carries only what runs: kept paths of the build
// (stage-2) image on its own base.
type Final struct {
	Base    *ImageRef `yaml:"base" doc:"Base image of the final image (default: stage_1.image.base), e.g. a slim Debian."`
	Output  string    `yaml:"output" default:"REPO:final" doc:"Name:tag of the final image (default: the stage-2 output's name with tag final)."`
	Keep    []string  `yaml:"keep" doc:"Absolute paths copied from the stage-2 image, with owners and modes."`
	Exclude []string  `yaml:"exclude" doc:"Left out of the kept paths: an absolute path (with what is under it), or a file name pattern such as '*.a'."`
	Apt     []string  `yaml:"apt" doc:"Debian packages installed in the final image: the run-time libraries the kept files need."`
	Strip   []string  `yaml:"strip" enum:"docs|man|locales|debug" doc:"What to leave out: docs, man, locales (dpkg never unpacks them in the final image), debug (symbols stripped from kept programs and libraries; needs binutils in the stage-2 image)."`
}

// Image names the base and output images of a stage.
type Image struct {
	Base   *ImageRef `yaml:"base" doc:"Base image: a name the Docker engine, pei's base store or a registry has, or oci-layout://DIR[:TAG][@DIGEST] for an OCI image layout directory in the project (pei build only). For stage_2, null means the stage-1 output."`
	Output string    `yaml:"output" default:"pei-image:stage-N" doc:"Name:tag of the image this stage produces."`
}

// SSH configures the OpenSSH server.
type SSH struct {
	Enable   *bool `yaml:"enable" default:"true" doc:"Install and start an OpenSSH server (default true when the ssh section exists)."`
	Port     *int  `yaml:"port" default:"22" doc:"Port sshd listens on inside the container (default 22)."`
	HostPort *int  `yaml:"host_port" runvar:"HostPortVar" doc:"Port published on the host for SSH (default: not published); may be a {{VAR:-default}} that Compose resolves, checked at its default."`
	// HostPortVar is host_port written as a {{VAR}}: the ${VAR} or
	// ${VAR:-default} Compose resolves. HostPort is then its default, or
	// nil when it has none.
	HostPortVar string `yaml:"-"`
	Users       []User `yaml:"users" key:"name" doc:"Login users keyed by name; 'root' configures the root account."`
}

// User is one SSH login user.
type User struct {
	Name        string `yaml:"-"`
	Password    string `yaml:"password" doc:"Login password; stored in the image only as a SHA-512 crypt hash."`
	PubkeyFile  string `yaml:"pubkey_file" doc:"Public key file added to authorized_keys: relative to installation/, or in a local project a file on this machine (absolute, ~/..., or '~', quoted, for your own ~/.ssh/id_{rsa,dsa,ecdsa,ed25519}.pub, the first found)."`
	PubkeyText  string `yaml:"pubkey_text" doc:"Public key text added to authorized_keys."`
	PrivkeyFile string `yaml:"privkey_file" doc:"Private key file installed as ~/.ssh/id_* (mode 600): relative to installation/, or in a local project a file on this machine (absolute, ~/..., or '~', quoted, for your own ~/.ssh/id_{rsa,dsa,ecdsa,ed25519}, the first found)."`
	PrivkeyText string `yaml:"privkey_text" doc:"Private key text installed as ~/.ssh/id_* (mode 600)."`
	// HostPubkey and HostPrivkey are the contents of a pubkey_file or
	// privkey_file on this machine (outside the project), read by Load;
	// HostPrivkeyPath is the private key's path, after ~ was resolved.
	HostPubkey      string `yaml:"-"`
	HostPrivkey     string `yaml:"-"`
	HostPrivkeyPath string `yaml:"-"`
	// PrivkeyType is the private key's type (rsa, ecdsa, ed25519, dsa),
	// read from the key by validation: it names the file ssh finds it in.
	PrivkeyType string `yaml:"-"`
	UID         *int   `yaml:"uid" doc:"User id (default: the next free one)."`
	GID         *int   `yaml:"gid" doc:"Group id of the user's own group (default: same as uid, or the next free one)."`
}

// Proxy configures an HTTP proxy.
type Proxy struct {
	Address          *string `yaml:"address" default:"host.docker.internal" doc:"Proxy host; host.docker.internal means the Docker host."`
	Port             *int    `yaml:"port" doc:"Proxy port."`
	EnableGlobally   *bool   `yaml:"enable_globally" default:"false" doc:"Export http(s)_proxy for every build step and at run time."`
	RemoveAfterBuild *bool   `yaml:"remove_after_build" default:"false" doc:"Drop the global proxy from the image once built."`
	UseHTTPS         *bool   `yaml:"use_https" default:"false" doc:"Use https:// for the https_proxy URL."`
}

// Apt configures apt sources.
type Apt struct {
	RepoSource          string `yaml:"repo_source" doc:"A sources.list file (relative to installation/) or a mirror: tuna, aliyun, 163, ustc, cn; empty keeps the base image's."`
	KeepRepoAfterBuild  *bool  `yaml:"keep_repo_after_build" default:"true" doc:"Keep the mirror in the final image (default true)."`
	UseProxy            *bool  `yaml:"use_proxy" default:"false" doc:"Send apt through the proxy during build."`
	KeepProxyAfterBuild *bool  `yaml:"keep_proxy_after_build" default:"false" doc:"Keep apt's proxy setting in the image."`
}

// Device selects CPU or GPU.
type Device struct {
	Type string `yaml:"type" enum:"cpu|gpu" default:"cpu" doc:"gpu reserves all NVIDIA GPUs through Compose."`
}

// Custom lists hook scripts. Each entry is "path [args...]", the path
// relative to installation/.
type Custom struct {
	OnBuild     []Hook     `yaml:"on_build" doc:"Run during the image build, one cached step each."`
	OnFirstRun  []Hook     `yaml:"on_first_run" doc:"Run once, when a container first starts."`
	OnEveryRun  []Hook     `yaml:"on_every_run" doc:"Run on every container start."`
	OnUserLogin []Hook     `yaml:"on_user_login" doc:"Run at every SSH login (interactive login shells)."`
	OnEntry     EntryHooks `yaml:"on_entry" doc:"At most one: the container's main program (the command given to docker run overrides it)."`
}

// EntryHooks is on_entry: a list, or its one entry written as a string,
// which PeiDocker's template shows and PeiDocker takes as that list.
type EntryHooks []Hook

// Storage configures the three /soft directories.
type Storage struct {
	App       *StorageItem `yaml:"app" doc:"/soft/app"`
	Data      *StorageItem `yaml:"data" doc:"/soft/data"`
	Workspace *StorageItem `yaml:"workspace" doc:"/soft/workspace"`
}

// StorageItem says where one /soft directory lives.
type StorageItem struct {
	Type       string `yaml:"type" enum:"auto-volume|manual-volume|host|image" default:"image" doc:"auto-volume: a volume Compose creates; manual-volume: an existing volume; host: a host directory; image: inside the image."`
	HostPath   string `yaml:"host_path" doc:"Host directory, for type host."`
	VolumeName string `yaml:"volume_name" doc:"Volume name, for type manual-volume."`
}

// Mount is one extra mount of a stage's container.
type Mount struct {
	Name       string `yaml:"-"`
	Type       string `yaml:"type" enum:"auto-volume|manual-volume|host" doc:"Kind of mount."`
	HostPath   string `yaml:"host_path" doc:"Host directory, for type host."`
	VolumeName string `yaml:"volume_name" doc:"Volume name, for type manual-volume."`
	DstPath    string `yaml:"dst_path" doc:"Absolute path inside the container."`
}

// BuildSecret is where a build secret comes from: an environment variable
// or a file, read when the image is built.
type BuildSecret struct {
	Name string `yaml:"-"`
	Env  string `yaml:"env" doc:"Environment variable holding the secret (read by docker compose build or pei build)."`
	File string `yaml:"file" doc:"File holding the secret: absolute, or relative to the project directory."`
}

// Composed is an image made of other images' file systems, layered in the
// order written: the MetaCall builder's runtime = merge(runtime-base,
// diff(dev-base, dev-lang)).
type Composed struct {
	Name   string  `yaml:"-"`
	Output string  `yaml:"output" doc:"Name:tag of the composed image."`
	Layers []Layer `yaml:"layers" doc:"What to layer, bottom first: {image: REF} takes an image whole (the first one also gives the config: env, entrypoint); {diff: {lower: REF, upper: REF}} takes what upper adds to or changes from lower. exclude leaves absolute paths out of either."`
	Strict bool    `yaml:"strict" doc:"Fail the build, rather than warn, when layers change a file pei cannot merge differently, or leave a package's dependency unsatisfied (see docs/compact.md)."`
}

// Layer is one part of a composed image.
type Layer struct {
	Image ImageRef `yaml:"image" doc:"An image taken whole: a name the engine, pei's base store or a registry has, or oci-layout://DIR."`
	Diff  *Diff    `yaml:"diff" doc:"What one image adds to another."`
	// Catalog names a catalog item; validation sets Diff (and adds the
	// item's excludes) from it.
	Catalog string   `yaml:"catalog" doc:"A diff from the catalog, by name: the same as writing its lower, upper and exclude here."`
	Runner  *Runner  `yaml:"runner" doc:"The project's dependencies installed by a language's package manager in a runner image; only what the install added is layered."`
	Exclude []string `yaml:"exclude" doc:"Absolute paths left out of this layer (with what is under them)."`
}

// Runner installs a project's dependency files with a language's package
// manager in a runner image (the language and its package manager, no
// compilers): the layer is diff(runner, runner + dependencies), so the
// image gets the dependencies but no package manager, cache or build tool.
type Runner struct {
	Image  ImageRef `yaml:"image" doc:"The runner image: the language with its package manager (python3 + pip, nodejs + npm)."`
	Dir    string   `yaml:"dir" default:"." doc:"Project directory holding the dependency files and what they name (wheels, local packages)."`
	Pip    string   `yaml:"pip" doc:"A requirements file in dir: pip install -r it (with dir as the working directory) into the runner's Python, under /usr/local."`
	Npm    string   `yaml:"npm" doc:"package.json in dir: it and its lockfile (package-lock.json or npm-shrinkwrap.json) go to target, where npm ci installs node_modules (npm install without a lockfile); devDependencies are left out."`
	Target string   `yaml:"target" default:"/app" doc:"npm: where package.json and node_modules go in the image."`
}

// CatalogItem is a prebuilt diff: a language (or anything) built on a dev
// base, each an ordinary image built once per base.
type CatalogItem struct {
	Name    string   `yaml:"-"`
	Lower   ImageRef `yaml:"lower" doc:"The image the item was built on (the dev base), e.g. pei/dev-base:bookworm."`
	Upper   ImageRef `yaml:"upper" doc:"That image with the item built in, e.g. pei/lang-python:3.11-bookworm."`
	Exclude []string `yaml:"exclude" doc:"Absolute paths every layer taking this item leaves out (build trees, the project's scripts in /pei-init)."`
}

// Diff names the two images of a diff.
type Diff struct {
	Lower ImageRef `yaml:"lower" doc:"The image the diff starts from (e.g. dev-base)."`
	Upper ImageRef `yaml:"upper" doc:"The image built on it (e.g. dev-lang)."`
}

// EnvVar is one environment variable. Value is what the image holds;
// RunRefs are the spans of Value that are ${VAR} references written as
// {{VAR}}, which Compose (or run-merged.sh) resolves when the container
// starts. Every other byte of Value, $ included, is literal.
type EnvVar struct {
	Name, Value string
	RunRefs     []Span
}

// Span is a byte range [Start, End) of a string.
type Span struct {
	Start, End int
}

// EnvList keeps environment variables in the order written. YAML may give
// it as a list of "K=V" strings or as a mapping.
type EnvList []EnvVar
