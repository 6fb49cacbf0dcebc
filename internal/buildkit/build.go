package buildkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/content/proxy"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/log"
	"github.com/containerd/platforms"
	"github.com/docker/cli/cli/config/configfile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/engine"
	"github.com/pei-dev/pei/internal/image"
	"github.com/pei-dev/pei/internal/plan"
)

// Output says where a built image goes.
type Output struct {
	// Type is docker (load into the engine), oci (a tarball at Dest) or
	// registry (push to Ref).
	Type string
	Dest string
	// Load takes the docker exporter's stream into the engine.
	Load func(ctx context.Context) (io.WriteCloser, func() error, error)
	// Inspect says what the engine holds under a name, so that a load can
	// be skipped (same image id) or leave out the layers it has.
	Inspect func(ctx context.Context, name string) (engine.Image, bool)
	// Insecure allows plain HTTP for a registry push.
	Insecure bool
}

// Options configure Build.
type Options struct {
	ProjectDir string
	Plan       plan.Plan
	// Stages to build, by index (3 is the plan's final image); the last
	// one gets Output, earlier ones are loaded into the engine only when
	// Output is docker.
	Stages []int
	// FinalIfAny lets Stages name the final image when the plan may have
	// none ('all'); otherwise asking for it without one is an error.
	FinalIfAny bool
	// Compose names one of the plan's composed images to build instead of
	// Stages.
	Compose string
	Bases   BaseStore
	Output  Output
	// Secrets maps secret ids to files, beyond the plan's own.
	Secrets map[string]string
	// SecretValues maps secret ids to values held in memory (pei build
	// --secret id=ID,env=VAR): they reach BuildKit through the session,
	// never through a file.
	SecretValues map[string][]byte
	NoCache      bool
	// CacheImports and CacheExports are BuildKit cache sources and
	// destinations; the cache is exported from the last stage's solve,
	// which holds every build step.
	CacheImports []bkclient.CacheOptionsEntry
	CacheExports []bkclient.CacheOptionsEntry
	Progress     string // auto, tty, plain, rawjson, quiet
	Stderr       io.Writer
	// SourceDateEpoch clamps timestamps in the image; -1 leaves them.
	SourceDateEpoch int64
	// Exclude is the build context's exclude patterns (.dockerignore).
	Exclude []string
	// Auth holds registry credentials (LoadAuth); nil means none.
	Auth *configfile.ConfigFile
	// Platforms are the target platforms; none means the host's. Several
	// make one image index (OCI or registry outputs only).
	Platforms []ocispecs.Platform
	// CacheNamespace is the tenant a pei serve build is for: its cache
	// mounts are its own (CacheID). "" for local builds.
	CacheNamespace string
	// NoHostNetwork refuses a plan that needs the host's network (a proxy
	// at host.docker.internal), as pei serve's builds must.
	NoHostNetwork bool
	// TrustedCAs are PEM certificates runner installs trust besides
	// their image's own.
	TrustedCAs []byte
}

// ErrHostNetwork is matched by the refusal of a build that needs the
// host's network where it may not have it.
var ErrHostNetwork = errors.New("the build may not use the host's network")

// Result is one built image.
type Result struct {
	Stage    string
	Ref      string
	Manifest string // digest of the image manifest
	// Warnings are what the build found that the user should know: a
	// composed image's files that no format merges and that layers
	// changed differently, or dependencies it leaves unsatisfied. They are
	// also written to Options.Stderr.
	Warnings []string
}

