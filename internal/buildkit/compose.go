package buildkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	fstypes "github.com/tonistiigi/fsutil/types"
	"golang.org/x/sync/errgroup"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/sysmerge"
)

// composedJob is the solve of the composed image opt.Compose: its layers
// merged bottom first (BuildKit's MergeOp), a diff being what its upper
// image adds to its lower one (DiffOp). The shared files that the layers
// change (dpkg's database, passwd, ...) are then merged by their format
// (internal/sysmerge) inside the build, and the caches the layers changed
// are rebuilt, so that package managers believe the composed image.
func composedJob(ctx context.Context, opt Options, plats []ocispecs.Platform, stores map[string]content.Store) (job, error) {
	var ci *config.Composed
	var names []string
	for i := range opt.Plan.Compose {
		names = append(names, opt.Plan.Compose[i].Name)
		if opt.Plan.Compose[i].Name == opt.Compose {
			ci = &opt.Plan.Compose[i]
		}
	}
	if ci == nil {
		return job{}, fmt.Errorf("the config composes no image %q (it composes: %s)", opt.Compose, strings.Join(names, ", "))
	}
	source := func(ref config.ImageRef, p ocispecs.Platform) (llb.State, ocispecs.Image, error) {
		return imageSource(ctx, opt, "[image] ", ref.Raw, ref.Layout, p, stores)
	}
	s := plan.Stage{Name: ci.Name, Output: ci.Output}
	rep := &composeReport{name: ci.Name, strict: ci.Strict}
	var targets []target
	for _, p := range plats {
		in := composeInput{name: ci.Name, noCache: opt.NoCache}
		var parts []llb.State
		var cfg *ocispecs.Image
		for i, l := range ci.Layers {
			cl := composeLayer{exclude: l.Exclude}
			var st llb.State
			if r := l.Runner; r != nil {
				run, _, err := source(r.Image, p)
				if err != nil {
					return job{}, fmt.Errorf("compose.%s.layers[%d].runner.image: %w", ci.Name, i, err)
				}
				deps := runnerInstall(run, *r, Context(opt.ProjectDir, opt.Exclude), opt, fmt.Sprintf("[%s] layer %d", ci.Name, i))
				st = llb.Diff(run, deps, llb.WithCustomName(fmt.Sprintf("[%s] diff %s -> its dependencies", ci.Name, r.Image.Raw)))
				cl.name = fmt.Sprintf("[%d] runner %s", i, r.Image.Raw)
				cl.diff, cl.lower, cl.upper = true, run, deps
			} else if l.Image.Raw != "" {
				img, icfg, err := source(l.Image, p)
				if err != nil {
					return job{}, fmt.Errorf("compose.%s.layers[%d]: %w", ci.Name, i, err)
				}
				st = img
				cl.name = fmt.Sprintf("[%d] %s", i, l.Image.Raw)
				if cfg == nil {
					cfg = &icfg // the first whole image gives the config
				}
			} else {
				lower, lcfg, err := source(l.Diff.Lower, p)
				if err != nil {
					return job{}, fmt.Errorf("compose.%s.layers[%d].diff.lower: %w", ci.Name, i, err)
				}
				upper, ucfg, err := source(l.Diff.Upper, p)
				if err != nil {
					return job{}, fmt.Errorf("compose.%s.layers[%d].diff.upper: %w", ci.Name, i, err)
				}
				if !builtOn(ucfg, lcfg) {
					what := "image"
					if l.Catalog != "" {
						what = "catalog item " + l.Catalog + "'s image"
					}
					msg := fmt.Sprintf("layer [%d]: %s was not built on %s (its layers do not begin with that image's), so the diff holds all that differs between the two, not only what %s added: rebuild the %s on the current %s",
						i, l.Diff.Upper.Raw, l.Diff.Lower.Raw, l.Diff.Upper.Raw, what, l.Diff.Lower.Raw)
					if ci.Strict {
						return job{}, fmt.Errorf("compose.%s: %s (strict is set: warnings are errors)", ci.Name, msg)
					}
					rep.add(msg)
				}
				st = llb.Diff(lower, upper, llb.WithCustomName(fmt.Sprintf("[%s] diff %s -> %s", ci.Name, l.Diff.Lower.Raw, l.Diff.Upper.Raw)))
				cl.name = fmt.Sprintf("[%d] %s", i, l.Diff.Upper.Raw)
				cl.diff, cl.lower, cl.upper = true, lower, upper
			}
			if len(l.Exclude) > 0 {
				// A copy without the excluded paths (deletions the layer
				// holds are not carried over).
				var patterns []string
				for _, e := range l.Exclude {
					patterns = append(patterns, strings.TrimPrefix(e, "/"))
				}
				st = llb.Scratch().File(llb.Copy(st, "/", "/", &llb.CopyInfo{CopyDirContentsOnly: true, ExcludePatterns: patterns}),
					llb.WithCustomName(fmt.Sprintf("[%s] layer %d without %s", ci.Name, i, strings.Join(l.Exclude, ", "))))
			}
			cl.part = st
			parts = append(parts, st)
			if i == 0 && !cl.diff {
				in.base = &cl.part
			} else {
				in.layers = append(in.layers, cl)
			}
		}
		in.merged = llb.Merge(parts, llb.WithCustomName(fmt.Sprintf("[%s] merge %d layers", ci.Name, len(parts))))
		c := *cfg
		c.Platform = p
		t := target{platform: p, state: in.merged, cfg: c}
		if len(in.layers) > 0 {
			t.finish = func(ctx context.Context, solve solver) (llb.State, error) {
				return in.finish(ctx, solve, rep)
			}
		}
		targets = append(targets, t)
	}
	return job{stage: s, targets: targets, final: true, warnings: rep.warnings}, nil
}

