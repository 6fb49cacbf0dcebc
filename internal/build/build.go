package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config/configfile"
	bkclient "github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pei-dev/pei/internal/buildkit"
	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/engine"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/project"
)

// Options configure Build. Every field is a value: nothing is parsed back
// from a string and nothing is read from the environment or from disk but
// the project (and the secret files Secrets names).
type Options struct {
	// Dir is the project directory; ConfigFile its config ("" means
	// user_config.yml).
	Dir        string
	ConfigFile string
	// Recipe says Dir is a tenant's recipe (pei worker): nothing outside
	// it may reach the build. It is loaded under project.Recipe (read
	// through an os.Root of Dir, ${VAR} from nothing), git is not run in
	// it, and a config secret read from an environment variable or an
	// absolute path, which are the submitter's, is served only by the
	// secret of that id in Secrets.Files (the worker's), or the build
	// fails. Otherwise Dir is the user's own project (project.Local).
	Recipe bool
	// Lookup expands ${VAR} in a local project's config; nil means no
	// variables are set. A recipe never reads it.
	Lookup config.LookupFunc
	// Target is what to build (ParseTarget); the zero Target is every
	// stage, as "all".
	Target Target
	// Platforms to build for; none means the host's.
	Platforms []ocispecs.Platform
	// Output is where the last image goes (DockerOutput, OCIOutput,
	// RegistryOutput); the zero Output is DockerOutput.
	Output  buildkit.Output
	Secrets Secrets
	NoCache bool
	// CacheImports and CacheExports are BuildKit cache entries (as
	// buildctl's --import-cache and --export-cache make them).
	CacheImports []bkclient.CacheOptionsEntry
	CacheExports []bkclient.CacheOptionsEntry
	// Auth holds registry credentials (bases, cache, push); nil means none.
	Auth *configfile.ConfigFile
	// SourceDateEpoch clamps timestamps when the config sets none; nil
	// means the project's last git commit (a local project), else none.
	SourceDateEpoch *int64
	// Daemon is the BuildKit daemon to build on.
	Daemon Daemon
	// CacheNamespace is the pei serve tenant the build is for: its cache
	// mounts are its own. "" for a local build.
	CacheNamespace string
	Progress       string
	Stderr         io.Writer
	// TrustedCAs are PEM certificates the composed images' runner installs
	// trust besides their image's own (HostCAs: the machine's, so that a
	// site's TLS proxy in front of npm or PyPI works). Certificates are
	// public; none reaches an image.
	TrustedCAs []byte
	// Catalog is pei serve's catalog items the build may take (a
	// recipe's compose layers name them with catalog: NAME), as the
	// server resolved them at submission: registry references pinned
	// by digest.
	Catalog []config.CatalogItem
}

// DefaultCAFile is where Debian keeps the machine's trusted certificates.
const DefaultCAFile = "/etc/ssl/certs/ca-certificates.crt"

// HostCAs reads the certificates this machine trusts: SSL_CERT_FILE (from
// getenv, when it is set) or DefaultCAFile. A machine without the file
// trusts nothing more (nil); one that cannot be read is an error.
func HostCAs(getenv func(string) string) ([]byte, error) {
	file := DefaultCAFile
	if getenv != nil && getenv("SSL_CERT_FILE") != "" {
		file = getenv("SSL_CERT_FILE")
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) && file == DefaultCAFile {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trusted certificates: %w", err)
	}
	return b, nil
}

// Target is what Build builds: stages of the plan, or one composed image.
type Target struct {
	// Stages by index (3 is the final image); none means all three.
	Stages []int
	// FinalIfAny builds the final image only if the config has one.
	FinalIfAny bool
	// Compose names an image under the config's compose: instead.
	Compose string
	// name is what ParseTarget read, for errors.
	name string
}