// Build solves the plan's stages on a BuildKit daemon.
func Build(ctx context.Context, c *bkclient.Client, opt Options) ([]Result, error) {
	// containerd's content store logs harmless warnings (no fs-verity);
	// a library must not print.
	_ = log.SetLevel("error")
	plats := opt.Platforms
	if len(plats) == 0 {
		plats = []ocispecs.Platform{platforms.DefaultSpec()}
	}
	if len(plats) > 1 && opt.Output.Type == "docker" {
		return nil, fmt.Errorf("the Docker engine takes one platform per image: build several with --output type=oci,dest=FILE or --push REF, or give one --platform")
	}
	stores := map[string]content.Store{}
	if opt.Compose != "" {
		j, err := composedJob(ctx, opt, plats, stores)
		if err != nil {
			return nil, err
		}
		return solveAll(ctx, c, opt, []job{j}, stores)
	}
	// Each stage's LLB without its run-time steps, and the stages whose
	// run-time steps a stage built on it must still apply; per platform.
	type partial struct {
		state   llb.State
		cfg     ocispecs.Image
		carried []plan.Stage
	}
	partials := map[int][]partial{}
	context := Context(opt.ProjectDir, opt.Exclude)
	secrets := secretIDs(opt.Secrets, opt.SecretValues)
	var jobs []job
	stages := opt.Plan.Stages
	if opt.Plan.Final != nil {
		stages = append(append([]plan.Stage(nil), stages...), *opt.Plan.Final)
	} else if slices.Contains(opt.Stages, finalIndex) {
		if !opt.FinalIfAny {
			return nil, fmt.Errorf("the config has no final image: add stage_2.final (see docs/config.md), or build another --stage")
		}
		opt.Stages = slices.DeleteFunc(slices.Clone(opt.Stages), func(i int) bool { return i == finalIndex })
	}
	// Each stage's full LLB per platform: what a final image keeps paths of.
	fulls := map[int][]llb.State{}
	last := opt.Stages[len(opt.Stages)-1]
	for _, s := range stages {
		if s.Index > last {
			break
		}
		if s.Build.HostNetwork && opt.NoHostNetwork {
			return nil, fmt.Errorf("%s: %w: its proxy is at %s (the machine the build runs on), which needs the host's network; "+
				"set the proxy's address to one the build can reach, or build without the proxy", s.Name, ErrHostNetwork, config.DefaultProxyAddress)
		}
		if opt.SourceDateEpoch >= 0 {
			// Scripts see the epoch too, to pin dates they write (shadow).
			s.Build.Args = append(append([]config.EnvVar(nil), s.Build.Args...),
				config.EnvVar{Name: "SOURCE_DATE_EPOCH", Value: strconv.FormatInt(opt.SourceDateEpoch, 10)})
		}
		var targets []target
		for i, p := range plats {
			var base llb.State
			var baseCfg ocispecs.Image
			var carried []plan.Stage
			if ps, ok := partials[s.BaseStage]; ok && s.BaseStage > 0 {
				base, baseCfg, carried = ps[i].state, ps[i].cfg, ps[i].carried
			} else {
				var err error
				if base, baseCfg, err = baseImage(ctx, opt, s, p, stores); err != nil {
					return nil, err
				}
			}
			carry := llb.Scratch()
			if c := s.Carry; c != nil {
				// The carry steps run on the full image of stage c.From.
				from := plan.Stage{Name: s.Name, Root: s.Root, Steps: c.Steps, Build: s.Build}
				carry, _ = StageLLB(from, fulls[c.From][i], ocispecs.Image{}, context, llb.Scratch(), nil, nil, opt.CacheNamespace)
			}
			st, cfg := StageLLB(s, base, baseCfg, context, carry, secrets, carried, opt.CacheNamespace)
			fulls[s.Index] = append(fulls[s.Index], st)
			buildOnly := s
			buildOnly.Steps, _ = SplitRuntime(s.Steps)
			pst, pcfg := StageLLB(buildOnly, base, baseCfg, context, carry, secrets, nil, opt.CacheNamespace)
			partials[s.Index] = append(partials[s.Index], partial{pst, pcfg, append(append([]plan.Stage(nil), carried...), s)})
			targets = append(targets, target{platform: p, state: st, cfg: cfg})
		}
		if !slices.Contains(opt.Stages, s.Index) {
			continue
		}
		if s.Index != last && opt.Output.Type != "docker" {
			continue // an intermediate stage: built as part of the last one
		}
		jobs = append(jobs, job{stage: s, targets: targets, final: s.Index == last})
	}
	return solveAll(ctx, c, opt, jobs, stores)
}

