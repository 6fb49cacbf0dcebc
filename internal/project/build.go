package project

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	bkclient "github.com/moby/buildkit/client"
	buildctl "github.com/moby/buildkit/cmd/buildctl/build"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pei-dev/pei/internal/buildkit"
	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/engine"
	"github.com/pei-dev/pei/internal/image"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/secretflag"
)

// BuildOptions configure Build.
type BuildOptions struct {
	Dir        string
	ConfigFile string
	Stage      string // 1, 2, final or all
	Builder    string // auto or an address
	Output     string // type=docker | type=oci,dest=FILE | type=registry,ref=REF
	Push       string // shorthand for type=registry,ref=REF
	Insecure   bool   // plain HTTP registry
	Secrets    []string
	Platform   string // e.g. linux/arm64 or linux/amd64,linux/arm64; "" means the host's
	NoCache    bool
	CacheFrom  []string // --cache-from specs, as buildctl takes them
	CacheTo    []string // --cache-to specs
	Progress   string
	Lookup     config.LookupFunc
	Getenv     func(string) string
	Stderr     io.Writer
	// Recipe says Dir is a tenant's recipe (pei worker): nothing outside
	// it may reach the build. Its config and the files it names are read
	// through an os.Root of Dir, ${VAR} expands from nothing (Lookup is
	// not used), git is not run in it, and a config secret read from an
	// environment variable or an absolute path, which are the
	// submitter's, is served only by the secret of that id in Secrets
	// (the worker's), or the build fails.
	Recipe bool
	// StateDir is where a started buildkitd and the base-image store live;
	// "" means the user's cache directory.
	StateDir string
	// Network is where build steps may connect (a daemon pei starts is
	// set up so; another must isolate steps itself). With Isolate and not
	// HostAllowed, a plan that needs the host's network is refused.
	Network buildkitd.Network
	// CacheNamespace is the pei serve tenant the build is for: its cache
	// mounts are its own. "" for a local build.
	CacheNamespace string
}

