package build

import (
	"fmt"
	"strconv"
	"strings"

	buildctl "github.com/moby/buildkit/cmd/buildctl/build"

	"github.com/pei-dev/pei/internal/buildkit"
	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/image"
	"github.com/pei-dev/pei/internal/secretflag"
)

// Flags are pei build's flags as the user wrote them, and the environment
// they are read with. Options turns them into Options; a front door that
// has values (pei worker) fills Options directly.
type Flags struct {
	Dir        string
	ConfigFile string
	Stage      string   // 1, 2, final, all or a composed image's name
	Builder    string   // auto or an address
	Output     string   // type=docker | type=oci,dest=FILE | type=registry,ref=REF
	Push       string   // shorthand for type=registry,ref=REF
	Insecure   bool     // plain HTTP registry
	Secrets    []string // id=ID,env=VAR or id=ID,src=FILE
	Platform   string   // e.g. linux/arm64 or linux/amd64,linux/arm64; "" means the host's
	NoCache    bool
	CacheFrom  []string // --cache-from specs, as buildctl takes them
	CacheTo    []string // --cache-to specs
	Progress   string
	StateDir   string
	// Getenv reads SOURCE_DATE_EPOCH, BUILDKIT_HOST, DOCKER_CONFIG and
	// the variables of env secrets; nil means an empty environment.
	Getenv func(string) string
	// Lookup expands ${VAR} in the config; nil means no variables are set.
	Lookup config.LookupFunc
}

// Options reads the flags into Options: every error names the flag.
func (f Flags) Options() (Options, error) {
	getenv := f.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	out, err := parseOutput(f.Output, f.Push, f.Insecure)
	if err != nil {
		return Options{}, err
	}
	secrets, err := parseSecrets(f.Secrets, getenv)
	if err != nil {
		return Options{}, err
	}
	cacheFrom, err := buildctl.ParseImportCache(f.CacheFrom)
	if err != nil {
		return Options{}, fmt.Errorf("--cache-from: %w", err)
	}
	cacheTo, err := buildctl.ParseExportCache(f.CacheTo)
	if err != nil {
		return Options{}, fmt.Errorf("--cache-to: %w", err)
	}
	o := Options{
		Dir: f.Dir, ConfigFile: f.ConfigFile, Lookup: f.Lookup, Target: ParseTarget(f.Stage),
		Output: out, Secrets: secrets, NoCache: f.NoCache, CacheImports: cacheFrom, CacheExports: cacheTo,
		Daemon:   Daemon{Builder: f.Builder, StateDir: f.StateDir},
		Progress: f.Progress,
	}
	if o.TrustedCAs, err = HostCAs(getenv); err != nil {
		return Options{}, err
	}
	if f.Platform != "" {
		if o.Platforms, err = ParsePlatforms(f.Platform); err != nil {
			return Options{}, err
		}
	}
	if b := o.Daemon.Builder; (b == "" || b == "auto") && getenv("BUILDKIT_HOST") != "" {
		o.Daemon.Builder = getenv("BUILDKIT_HOST")
	}
	// A SOURCE_DATE_EPOCH that is not a number is ignored, as BuildKit
	// and docker buildx do.
	if v := getenv("SOURCE_DATE_EPOCH"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			o.SourceDateEpoch = &n
		}
	}
	if o.Auth, err = image.LoadAuth(getenv("DOCKER_CONFIG")); err != nil {
		return Options{}, err
	}
	return o, nil
}

func parseOutput(spec, push string, insecure bool) (buildkit.Output, error) {
	if push != "" {
		return RegistryOutput(push, insecure), nil
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
		return DockerOutput(), nil
	case "oci":
		if kv["dest"] == "" {
			return buildkit.Output{}, fmt.Errorf("--output type=oci needs dest=FILE")
		}
		return OCIOutput(kv["dest"]), nil
	case "registry", "image":
		if kv["ref"] == "" && kv["name"] == "" {
			return buildkit.Output{}, fmt.Errorf("--output type=registry needs ref=REGISTRY/NAME:TAG")
		}
		ref := kv["ref"]
		if ref == "" {
			ref = kv["name"]
		}
		return RegistryOutput(ref, insecure || kv["registry.insecure"] == "true"), nil
	}
	return buildkit.Output{}, fmt.Errorf("--output type=%q: use docker, oci or registry", kv["type"])
}

// parseSecrets reads --secret id=ID,env=VAR|src=FILE: files by id, and the
// values of env secrets, which stay in memory.
func parseSecrets(specs []string, getenv func(string) string) (Secrets, error) {
	s := Secrets{Files: map[string]string{}, Values: map[string][]byte{}}
	for _, spec := range specs {
		sp, err := secretflag.Parse(spec)
		if err != nil {
			return Secrets{}, err
		}
		if sp.Src != "" {
			s.Files[sp.ID] = sp.Src
			continue
		}
		if getenv(sp.Env) == "" {
			return Secrets{}, fmt.Errorf("--secret %s: environment variable %s is not set", sp.ID, sp.Env)
		}
		s.Values[sp.ID] = []byte(getenv(sp.Env))
	}
	return s, nil
}