// finalIndex is the final image's stage number in Options.Stages.
const finalIndex = 3

// job is one stage to solve.
type job struct {
	stage   plan.Stage
	targets []target
	final   bool
	// warnings, when set, are what the solve found for the user to know
	// (a composed image's unmerged files), read after it.
	warnings func() []string
}

// solveAll solves the stages together (BuildKit runs the steps they share
// once), under one progress display. Loads into the engine run one after
// another in stage order, each leaving out the layers the one before put
// there, while later stages still build.
func solveAll(ctx context.Context, c *bkclient.Client, opt Options, jobs []job, stores map[string]content.Store) ([]Result, error) {
	prog, err := newProgress(opt.Progress, opt.Stderr)
	if err != nil {
		return nil, err
	}
	results := make([]Result, len(jobs))
	errs := make([]error, len(jobs))
	eg, ectx := errgroup.WithContext(ctx)
	var loaded <-chan error
	for i, j := range jobs {
		before, done := loaded, make(chan error, 1)
		loaded = done
		eg.Go(func() error {
			res, load, err := solve(ectx, c, opt, j.stage, j.targets, stores, j.final, prog)
			if err == nil {
				results[i] = res
				if err = wait(before); err == nil && load != nil {
					err = load()
				}
			}
			done <- err
			errs[i] = err
			return err
		})
	}
	err = eg.Wait()
	for _, e := range errs {
		// A step that fails fails every stage built on it: report the
		// first stage's failure, the same on every run.
		if e != nil && !errors.Is(e, context.Canceled) {
			err = e
			break
		}
	}
	if perr := prog.close(); err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	for i, j := range jobs {
		if j.warnings == nil {
			continue
		}
		results[i].Warnings = j.warnings()
		for _, w := range results[i].Warnings {
			fmt.Fprintf(stderr(opt), "warning: %s: %s\n", j.stage.Name, w)
		}
	}
	return results, nil
}

// baseImage is the LLB source of a stage's base image and its config.
func baseImage(ctx context.Context, opt Options, s plan.Stage, p ocispecs.Platform, stores map[string]content.Store) (llb.State, ocispecs.Image, error) {
	return imageSource(ctx, opt, "[base] ", s.Base, s.BaseLayout, p, stores)
}

// imageSource is the LLB source of an image and its config: from an OCI
// layout in the project (layout), from pei's base store (or copied there
// from the engine), else from a registry.
func imageSource(ctx context.Context, opt Options, label, ref string, layout *config.LayoutRef, p ocispecs.Platform, stores map[string]content.Store) (llb.State, ocispecs.Image, error) {
	var b Base
	var err error
	if l := layout; l != nil {
		ref = config.LayoutPrefix + l.Path
		b, err = FromLayout(filepath.Join(opt.ProjectDir, filepath.FromSlash(l.Path)), *l, ocispecsToV1(p))
		if err != nil {
			return llb.State{}, ocispecs.Image{}, err
		}
	} else if b, err = opt.Bases.Resolve(ctx, ref, p); err != nil {
		rb, rerr := FromRegistry(ctx, ref, ocispecsToV1(p), image.Keychain(auth(opt)))
		if rerr != nil {
			return llb.State{}, ocispecs.Image{}, fmt.Errorf("image %s is not in pei's base store (pei base makes Debian ones), %v, and no registry has it: %v", ref, err, rerr)
		}
		return llb.Image(rb.Ref, llb.Platform(p), llb.WithCustomName(label+ref)), rb.Config, nil
	}
	dir := b.Dir
	if dir == "" {
		dir = opt.Bases.Dir
	}
	store, err := local.NewStore(dir)
	if err != nil {
		return llb.State{}, ocispecs.Image{}, fmt.Errorf("open OCI store %s: %w", dir, err)
	}
	stores[b.StoreID] = store
	return llb.OCILayout(baseRef(b), llb.OCIStore("", b.StoreID), llb.Platform(p), llb.WithCustomName(label+ref)), b.Config, nil
}