// Build configures the project (writing its generated files, which the
// build reads) and builds its images with BuildKit.
func Build(ctx context.Context, opts BuildOptions) ([]buildkit.Result, error) {
	out, err := parseOutput(opts.Output, opts.Push, opts.Insecure)
	if err != nil {
		return nil, err
	}
	stages, finalIfAny, stageErr := parseStages(opts.Stage)
	secrets, secretValues, err := parseSecrets(opts.Secrets, opts.Getenv)
	if err != nil {
		return nil, err
	}
	cacheFrom, err := buildctl.ParseImportCache(opts.CacheFrom)
	if err != nil {
		return nil, fmt.Errorf("--cache-from: %w", err)
	}
	cacheTo, err := buildctl.ParseExportCache(opts.CacheTo)
	if err != nil {
		return nil, fmt.Errorf("--cache-to: %w", err)
	}
	var plats []ocispecs.Platform
	if opts.Platform != "" {
		if plats, err = buildkit.ParsePlatforms(opts.Platform, "/proc/sys/fs/binfmt_misc"); err != nil {
			return nil, err
		}
	}
	copts := ConfigureOptions{Dir: opts.Dir, ConfigFile: opts.ConfigFile, Lookup: opts.Lookup}
	if opts.Recipe {
		root, err := os.OpenRoot(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("recipe: %w", err)
		}
		defer root.Close()
		copts.FS, copts.Lookup = root.FS(), nil
	}
	res, err := Configure(copts)
	if err != nil {
		return nil, err
	}
	if opts.Recipe {
		if err := recipeSecrets(&res.Plan, secrets); err != nil {
			return nil, err
		}
	}
	composed := ""
	if stageErr != nil {
		// Not a stage: the name of a composed image, or a mistake.
		for _, ci := range res.Plan.Compose {
			if ci.Name == opts.Stage {
				composed = ci.Name
			}
		}
		if composed == "" {
			return nil, stageErr
		}
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	state, err := StateDir(opts.StateDir)
	if err != nil {
		return nil, err
	}
	daemon, err := buildkitd.Find(ctx, buildkitd.Options{Builder: opts.Builder, StateDir: filepath.Join(state, "buildkit"), Getenv: getenv, Network: opts.Network})
	if err != nil {
		return nil, err
	}
	defer daemon.Stop()
	c, err := bkclient.New(ctx, daemon.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect to buildkitd at %s: %w", daemon.Addr, err)
	}
	defer c.Close()
	noHost := opts.Network.Isolate && !opts.Network.HostAllowed
	if noHost {
		if err := daemon.CheckIsolated(ctx, c); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	auth, err := image.LoadAuth(getenv("DOCKER_CONFIG"))
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
	return buildkit.Build(ctx, c, buildkit.Options{
		ProjectDir:      abs,
		Plan:            res.Plan,
		Stages:          stages,
		FinalIfAny:      finalIfAny,
		Compose:         composed,
		Bases:           buildkit.BaseStore{Dir: filepath.Join(state, "bases"), NoEngine: opts.Recipe},
		Output:          out,
		Secrets:         secrets,
		SecretValues:    secretValues,
		NoCache:         opts.NoCache,
		CacheImports:    cacheFrom,
		CacheExports:    cacheTo,
		Progress:        opts.Progress,
		Stderr:          opts.Stderr,
		SourceDateEpoch: sourceDateEpoch(ctx, res.Plan.SourceDateEpoch, gitDir, getenv),
		Exclude:         res.Exclude,
		Platforms:       plats,
		Auth:            auth,
		CacheNamespace:  opts.CacheNamespace,
		NoHostNetwork:   noHost,
	})
}

// parseStages reads --stage: the stage numbers to build (3 is the final
// image), and whether the final image is only built if the config has one.
func parseStages(s string) ([]int, bool, error) {
	switch s {
	case "", "all":
		return []int{1, 2, 3}, true, nil
	case "1":
		return []int{1}, false, nil
	case "2":
		return []int{1, 2}, false, nil
	case "final":
		return []int{1, 2, 3}, false, nil
	}
	return nil, false, fmt.Errorf("--stage %q: use 1, 2, final, all or the name of an image under compose", s)
}

func parseOutput(spec, push string, insecure bool) (buildkit.Output, error) {
	if push != "" {
		return buildkit.Output{Type: "registry", Dest: push, Insecure: insecure}, nil
	}
	if spec == "" {
		spec = "type=docker"
	}
	kv := map[string]string{}
	for _, part := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return buildkit.Output{}, fmt.Errorf("--output %q: write key=value pairs, e.g. type=oci,dest=image.tar", spec)
		}
		kv[k] = v
	}
	switch kv["type"] {
	case "docker":
		return buildkit.Output{Type: "docker", Load: dockerLoad, Inspect: engine.Inspect}, nil
	case "oci":
		if kv["dest"] == "" {
			return buildkit.Output{}, fmt.Errorf("--output type=oci needs dest=FILE")
		}
		return buildkit.Output{Type: "oci", Dest: kv["dest"]}, nil
	case "registry", "image":
		if kv["ref"] == "" && kv["name"] == "" {
			return buildkit.Output{}, fmt.Errorf("--output type=registry needs ref=REGISTRY/NAME:TAG")
		}
		ref := kv["ref"]
		if ref == "" {
			ref = kv["name"]
		}
		return buildkit.Output{Type: "registry", Dest: ref, Insecure: insecure || kv["registry.insecure"] == "true"}, nil
	}
	return buildkit.Output{}, fmt.Errorf("--output type=%q: use docker, oci or registry", kv["type"])
}

// parseSecrets reads --secret id=ID,env=VAR|src=FILE: files by id, and the
// values of env secrets, which stay in memory (BuildKit's session takes
// them from there; nothing is written to disk).
func parseSecrets(specs []string, getenv func(string) string) (map[string]string, map[string][]byte, error) {
	files := map[string]string{}
	values := map[string][]byte{}
	for _, spec := range specs {
		sp, err := secretflag.Parse(spec)
		if err != nil {
			return nil, nil, err
		}
		if sp.Src != "" {
			files[sp.ID] = sp.Src
			continue
		}
		if getenv == nil || getenv(sp.Env) == "" {
			return nil, nil, fmt.Errorf("--secret %s: environment variable %s is not set", sp.ID, sp.Env)
		}
		values[sp.ID] = []byte(getenv(sp.Env))
	}
	return files, values, nil
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

// sourceDateEpoch is the config's source_date_epoch, else SOURCE_DATE_EPOCH,
// else the last git commit time of dir (unless ""), else -1 (timestamps
// are left as they are).
func sourceDateEpoch(ctx context.Context, fromConfig int64, dir string, getenv func(string) string) int64 {
	if fromConfig >= 0 {
		return fromConfig
	}
	if v := getenv("SOURCE_DATE_EPOCH"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return n
		}
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