// ParseTarget reads --stage: 1, 2, final, all ("" too), or the name of an
// image under compose (which Build checks against the config).
func ParseTarget(s string) Target {
	switch s {
	case "", "all":
		return Target{Stages: []int{1, 2, 3}, FinalIfAny: true, name: s}
	case "1":
		return Target{Stages: []int{1}, name: s}
	case "2":
		return Target{Stages: []int{1, 2}, name: s}
	case "final":
		return Target{Stages: []int{1, 2, 3}, name: s}
	}
	return Target{Compose: s, name: s}
}

// Secrets are the build's secrets by id: files on this machine, and
// values kept in memory (BuildKit's session takes them from there;
// nothing is written to disk).
type Secrets struct {
	Files  map[string]string
	Values map[string][]byte
}

// DockerOutput loads the images into the Docker engine (docker load),
// leaving out what the engine already holds.
func DockerOutput() buildkit.Output {
	return buildkit.Output{Type: "docker", Load: dockerLoad, Inspect: engine.Inspect}
}

// OCIOutput writes the last image as an OCI layout tarball at dest.
func OCIOutput(dest string) buildkit.Output { return buildkit.Output{Type: "oci", Dest: dest} }

// RegistryOutput pushes the last image to ref (insecure: plain HTTP).
func RegistryOutput(ref string, insecure bool) buildkit.Output {
	return buildkit.Output{Type: "registry", Dest: ref, Insecure: insecure}
}

// Build configures the project (writing its generated files, which the
// build reads) and builds its images with BuildKit.
func Build(ctx context.Context, opts Options) ([]buildkit.Result, error) {
	copts := project.ConfigureOptions{Policy: project.Local, Dir: opts.Dir, ConfigFile: opts.ConfigFile, Lookup: opts.Lookup, Catalog: opts.Catalog}
	if opts.Recipe {
		copts.Policy, copts.Lookup = project.Recipe, nil
	}
	res, err := project.Configure(copts)
	if err != nil {
		return nil, err
	}
	if opts.Recipe {
		if err := recipeSecrets(&res.Plan, opts.Secrets.Files); err != nil {
			return nil, err
		}
	}
	// docker-compose.yml keeps {{VAR}}s in image names for Compose to
	// resolve; pei build resolves them the same way, from its own lookup.
	lookup := opts.Lookup
	if opts.Recipe {
		lookup = nil
	}
	if res.Plan, err = resolveImages(res.Plan, lookup); err != nil {
		return nil, err
	}
	target := opts.Target
	if len(target.Stages) == 0 && target.Compose == "" {
		target = ParseTarget("all")
	}
	if target.Compose != "" && !hasComposed(res.Plan, target.Compose) {
		return nil, fmt.Errorf("--stage %q: use 1, 2, final, all or the name of an image under compose", target.name)
	}
	out := opts.Output
	if out.Type == "" {
		out = DockerOutput()
	}
	conn, err := opts.Daemon.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.close()
	abs, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	// Never git in a recipe: its .git (or a gitdir file pointing
	// elsewhere) and config would be the tenant's, and git runs hooks and
	// programs its config names.
	gitDir := abs
	if opts.Recipe {
		gitDir = ""
	}
	return buildkit.Build(ctx, conn.client, buildkit.Options{
		ProjectDir:      abs,
		Plan:            res.Plan,
		Stages:          target.Stages,
		FinalIfAny:      target.FinalIfAny,
		Compose:         target.Compose,
		Bases:           buildkit.BaseStore{Dir: filepath.Join(conn.state, "bases"), NoEngine: opts.Recipe},
		Output:          out,
		Secrets:         opts.Secrets.Files,
		SecretValues:    opts.Secrets.Values,
		NoCache:         opts.NoCache,
		CacheImports:    opts.CacheImports,
		CacheExports:    opts.CacheExports,
		Progress:        opts.Progress,
		Stderr:          opts.Stderr,
		SourceDateEpoch: sourceDateEpoch(ctx, res.Plan.SourceDateEpoch, opts.SourceDateEpoch, gitDir),
		Exclude:         res.Exclude,
		Platforms:       opts.Platforms,
		Auth:            opts.Auth,
		CacheNamespace:  opts.CacheNamespace,
		NoHostNetwork:   conn.noHost,
		TrustedCAs:      opts.TrustedCAs,
	})
}