func stderr(opt Options) io.Writer {
	if opt.Stderr == nil {
		return io.Discard
	}
	return opt.Stderr
}

func wait(ch <-chan error) error {
	if ch == nil {
		return nil
	}
	return <-ch
}

func secretIDs(files map[string]string, values map[string][]byte) []string {
	ids := make([]string, 0, len(files)+len(values))
	for id := range files {
		ids = append(ids, id)
	}
	for id := range values {
		if _, ok := files[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids) // the LLB must not depend on map order
	return ids
}

// memorySecrets answers the secrets it holds in memory and asks next
// for the others.
type memorySecrets struct {
	values map[string][]byte
	next   secrets.SecretStore
}

func (m memorySecrets) GetSecret(ctx context.Context, id string) ([]byte, error) {
	if v, ok := m.values[id]; ok {
		return v, nil
	}
	return m.next.GetSecret(ctx, id)
}

// baseRef names a base for the OCI layout source: name@manifest-digest.
func baseRef(b Base) string {
	n := b.Ref
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		n = n[:i]
	}
	if !strings.Contains(n, "/") {
		n = "docker.io/library/" + n
	}
	return n + "@" + b.Manifest
}

// solve builds one stage. For the docker output it also returns the load
// into the engine, for the caller to run while later stages build.
func solve(ctx context.Context, c *bkclient.Client, opt Options, s plan.Stage, targets []target, stores map[string]content.Store, final bool, prog *progress) (Result, func() error, error) {
	var defs []platformDef
	for _, t := range targets {
		mopts := []llb.ConstraintsOpt{llb.Platform(t.platform)}
		if opt.NoCache && t.finish == nil {
			// (A composed image's steps take --no-cache themselves: on
			// its image sources, BuildKit v0.34 merges the layers of an
			// image it re-reads without the cache as if empty.)
			mopts = append(mopts, llb.IgnoreCache)
		}
		cfgJSON, err := json.Marshal(t.cfg)
		if err != nil {
			return Result{}, nil, err
		}
		if t.finish != nil {
			defs = append(defs, platformDef{platform: t.platform, cfgJSON: cfgJSON,
				finish: func(ctx context.Context, gw gateway.Client, imports []gateway.CacheOptionsEntry) (*llb.Definition, error) {
					st, err := t.finish(ctx, func(ctx context.Context, st llb.State) (gateway.Reference, error) {
						def, err := st.Marshal(ctx, mopts...)
						if err != nil {
							return nil, fmt.Errorf("%s: marshal LLB: %w", s.Name, err)
						}
						r, err := gw.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true, CacheImports: imports})
						if err != nil {
							return nil, err
						}
						return r.SingleRef()
					})
					if err != nil {
						return nil, err
					}
					return st.Marshal(ctx, mopts...)
				}})
			continue
		}
		def, err := t.state.Marshal(ctx, mopts...)
		if err != nil {
			return Result{}, nil, fmt.Errorf("%s: marshal LLB: %w", s.Name, err)
		}
		defs = append(defs, platformDef{platform: t.platform, def: def, cfgJSON: cfgJSON})
	}
	contextFS, err := fsutil.NewFS(opt.ProjectDir)
	if err != nil {
		return Result{}, nil, fmt.Errorf("project %s: %w", opt.ProjectDir, err)
	}
	var srcs []secretsprovider.Source
	for _, sec := range s.Build.Secrets {
		switch {
		case sec.Env != "":
			srcs = append(srcs, secretsprovider.Source{ID: sec.ID, Env: sec.Env})
		case filepath.IsAbs(sec.File):
			srcs = append(srcs, secretsprovider.Source{ID: sec.ID, FilePath: sec.File})
		default:
			srcs = append(srcs, secretsprovider.Source{ID: sec.ID, FilePath: filepath.Join(opt.ProjectDir, filepath.FromSlash(sec.File))})
		}
	}
	for id, file := range opt.Secrets {
		srcs = append(srcs, secretsprovider.Source{ID: id, FilePath: file})
	}
	fileSecrets, err := secretsprovider.NewStore(srcs)
	if err != nil {
		return Result{}, nil, fmt.Errorf("%s: secrets: %w", s.Name, err)
	}
	secretStore := memorySecrets{values: opt.SecretValues, next: fileSecrets}

	attrs := map[string]string{"name": s.Output}
	if opt.SourceDateEpoch >= 0 {
		attrs[string(exptypes.OptKeyRewriteTimestamp)] = "true"
		attrs["source-date-epoch"] = strconv.FormatInt(opt.SourceDateEpoch, 10)
	}
	if opt.Output.Type == "docker" {
		// The engine unpacks what it loads: compressing layers only for the
		// engine to decompress them again would cost seconds per build.
		attrs["compression"] = "uncompressed"
	} else {
		// Images that leave the machine are gzipped, the plain-tar bases
		// of pei's store included (BuildKit keeps a layer's compression
		// unless forced).
		attrs["compression"] = "gzip"
		attrs["force-compression"] = "true"
	}
	export := bkclient.ExportEntry{Type: opt.Output.Type, Attrs: attrs}
	switch {
	case opt.Output.Type == "docker":
		// Build into the daemon's own store; the image goes to the engine
		// afterwards, without what the engine already has (a no-op rebuild
		// sends nothing).
		export.Type = "image"
	case opt.Output.Type == "oci" && final:
		dest := opt.Output.Dest
		export.Output = func(map[string]string) (io.WriteCloser, error) {
			return os.Create(dest)
		}
	case opt.Output.Type == "registry" && final:
		export.Type = "image"
		attrs["push"] = "true"
		attrs["name"] = opt.Output.Dest
		if opt.Output.Insecure {
			attrs["registry.insecure"] = "true"
		}
	}

	solveOpt := bkclient.SolveOpt{
		LocalMounts: map[string]fsutil.FS{ContextName: contextFS},
		OCIStores:   stores,
		Session:     []session.Attachable{secretsprovider.NewSecretProvider(secretStore), authSession(auth(opt))},
	}
	if len(opt.CacheImports) > 0 || len(opt.CacheExports) > 0 {
		solveOpt.CacheImports = opt.CacheImports
		if final {
			solveOpt.CacheExports = opt.CacheExports
		}
		// The client fills frontend attributes from the imports.
		solveOpt.FrontendAttrs = map[string]string{}
	}
	if s.Build.HostNetwork {
		solveOpt.AllowedEntitlements = []string{"network.host"}
	}

	solveOpt.Exports = []bkclient.ExportEntry{export}
	resp, err := run(ctx, c, solveOpt, defs, prog, s.Name)
	if err != nil {
		return Result{}, nil, err
	}
	if opt.Output.Type == "docker" {
		res := Result{Stage: s.Name, Ref: s.Output, Manifest: resp.ExporterResponse[exptypes.ExporterImageDigestKey]}
		configDigest := resp.ExporterResponse[exptypes.ExporterImageConfigDigestKey]
		return res, func() error {
			engine := engineLayers(ctx, opt, s, configDigest)
			if engine == nil {
				return nil // the engine has it
			}
			store := proxy.NewContentStore(c.ContentClient())
			m, err := readManifest(ctx, store, res.Manifest)
			if err != nil {
				return fmt.Errorf("load %s into the engine: %w", s.Output, err)
			}
			skip := known(m, engine)
			for {
				w, wait, err := opt.Output.Load(ctx)
				if err != nil {
					return err
				}
				werr := dockerArchive(ctx, w, store, m, s.Output, skip)
				w.Close()
				err = errors.Join(werr, wait())
				if err == nil {
					return nil
				}
				if len(skip) == 0 {
					return fmt.Errorf("load %s into the engine: %w", s.Output, err)
				}
				// A layer went away between the look and the load: send all.
				skip = nil
			}
		}, nil
	}
	ref := s.Output
	if opt.Output.Type == "registry" {
		ref = attrs["name"]
	}
	return Result{Stage: s.Name, Ref: ref, Manifest: resp.ExporterResponse[exptypes.ExporterImageDigestKey]}, nil, nil
}