// runnerInstall is the runner image with the project's dependencies
// installed: pip installs the requirements file into the runner's Python,
// npm installs package.json (with its lockfile) at the target. The package
// managers' caches are cache mounts and /tmp a tmpfs, so the diff from the
// runner holds the dependencies only. Config values reach the commands as
// arguments and working directories, never as shell text.
func runnerInstall(run llb.State, r config.Runner, context llb.State, opt Options, label string) llb.State {
	env := []llb.RunOption{
		llb.AddEnv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
		llb.AddEnv("HOME", "/root"),
		llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs()),
	}
	if opt.NoCache {
		env = append(env, llb.IgnoreCache)
	}
	if len(opt.TrustedCAs) > 0 {
		// The machine's trust store, for a site's TLS proxy between the
		// build and the registries: pip takes it instead of its own,
		// node besides its own. Mounted, so no layer holds it.
		cas := llb.Scratch().File(llb.Mkfile("/ca.pem", 0o444, opt.TrustedCAs), llb.WithCustomName(label+": trusted certificates"))
		env = append(env, llb.AddMount("/pei-ca", cas, llb.Readonly),
			llb.AddEnv("PIP_CERT", "/pei-ca/ca.pem"), llb.AddEnv("NODE_EXTRA_CA_CERTS", "/pei-ca/ca.pem"))
	}
	if opt.SourceDateEpoch >= 0 {
		// pip then writes hash-checked .pyc files, the same on every build.
		env = append(env, llb.AddEnv("SOURCE_DATE_EPOCH", strconv.FormatInt(opt.SourceDateEpoch, 10)))
	}
	dir := path.Join("/", r.Dir)
	if r.Pip != "" {
		args := []string{"python3", "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location",
			"--root-user-action=ignore", "--break-system-packages", "--requirement", r.Pip}
		return run.Run(append(env,
			llb.Args(args),
			llb.AddMount("/pei-deps", context, llb.SourcePath(dir), llb.Readonly),
			llb.Dir("/pei-deps"),
			llb.AddMount("/root/.cache/pip", llb.Scratch(), llb.AsPersistentCacheDir(CacheID(opt.CacheNamespace, "/root/.cache/pip"), llb.CacheMountLocked)),
			llb.WithCustomName(fmt.Sprintf("%s: pip install -r %s", label, path.Join(r.Dir, r.Pip))))...).Root()
	}
	files := run
	for _, name := range []string{"package.json", "package-lock.jso[n]", "npm-shrinkwrap.jso[n]"} {
		// The lockfiles are patterns, so a missing one copies nothing.
		files = files.File(llb.Copy(context, path.Join(dir, name), r.Target+"/", &llb.CopyInfo{
			CreateDestPath: true, AllowWildcard: true, AllowEmptyWildcard: true}),
			llb.WithCustomName(fmt.Sprintf("%s: copy %s", label, path.Join(r.Dir, strings.ReplaceAll(name, "[n]", "n")))))
	}
	const script = `if [ -e package-lock.json ] || [ -e npm-shrinkwrap.json ]; then exec npm ci --omit=dev --no-audit --no-fund; fi
exec npm install --omit=dev --no-audit --no-fund`
	return files.Run(append(env,
		llb.Args([]string{"/bin/sh", "-c", script}),
		llb.Dir(r.Target),
		llb.AddMount("/root/.npm", llb.Scratch(), llb.AsPersistentCacheDir(CacheID(opt.CacheNamespace, "/root/.npm"), llb.CacheMountLocked)),
		llb.WithCustomName(fmt.Sprintf("%s: npm install %s in %s", label, path.Join(r.Dir, r.Npm), r.Target)))...).Root()
}