// resolveImages resolves the {{VAR}}s of a plan's image names and checks
// that what they resolve to are image names.
func resolveImages(p plan.Plan, lookup config.LookupFunc) (plan.Plan, error) {
	r := p.ResolveImages(lookup)
	check := func(what, raw, name string) error {
		if raw == name || strings.HasPrefix(name, config.LayoutPrefix) {
			return nil
		}
		if _, err := reference.ParseNormalizedNamed(name); err != nil {
			return fmt.Errorf("%s %q is %q with its variables resolved, which is not an image name: %w", what, raw, name, err)
		}
		return nil
	}
	stages := append([]plan.Stage(nil), p.Stages...)
	rstages := append([]plan.Stage(nil), r.Stages...)
	if p.Final != nil {
		stages, rstages = append(stages, *p.Final), append(rstages, *r.Final)
	}
	for i, s := range stages {
		if err := check(s.Name+" base", s.Base, rstages[i].Base); err != nil {
			return p, err
		}
		if err := check(s.Name+" output", s.Output, rstages[i].Output); err != nil {
			return p, err
		}
	}
	for i, ci := range p.Compose {
		if err := check("compose."+ci.Name+" output", ci.Output, r.Compose[i].Output); err != nil {
			return p, err
		}
	}
	return r, nil
}

func hasComposed(p plan.Plan, name string) bool {
	for _, ci := range p.Compose {
		if ci.Name == name {
			return true
		}
	}
	return false
}

// binfmtDir is where the kernel lists the emulators of foreign platforms.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// ParsePlatforms reads a comma-separated platform list (linux/arm64,...),
// each one this host runs natively or has an emulator for.
func ParsePlatforms(list string) ([]ocispecs.Platform, error) {
	return buildkit.ParsePlatforms(list, binfmtDir)
}

func dockerLoad(ctx context.Context) (io.WriteCloser, func() error, error) {
	cmd := exec.CommandContext(ctx, "docker", "load")
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("docker load: %w", err)
	}
	return w, func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("docker load: %v: %s", err, stderr.String())
		}
		return nil
	}, nil
}

// sourceDateEpoch is the config's source_date_epoch, else the caller's
// (SOURCE_DATE_EPOCH), else the last git commit time of dir (unless ""),
// else -1 (timestamps are left as they are).
func sourceDateEpoch(ctx context.Context, fromConfig int64, given *int64, dir string) int64 {
	if fromConfig >= 0 {
		return fromConfig
	}
	if given != nil && *given >= 0 {
		return *given
	}
	if dir == "" {
		return -1
	}
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "log", "-1", "--format=%ct").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return n
		}
	}
	return -1
}

// recipeSecrets makes a recipe's config secrets safe to serve: one read
// from an environment variable or an absolute path names the submitter's
// machine, so the worker serves its own secret of that id (worker maps
// ids to the worker's files) or the build fails; one read from a file in
// the recipe stays as it is (the recipe's own, contained).
func recipeSecrets(p *plan.Plan, worker map[string]string) error {
	for i := range p.Stages {
		secs := p.Stages[i].Build.Secrets
		for j, sec := range secs {
			if sec.Env == "" && !filepath.IsAbs(sec.File) {
				continue
			}
			file, ok := worker[sec.ID]
			if !ok {
				return fmt.Errorf("secret %s: the config reads it from the submitter's environment or files, which a worker never reads; submit with --secret %s so that a worker holding %s builds it", sec.ID, sec.ID, sec.ID)
			}
			secs[j] = plan.Secret{ID: sec.ID, File: file}
		}
	}
	return nil
}

// StateDir is where pei keeps its base store and buildkitd state: dir if
// given, else $XDG_CACHE_HOME/pei (~/.cache/pei).
func StateDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	return filepath.Join(cache, "pei"), nil
}