// cacheImports reads the cache sources the client hands a gateway build
// (as the frontend attribute "cache-imports", JSON): in a gateway build it
// is the frontend that must pass them to the solver, or nothing is imported.
func cacheImports(opts map[string]string) ([]gateway.CacheOptionsEntry, error) {
	raw := opts["cache-imports"]
	if raw == "" {
		return nil, nil
	}
	var entries []gateway.CacheOptionsEntry
	if err := json.Unmarshal([]byte(raw), &entries); err != nil {
		return nil, fmt.Errorf("cache imports %q: %w", raw, err)
	}
	return entries, nil
}

// target is one platform's LLB of a stage, and its image config.
type target struct {
	platform ocispecs.Platform
	state    llb.State
	cfg      ocispecs.Image
	// finish, when set, makes the state to solve inside the build from
	// what solving parts of it shows (a composed image's shared files).
	finish func(ctx context.Context, solve solver) (llb.State, error)
}

// platformDef is a target marshalled for the solver.
type platformDef struct {
	platform ocispecs.Platform
	def      *llb.Definition
	cfgJSON  []byte
	// finish makes def inside the build, when the target has a finish.
	finish func(ctx context.Context, gw gateway.Client, imports []gateway.CacheOptionsEntry) (*llb.Definition, error)
}