// builtOn reports whether upper was built on lower: its layers begin with
// lower's. A base that moved on since (a new point release) fails this,
// and a diff between the two would carry the base's changes too. Configs
// without layer ids are not judged.
func builtOn(upper, lower ocispecs.Image) bool {
	u, l := upper.RootFS.DiffIDs, lower.RootFS.DiffIDs
	if len(u) == 0 || len(l) == 0 {
		return true
	}
	return len(l) <= len(u) && slices.Equal(u[:len(l)], l)
}

// composeInput is one platform's composed image before its shared files
// are merged.
type composeInput struct {
	name string
	// noCache re-runs the steps (the runners' installs, the cache
	// rebuild); the images are content-addressed and read as they are.
	noCache bool
	// base is the runtime base (the first layer, when it is a whole
	// image); nil when the image starts with a diff.
	base   *llb.State
	layers []composeLayer
	merged llb.State
}

// composeLayer is one layer above the runtime base.
type composeLayer struct {
	// name names the layer in messages: its index in layers and its image
	// (a diff's upper).
	name string
	// diff: lower and upper are the diff's images; else part is an image
	// taken whole.
	diff         bool
	lower, upper llb.State
	// part is what the layer puts in the image (the diff, or the image),
	// without its excluded paths.
	part    llb.State
	exclude []string
}

// solver solves a state inside the build and gives its files.
type solver func(ctx context.Context, st llb.State) (gateway.Reference, error)

// composeReport gathers the findings of every platform's merge.
type composeReport struct {
	name   string
	strict bool
	mu     sync.Mutex
	msgs   []string
}

func (r *composeReport) add(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.msgs, msg) {
		r.msgs = append(r.msgs, msg)
	}
}

func (r *composeReport) warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// layerFS is a layer's solved file systems.
type layerFS struct {
	layer        composeLayer
	part         *refFS
	lower, upper *refFS // diffs only
}