// solvePlatforms solves one definition per platform, together. One gives a
// plain image; several give a result the exporters turn into an index.
func solvePlatforms(ctx context.Context, gw gateway.Client, defs []platformDef, imports []gateway.CacheOptionsEntry) (*gateway.Result, error) {
	results := make([]*gateway.Result, len(defs))
	eg, ectx := errgroup.WithContext(ctx)
	for i, d := range defs {
		eg.Go(func() error {
			def := d.def
			if d.finish != nil {
				var err error
				if def, err = d.finish(ectx, gw, imports); err != nil {
					return err
				}
			}
			r, err := gw.Solve(ectx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true, CacheImports: imports})
			results[i] = r
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	if len(defs) == 1 {
		results[0].AddMeta(exptypes.ExporterImageConfigKey, defs[0].cfgJSON)
		return results[0], nil
	}
	out := gateway.NewResult()
	var ps exptypes.Platforms
	for i, d := range defs {
		ref, err := results[i].SingleRef()
		if err != nil {
			return nil, err
		}
		id := platforms.Format(d.platform)
		out.AddRef(id, ref)
		out.AddMeta(exptypes.ExporterImageConfigKey+"/"+id, d.cfgJSON)
		ps.Platforms = append(ps.Platforms, exptypes.Platform{ID: id, Platform: d.platform})
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return nil, err
	}
	out.AddMeta(exptypes.ExporterPlatformsKey, b)
	return out, nil
}

// progress shows the status of all of a build's solves in one display.
type progress struct {
	ch   chan *bkclient.SolveStatus
	done chan error
}

func newProgress(mode string, w io.Writer) (*progress, error) {
	m := progressui.DisplayMode(mode)
	if m == "" {
		m = progressui.AutoMode
	}
	if w == nil {
		w = io.Discard
	}
	d, err := progressui.NewDisplay(w, m)
	if err != nil {
		return nil, fmt.Errorf("progress: %w", err)
	}
	p := &progress{ch: make(chan *bkclient.SolveStatus), done: make(chan error, 1)}
	go func() {
		// Not cancelled with the build, so a failure is still shown.
		_, err := d.UpdateFrom(context.Background(), p.ch)
		p.done <- err
	}()
	return p, nil
}

// close ends the display once every solve has returned.
func (p *progress) close() error {
	close(p.ch)
	return <-p.done
}

// run solves defs with the exports in so; a failed step is named with its
// config line, exit status and last lines of output.
func run(ctx context.Context, c *bkclient.Client, so bkclient.SolveOpt, defs []platformDef, prog *progress, stage string) (*bkclient.SolveResponse, error) {
	ch := make(chan *bkclient.SolveStatus)
	steps := newStepLog()
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for st := range ch {
			steps.add(st)
			prog.ch <- st
		}
	}()
	resp, err := c.Build(ctx, so, "pei", func(ctx context.Context, gw gateway.Client) (*gateway.Result, error) {
		imports, err := cacheImports(gw.BuildOpts().Opts)
		if err != nil {
			return nil, err
		}
		return solvePlatforms(ctx, gw, defs, imports)
	}, ch)
	<-forwarded // the client closes ch when the build returns
	if err != nil {
		if failed := steps.failure(); failed != "" {
			// Name the step, its config line and exit status, and show the
			// end of its output, rather than BuildKit's internal error.
			return nil, fmt.Errorf("build %s: %s", stage, failed)
		}
		return nil, fmt.Errorf("build %s: %w", stage, err)
	}
	return resp, nil
}

// engineLayers returns the diff ids of the images in the engine that a
// load of stage s can share layers with: its own previous build, its base,
// and the stage it is built on. It returns nil when the engine already
// holds the image just built (configDigest is the new image's id).
func engineLayers(ctx context.Context, opt Options, s plan.Stage, configDigest string) [][]string {
	if opt.Output.Inspect == nil {
		return [][]string{}
	}
	names := []string{s.Output, s.Base}
	for _, b := range opt.Plan.Stages {
		if b.Index == s.BaseStage && s.BaseStage > 0 {
			names = append(names, b.Output)
		}
	}
	out := [][]string{}
	for i, n := range names {
		img, ok := opt.Output.Inspect(ctx, n)
		if !ok {
			continue
		}
		if i == 0 && configDigest != "" && img.ID == configDigest {
			return nil
		}
		out = append(out, img.Layers)
	}
	return out
}

// stepLog keeps the last lines each build step printed, to explain a failure.
type stepLog struct {
	names  map[digest.Digest]string
	errs   map[digest.Digest]string
	order  []digest.Digest
	output map[digest.Digest][]string
}

func newStepLog() *stepLog {
	return &stepLog{names: map[digest.Digest]string{}, errs: map[digest.Digest]string{}, output: map[digest.Digest][]string{}}
}

const tailLines = 10

func (l *stepLog) add(st *bkclient.SolveStatus) {
	for _, v := range st.Vertexes {
		l.names[v.Digest] = v.Name
		if v.Error != "" && l.errs[v.Digest] == "" {
			l.errs[v.Digest] = v.Error
			l.order = append(l.order, v.Digest)
		}
	}
	for _, lg := range st.Logs {
		lines := l.output[lg.Vertex]
		lines = append(lines, strings.Split(strings.TrimRight(string(lg.Data), "\n"), "\n")...)
		if len(lines) > tailLines {
			lines = lines[len(lines)-tailLines:]
		}
		l.output[lg.Vertex] = lines
	}
}

// failure describes the first step that failed, or "".
func (l *stepLog) failure() string {
	for _, d := range l.order {
		if strings.Contains(l.errs[d], "context canceled") {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "step %q failed", l.names[d])
		if i := strings.LastIndex(l.errs[d], "exit code: "); i >= 0 {
			fmt.Fprintf(&b, " with %s", l.errs[d][i:])
		} else {
			fmt.Fprintf(&b, ": %s", l.errs[d])
		}
		if out := l.output[d]; len(out) > 0 {
			b.WriteString("; its last lines:")
			for _, line := range out {
				b.WriteString("\n    " + line)
			}
		}
		return b.String()
	}
	return ""
}

func auth(opt Options) *configfile.ConfigFile {
	if opt.Auth == nil {
		return configfile.New("")
	}
	return opt.Auth
}

func ocispecsToV1(p ocispecs.Platform) v1.Platform {
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
}