// finish merges the shared files the layers change, and rebuilds the
// caches, on top of the plain merge. Conflicts fail the build; files pei
// cannot merge and unsatisfied dependencies are warnings, or errors when
// strict.
func (in composeInput) finish(ctx context.Context, solve solver, rep *composeReport) (llb.State, error) {
	base := &refFS{}
	if in.base != nil {
		r, err := solve(ctx, *in.base)
		if err != nil {
			return llb.State{}, err
		}
		base = newRefFS(r)
	}
	fss := make([]*layerFS, len(in.layers))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(4)
	for i, l := range in.layers {
		fss[i] = &layerFS{layer: l}
		for _, x := range []struct {
			st  llb.State
			dst **refFS
			use bool
		}{{l.part, &fss[i].part, true}, {l.lower, &fss[i].lower, l.diff}, {l.upper, &fss[i].upper, l.diff}} {
			if !x.use {
				continue
			}
			eg.Go(func() error {
				r, err := solve(ectx, x.st)
				*x.dst = newRefFS(r)
				return err
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return llb.State{}, err
	}

	// What each layer touched: every file its part holds, and the known
	// shared files it deleted (a part shows no deletions).
	touched := make([]map[string]bool, len(fss))
	eg, ectx = errgroup.WithContext(ctx)
	eg.SetLimit(4)
	for i, f := range fss {
		eg.Go(func() error {
			t := map[string]bool{}
			if err := f.part.walk(ectx, "/", func(p string) { t[p] = true }); err != nil {
				return fmt.Errorf("layer %s: %w", f.layer.name, err)
			}
			if f.layer.diff {
				if err := deletedShared(ectx, f, t); err != nil {
					return fmt.Errorf("layer %s: %w", f.layer.name, err)
				}
			}
			touched[i] = t
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return llb.State{}, err
	}
	count := map[string]int{}
	for _, t := range touched {
		for p := range t {
			count[p]++
		}
	}
	var candidates []string
	for p, n := range count {
		if sysmerge.Kind(p) != sysmerge.Unknown || n > 1 {
			candidates = append(candidates, p)
		}
	}
	sort.Strings(candidates) // the LLB must not depend on map order

	var actions []fileAction
	var conflicts, groups []string
	steps := map[string]bool{}
	for _, p := range candidates {
		a, findings, err := mergeFile(ctx, p, base, fss, touched)
		var ce *sysmerge.ConflictError
		switch {
		case errors.As(err, &ce):
			for _, c := range ce.Conflicts {
				conflicts = append(conflicts, withPath(c))
			}
			continue
		case err != nil:
			return llb.State{}, err
		}
		if a != nil && !slices.Contains(finalSteps, sysmerge.RebuildStep(p)) {
			// (A cache a final step remakes needs no merged version.)
			actions = append(actions, *a)
		}
		for _, f := range findings {
			switch f.Kind {
			case sysmerge.Rebuild:
				switch {
				case slices.Contains(finalSteps, f.Step):
					steps[f.Step] = true
				case strings.HasPrefix(f.Step, altStep) && sysmerge.Kind(p) == sysmerge.Alternatives:
					if !slices.Contains(groups, f.Entry) {
						groups = append(groups, f.Entry)
					}
				default:
					rep.add(fmt.Sprintf("%s (not run by pei: run it in the image if you need it)", f.Msg))
				}
			case sysmerge.Unmerged, sysmerge.Dependency:
				if rep.strict {
					conflicts = append(conflicts, withPath(f))
				} else {
					rep.add(withPath(f))
				}
			}
		}
	}
	if len(conflicts) > 0 {
		why := "layers change shared files in ways that cannot be merged"
		if rep.strict {
			why += " (compose." + rep.name + ".strict is set: warnings are errors)"
		}
		return llb.State{}, fmt.Errorf("compose.%s: %s:\n  - %s", rep.name, why, strings.Join(conflicts, "\n  - "))
	}

	st := in.merged
	if len(actions) > 0 {
		var fa *llb.FileAction
		for _, a := range actions {
			fa = a.chain(fa)
		}
		st = st.File(fa, llb.WithCustomName(fmt.Sprintf("[%s] merge shared files: %s", in.name, actionNames(actions))))
	}
	if slices.ContainsFunc(in.layers, func(l composeLayer) bool { return l.diff }) {
		steps["ldconfig"] = true // a diff's libraries are in no cache until it runs
	}
	if script := finalScript(steps, len(groups) > 0); script != "" {
		if len(groups) > 0 {
			steps["update-alternatives"] = true
		}
		// The link groups are arguments, never script text.
		opts := []llb.RunOption{llb.Args(append([]string{"/bin/sh", "-c", script, "sh"}, groups...))}
		if in.noCache {
			opts = append(opts, llb.IgnoreCache)
		}
		st = st.Run(append(opts,
			llb.AddEnv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
			llb.Network(llb.NetModeNone),
			llb.WithCustomName(fmt.Sprintf("[%s] rebuild caches: %s", in.name, strings.Join(sortedSteps(steps), ", "))))...).Root()
	}
	return st, nil
}

// withPath is a finding's message, naming its file.
func withPath(f sysmerge.Finding) string {
	if f.Path == "" || strings.Contains(f.Msg, f.Path) {
		return f.Msg
	}
	return f.Path + ": " + f.Msg
}

// finalSteps are the cache rebuilds pei runs after the merge, in this
// order; other Rebuild findings are reported.
var finalSteps = []string{"ldconfig", "update-ca-certificates", "fc-cache", sysmerge.AptCachesStep}

// altStep is the step that sets a merged link group's link to its best
// choice again.
const altStep = "update-alternatives --auto "

// finalScript runs the steps asked for, each only where its program is in
// the image, and update-alternatives --auto for each link group given as an
// argument when alternatives is set. ldconfig's aux-cache records inode
// numbers and change times, so it is removed to keep the image
// reproducible (ldconfig works without).
func finalScript(steps map[string]bool, alternatives bool) string {
	var lines []string
	if alternatives {
		lines = append(lines, `for g in "$@"; do update-alternatives --auto "$g"; done`)
	}
	for _, s := range finalSteps {
		if !steps[s] {
			continue
		}
		switch s {
		case "ldconfig":
			lines = append(lines, "if command -v ldconfig >/dev/null; then ldconfig; fi", "rm -f /var/cache/ldconfig/aux-cache")
		case "update-ca-certificates":
			lines = append(lines, "if command -v update-ca-certificates >/dev/null; then update-ca-certificates >/dev/null; fi")
		case "fc-cache":
			lines = append(lines, "if command -v fc-cache >/dev/null; then fc-cache -s -f; fi")
		default:
			lines = append(lines, s)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "set -e\n" + strings.Join(lines, "\n")
}

func sortedSteps(steps map[string]bool) []string {
	var out []string
	for _, s := range append(finalSteps, "update-alternatives") {
		if steps[s] {
			if s == sysmerge.AptCachesStep {
				s = "remove apt's binary caches"
			}
			out = append(out, s)
		}
	}
	return out
}

// deletedShared adds to t the known shared files the diff's upper deleted
// from its lower.
func deletedShared(ctx context.Context, f *layerFS, t map[string]bool) error {
	for _, dir := range sharedDirs {
		lower, err := f.lower.list(ctx, dir)
		if err != nil {
			return err
		}
		upper, err := f.upper.list(ctx, dir)
		if err != nil {
			return err
		}
		for name, st := range lower {
			p := path.Join(dir, name)
			if upper[name] == nil && os.FileMode(st.Mode).IsRegular() &&
				sysmerge.Kind(p) != sysmerge.Unknown && !excluded(p, f.layer.exclude) {
				t[p] = true
			}
		}
	}
	return nil
}

// sharedDirs hold the shared files a diff may delete.
var sharedDirs = []string{"/etc", "/etc/ld.so.conf.d", "/var/lib/dpkg", "/var/lib/dpkg/info",
	"/var/lib/dpkg/alternatives", "/var/lib/dpkg/triggers", "/var/lib/apt", "/var/cache/debconf"}

func excluded(p string, exclude []string) bool {
	for _, e := range exclude {
		if p == e || strings.HasPrefix(p, e+"/") {
			return true
		}
	}
	return false
}

// fileAction is one merged file written over the plain merge.
type fileAction struct {
	path   string
	remove bool
	data   []byte
	stat   *fstypes.Stat
}

// actionNames lists the files for the progress display, the first few by
// path.
func actionNames(as []fileAction) string {
	const shown = 6
	var ps []string
	for i, a := range as {
		if i == shown {
			ps = append(ps, fmt.Sprintf("and %d more", len(as)-shown))
			break
		}
		ps = append(ps, a.path)
	}
	return strings.Join(ps, ", ")
}

func (a fileAction) chain(fa *llb.FileAction) *llb.FileAction {
	if a.remove {
		opt := llb.WithAllowNotFound(true)
		if fa == nil {
			return llb.Rm(a.path, opt)
		}
		return fa.Rm(a.path, opt)
	}
	mode := os.FileMode(a.stat.Mode).Perm()
	opts := []llb.MkfileOption{llb.WithUIDGID(int(a.stat.Uid), int(a.stat.Gid)), llb.WithCreatedTime(time.Unix(0, a.stat.ModTime).UTC())}
	if fa == nil {
		return llb.Mkfile(a.path, mode, a.data, opts...)
	}
	return fa.Mkfile(a.path, mode, a.data, opts...)
}

// mergeFile merges one file the layers touched. It returns the action that
// makes the plain merge hold the merged file, nil when the plain merge
// already does.
func mergeFile(ctx context.Context, p string, base *refFS, fss []*layerFS, touched []map[string]bool) (*fileAction, []sysmerge.Finding, error) {
	baseData, baseStat, err := base.file(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	var changes []sysmerge.Change
	// top is what the plain merge holds: the last layer that touched p.
	top := struct {
		data    []byte
		stat    *fstypes.Stat
		missing bool
	}{baseData, baseStat, baseStat == nil}
	for i, f := range fss {
		if !touched[i][p] {
			continue
		}
		c := sysmerge.Change{Layer: f.layer.name}
		var upStat *fstypes.Stat
		if f.layer.diff {
			var loStat *fstypes.Stat
			if c.Lower, loStat, err = f.lower.file(ctx, p); err != nil {
				return nil, nil, err
			}
			if c.Upper, upStat, err = f.upper.file(ctx, p); err != nil {
				return nil, nil, err
			}
			c.LowerMissing = loStat == nil
		} else {
			// An image taken whole above the runtime base changes what
			// it holds differently from the runtime base.
			if c.Upper, upStat, err = f.part.file(ctx, p); err != nil {
				return nil, nil, err
			}
			c.Lower, c.LowerMissing = baseData, baseStat == nil
		}
		c.UpperMissing = upStat == nil
		if upStat == nil && !f.layer.diff {
			continue // not a regular file in that image
		}
		if upStat == nil {
			if st, err := f.part.stat(ctx, p); err != nil {
				return nil, nil, err
			} else if st != nil && !whiteout(st) {
				continue // the diff holds a directory or link there: not merged
			}
		}
		changes = append(changes, c)
		top.data, top.stat, top.missing = c.Upper, upStat, upStat == nil
	}
	res, err := sysmerge.Merge(p, baseData, changes)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case res.Missing && top.missing:
		return nil, res.Findings, nil
	case res.Missing:
		return &fileAction{path: p, remove: true}, res.Findings, nil
	case !top.missing && string(res.Data) == string(top.data):
		return nil, res.Findings, nil
	}
	st := top.stat
	if st == nil {
		// The last layer deleted it but the merge keeps it: the owner and
		// mode are the last ones any layer had.
		st = baseStat
		for i := len(fss) - 1; st == nil && i >= 0; i-- {
			if touched[i][p] && fss[i].layer.diff {
				_, st, _ = fss[i].lower.file(ctx, p)
			}
		}
		if st == nil {
			st = &fstypes.Stat{Mode: 0o644}
		}
	}
	return &fileAction{path: p, data: res.Data, stat: st}, res.Findings, nil
}

// whiteout reports whether st is an overlay whiteout (a 0/0 character
// device): how a mounted diff may show a deletion.
func whiteout(st *fstypes.Stat) bool {
	m := os.FileMode(st.Mode)
	return m&os.ModeCharDevice != 0 && st.Devmajor == 0 && st.Devminor == 0
}

// refFS reads a solved state's files through the gateway, keeping the
// directory listings it has read. A nil reference is an empty file system.
type refFS struct {
	ref  gateway.Reference
	mu   sync.Mutex
	dirs map[string]map[string]*fstypes.Stat
}

func newRefFS(r gateway.Reference) *refFS { return &refFS{ref: r} }

// list returns the entries of dir by name; none when dir is not a
// directory. Whether it is one is read from its parent's listing, because
// the gateway tells a missing path from other errors only by its message.
func (f *refFS) list(ctx context.Context, dir string) (map[string]*fstypes.Stat, error) {
	f.mu.Lock()
	m, ok := f.dirs[dir]
	f.mu.Unlock()
	if ok {
		return m, nil
	}
	m = map[string]*fstypes.Stat{}
	if f.ref != nil {
		isDir := dir == "/"
		if !isDir {
			parent, err := f.list(ctx, path.Dir(dir))
			if err != nil {
				return nil, err
			}
			st := parent[path.Base(dir)]
			isDir = st != nil && os.FileMode(st.Mode).IsDir()
		}
		if isDir {
			ents, err := f.ref.ReadDir(ctx, gateway.ReadDirRequest{Path: dir})
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", dir, err)
			}
			for _, e := range ents {
				m[path.Base(e.Path)] = e
			}
		}
	}
	f.mu.Lock()
	if f.dirs == nil {
		f.dirs = map[string]map[string]*fstypes.Stat{}
	}
	f.dirs[dir] = m
	f.mu.Unlock()
	return m, nil
}

// stat returns p's entry, nil when there is none.
func (f *refFS) stat(ctx context.Context, p string) (*fstypes.Stat, error) {
	m, err := f.list(ctx, path.Dir(p))
	if err != nil {
		return nil, err
	}
	return m[path.Base(p)], nil
}

// readChunk stays under gRPC's message limit.
const readChunk = 4 << 20

// file returns a regular file's bytes (non-nil, even when empty) and its
// entry; nil and nil when p is not a regular file.
func (f *refFS) file(ctx context.Context, p string) ([]byte, *fstypes.Stat, error) {
	st, err := f.stat(ctx, p)
	if err != nil || st == nil || !os.FileMode(st.Mode).IsRegular() {
		return nil, nil, err
	}
	data := make([]byte, 0, st.Size)
	for int64(len(data)) < st.Size {
		chunk, err := f.ref.ReadFile(ctx, gateway.ReadRequest{Filename: p, Range: &gateway.FileRange{Offset: len(data), Length: readChunk}})
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", p, err)
		}
		if len(chunk) == 0 {
			break
		}
		data = append(data, chunk...)
	}
	return data, st, nil
}

// walk calls fn with every path under dir that is not a directory, in
// lexical order.
func (f *refFS) walk(ctx context.Context, dir string, fn func(p string)) error {
	m, err := f.list(ctx, dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := path.Join(dir, n)
		if os.FileMode(m[n].Mode).IsDir() {
			if err := f.walk(ctx, p, fn); err != nil {
				return err
			}
			continue
		}
		fn(p)
	}
	return nil
}
