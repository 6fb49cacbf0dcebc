package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/platforms"
	"github.com/docker/cli/cli/config/configfile"
	clitypes "github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	bkclient "github.com/moby/buildkit/client"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/image"
	"github.com/pei-dev/pei/internal/recipe"
)

// Options configure a worker.
type Options struct {
	Server    string
	Token     string
	Name      string   // this worker's name; "" is the host name
	Builder   string   // buildkitd address, or "auto" (pei build's rules)
	Platforms []string // what it builds; none is the host's
	// Secrets maps secret ids to files; a build naming a secret goes only
	// to workers that hold it.
	Secrets  map[string]string
	StateDir string // pei's state (bases, a started buildkitd)
	// Once stops after one build (tests, batch jobs).
	Once bool
	// NoCache turns off the build cache shared through the registry
	// (REPO/buildcache:PLATFORM, imported before and exported after each
	// build), which lets any worker reuse steps another one built.
	NoCache bool
	// AllowNets are destinations on the worker host or its networks that
	// build steps may reach (a proxy, a site's package mirror); builds
	// otherwise reach the internet only.
	AllowNets []netip.Prefix
	// HostNetwork lists the namespaces whose builds may use the worker
	// host's network when they ask for it (a proxy at host.docker.internal,
	// RUN --network=host). Dangerous: such a step reaches every service of
	// the host and its networks.
	HostNetwork []string
	Log         io.Writer
}

// Run leases and runs builds until ctx ends (or after one with Once).
func Run(ctx context.Context, opt Options) error {
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	if opt.Name == "" {
		opt.Name, _ = os.Hostname()
	}
	if opt.Builder == "" || opt.Builder == "auto" {
		// Every daemon it starts isolates its builds: say now what that
		// lacks rather than fail each build.
		if err := buildkitd.CheckTools(); err != nil {
			return err
		}
	}
	if len(opt.Platforms) == 0 {
		opt.Platforms = []string{platforms.DefaultString()}
	}
	for i, p := range opt.Platforms {
		pl, err := platforms.Parse(p)
		if err != nil {
			return fmt.Errorf("--platform %s: %w", p, err)
		}
		opt.Platforms[i] = platforms.Format(platforms.Normalize(pl))
	}
	for id, file := range opt.Secrets {
		if _, err := os.Stat(file); err != nil {
			return fmt.Errorf("secret %s: %w", id, err)
		}
	}
	secretIDs := make([]string, 0, len(opt.Secrets))
	for id := range opt.Secrets {
		secretIDs = append(secretIDs, id)
	}
	sort.Strings(secretIDs)
	c := client.New(opt.Server, opt.Token)
	fmt.Fprintf(opt.Log, "pei worker %s: serving %s for %s\n", opt.Name, strings.Join(opt.Platforms, ","), c.Server)
	backoff := time.Second
	for ctx.Err() == nil {
		l, err := c.Lease(ctx, api.LeaseRequest{Name: opt.Name, Platforms: opt.Platforms, Secrets: secretIDs, Wait: 20})
		if err != nil {
			var e *client.Error
			if errors.As(err, &e) && (e.Status == 401 || e.Status == 403) {
				return fmt.Errorf("lease: %w", err)
			}
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(opt.Log, "pei worker: lease: %v (retrying in %s)\n", err, backoff)
			sleep(ctx, backoff)
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
		if l == nil {
			continue
		}
		fmt.Fprintf(opt.Log, "pei worker: build %s: %s:%s (%s, %s)\n", l.Build.ID, l.Build.Repository, l.Build.Tag, l.Build.Kind, l.Build.Platform)
		res := runJob(ctx, c, opt, l)
		fmt.Fprintf(opt.Log, "pei worker: build %s %s %s\n", l.Build.ID, res.State, res.Digest+res.Error)
		if opt.Once {
			return nil
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// job is one leased build in progress.
type job struct {
	c      *client.Client
	opt    Options
	lease  *api.Lease
	logs   *logSender
	cancel context.CancelCauseFunc
}

// Why a build's context ended, besides the worker stopping.
var (
	errCanceled  = errors.New("canceled")
	errLeaseLost = errors.New("lease lost")
	errTimedOut  = errors.New("timed out")
)

func runJob(ctx context.Context, c *client.Client, opt Options, l *api.Lease) api.Finish {
	b := l.Build
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timeout := b.Timeout
	var tctx context.Context = bctx
	if d, err := time.ParseDuration(timeout); err == nil && d > 0 {
		var tcancel context.CancelFunc
		tctx, tcancel = context.WithTimeoutCause(bctx, d, fmt.Errorf("%w after %s", errTimedOut, d))
		defer tcancel()
	}
	j := &job{c: c, opt: opt, lease: l, cancel: cancel}
	// The log outlives a stopping worker's context: its last lines are sent.
	j.logs = newLogSender(context.WithoutCancel(ctx), c, b.ID, opt.Name)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		j.heartbeat(bctx)
	}()
	digest, err := j.build(tctx)
	cancel(nil)
	<-hbDone
	f := api.Finish{State: api.Succeeded, Digest: digest}
	if err != nil {
		cause := context.Cause(tctx)
		switch {
		case errors.Is(cause, errLeaseLost):
			j.logs.close()
			return api.Finish{State: api.Lost}
		case ctx.Err() != nil:
			// The worker is stopping (SIGTERM): give the build back now
			// rather than let its lease run out.
			fmt.Fprintf(j.logs, "\npei worker %s is stopping; the build goes back to the queue\n", opt.Name)
			j.logs.close()
			rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer rcancel()
			if err := c.Finish(rctx, b.ID, opt.Name, api.Finish{State: api.Queued}); err != nil {
				// Its lease runs out instead, and the server queues it.
				fmt.Fprintf(opt.Log, "pei worker: give back build %s: %v\n", b.ID, err)
			}
			return api.Finish{State: api.Queued}
		case errors.Is(cause, errCanceled):
			f = api.Finish{State: api.Canceled, Error: "canceled by request"}
		case errors.Is(cause, errTimedOut):
			f = api.Finish{State: api.Failed, Error: cause.Error()}
		default:
			f = api.Finish{State: api.Failed, Error: err.Error()}
		}
		fmt.Fprintf(j.logs, "\nerror: %s\n", f.Error)
	} else {
		fmt.Fprintf(j.logs, "\npushed %s/%s@%s\n", l.Registry, b.Repository, digest)
	}
	j.logs.close()
	// The log is out before the build is said to end, so a follower that
	// sees the end has every line.
	// Reported even if the worker is being stopped: the build is done.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer fcancel()
	for i := 0; i < 5; i++ {
		err = c.Finish(fctx, b.ID, opt.Name, f)
		var e *client.Error
		if err == nil || errors.As(err, &e) {
			break
		}
		sleep(fctx, time.Duration(i+1)*time.Second)
	}
	if err != nil {
		fmt.Fprintf(opt.Log, "pei worker: report build %s: %v\n", b.ID, err)
	}
	return f
}

func (j *job) heartbeat(ctx context.Context) {
	every := time.Duration(j.lease.LeaseSeconds) * time.Second / 3
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h, err := j.c.Heartbeat(ctx, j.lease.Build.ID, j.opt.Name)
		var e *client.Error
		switch {
		case errors.As(err, &e) && e.Status == 409:
			j.cancel(errLeaseLost)
			return
		case err != nil:
			// The server may be restarting: keep building, keep trying.
			continue
		case h.Cancel:
			j.cancel(errCanceled)
			return
		}
	}
}

// build fetches the recipe, builds it and pushes the image; it returns the
// pushed manifest's digest.
func (j *job) build(ctx context.Context) (string, error) {
	b := j.lease.Build
	work, err := os.MkdirTemp("", "pei-job-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	rc, _, err := j.c.Recipe(ctx, b.ID, j.opt.Name)
	if err != nil {
		return "", fmt.Errorf("fetch recipe: %w", err)
	}
	dir := filepath.Join(work, "recipe")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	// The tenant's recipe, unpacked with the limits the server checked it
	// against and contained as the server's check was (see recipe).
	err = recipe.Extract(rc, dir, leaseLimits(j.lease))
	rc.Close()
	if err != nil {
		return "", err
	}
	// The build's credentials, for bases in this registry and for
	// BuildKit: in memory, never in a file.
	auth := configfile.New("")
	auth.AuthConfigs[j.lease.Registry] = clitypes.AuthConfig{ServerAddress: j.lease.Registry, Username: j.lease.Username, Password: j.lease.Password}
	secrets := map[string]string{}
	for _, id := range b.Secrets {
		file, ok := j.opt.Secrets[id]
		if !ok {
			return "", fmt.Errorf("this worker has no secret %s", id)
		}
		secrets[id] = file
	}
	var cacheFrom, cacheTo []bkclient.CacheOptionsEntry
	if !j.opt.NoCache {
		ref := j.cacheRef()
		from := map[string]string{"ref": ref}
		to := map[string]string{"ref": ref, "mode": "max", "ignore-error": "true"}
		if image.IsLocalhost(j.lease.Registry) {
			from["registry.insecure"], to["registry.insecure"] = "true", "true"
		}
		cacheFrom = []bkclient.CacheOptionsEntry{{Type: "registry", Attrs: from}}
		cacheTo = []bkclient.CacheOptionsEntry{{Type: "registry", Attrs: to}}
	}
	out := filepath.Join(work, "image.tar")
	fmt.Fprintf(j.logs, "pei worker %s: building %s:%s for %s (attempt %d)\n", j.opt.Name, b.Repository, b.Tag, b.Platform, b.Attempts)
	ns := api.Namespace(b.Repository)
	daemon := build.Daemon{Builder: j.opt.Builder, StateDir: j.opt.StateDir, Network: j.network(ns)}
	switch b.Kind {
	case api.KindPei:
		plats, perr := build.ParsePlatforms(b.Platform)
		if perr != nil {
			return "", perr
		}
		// The runner installs of a composed image trust what this
		// machine trusts (a site's TLS proxy): public certificates, the
		// worker's, not the tenant's.
		cas, cerr := build.HostCAs(os.Getenv)
		if cerr != nil {
			return "", cerr
		}
		catalog := make([]config.CatalogItem, len(j.lease.Catalog))
		for i, it := range j.lease.Catalog {
			fmt.Fprintf(j.logs, "catalog %s (%s): %s on %s\n", it.Name, it.Namespace, it.Upper, it.Lower)
			catalog[i] = config.CatalogItem{Name: it.Name, Lower: config.ImageRef{Raw: it.Lower}, Upper: config.ImageRef{Raw: it.Upper}, Exclude: it.Exclude}
		}
		_, err = build.Build(ctx, build.Options{
			Dir: dir, Target: build.ParseTarget(b.Stage), Output: build.OCIOutput(out), Platforms: plats,
			Secrets: build.Secrets{Files: secrets}, Auth: auth, CacheImports: cacheFrom, CacheExports: cacheTo,
			Daemon: daemon, CacheNamespace: ns, Progress: "plain", Stderr: j.logs, TrustedCAs: cas, Catalog: catalog,
			// Nothing of this worker's (environment, files, git) reaches
			// the tenant's config.
			Recipe: true,
		})
	case api.KindDockerfile:
		_, err = build.Dockerfile(ctx, build.DockerfileOptions{
			ContextDir: dir, Dockerfile: b.Stage, Platform: b.Platform, Secrets: secrets, Dest: out, Auth: auth,
			CacheImports: cacheFrom, CacheExports: cacheTo, CacheNamespace: ns, Daemon: daemon, Progress: "plain", Stderr: j.logs,
		})
	default:
		err = fmt.Errorf("unknown build kind %q", b.Kind)
	}
	if err != nil {
		return "", err
	}
	return j.push(ctx, out)
}

// network is where the steps of a build for namespace ns may connect: a
// network namespace of their own, with the host's network only for a
// namespace the admin let have it. It says so in the build's log.
func (j *job) network(ns string) buildkitd.Network {
	n := buildkitd.Network{Isolate: true, Allow: j.opt.AllowNets, HostAllowed: slices.Contains(j.opt.HostNetwork, ns)}
	msg := "build steps run in a network namespace of their own: the internet, not this host or its private networks"
	if len(n.Allow) > 0 {
		var allowed []string
		for _, p := range n.Allow {
			allowed = append(allowed, p.String())
		}
		msg += " (but " + strings.Join(allowed, ", ") + ")"
	}
	if n.HostAllowed {
		msg += "; namespace " + ns + " may use the host's network when a step asks for it (--allow-host-network)"
	}
	fmt.Fprintf(j.logs, "pei worker %s: %s\n", j.opt.Name, msg)
	return n
}

// leaseLimits are the limits a recipe is unpacked with: the server's, or
// recipe.DefaultLimits (its defaults) from a server that does not say.
func leaseLimits(l *api.Lease) recipe.Limits {
	lim := recipe.DefaultLimits
	if l.RecipeMaxBytes > 0 {
		lim.MaxBytes = l.RecipeMaxBytes
	}
	if l.RecipeMaxFiles > 0 {
		lim.MaxFiles = l.RecipeMaxFiles
	}
	return lim
}

// cacheRef is where the build's cache lives in the registry: beside the
// repository, one tag per platform.
func (j *job) cacheRef() string {
	b := j.lease.Build
	return j.lease.Registry + "/" + api.CacheRepo(b.Repository) + ":" + strings.NewReplacer("/", "-", ",", "_").Replace(b.Platform)
}

// push sends the built image to the server's registry with the build's
// credentials; a build from a recipe artifact gets the artifact as its
// subject, so the referrers API leads from the recipe to the image.
func (j *job) push(ctx context.Context, tarball string) (string, error) {
	b := j.lease.Build
	// One platform is an image; several are an image index (and its images).
	var t interface {
		remote.Taggable
		Digest() (v1.Hash, error)
	}
	var done func()
	if strings.Contains(b.Platform, ",") {
		idx, d, err := image.OpenIndex(tarball, "")
		if err != nil {
			return "", fmt.Errorf("read the built index: %w", err)
		}
		t, done = idx, d
	} else {
		p, err := platforms.Parse(b.Platform)
		if err != nil {
			return "", err
		}
		img, d, err := image.Open(ctx, tarball, image.OpenOptions{Platform: v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}})
		if err != nil {
			return "", fmt.Errorf("read the built image: %w", err)
		}
		t, done = img, d
	}
	defer done()
	if b.Subject != "" {
		h, err := v1.NewHash(b.Subject)
		if err != nil {
			return "", err
		}
		desc := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: subjectSize(ctx, j, h), ArtifactType: api.RecipeArtifactType}
		switch x := t.(type) {
		case v1.ImageIndex:
			t = mutate.Subject(x, desc).(v1.ImageIndex)
		case v1.Image:
			t = mutate.Subject(x, desc).(v1.Image)
		}
	}
	ref, err := image.ParseRef(j.lease.Registry + "/" + b.Repository + ":" + b.Tag)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(j.logs, "pushing %s (%s)\n", ref, b.Platform)
	auth := remote.WithAuth(&authn.Basic{Username: j.lease.Username, Password: j.lease.Password})
	if err := remote.Push(ref, t, auth, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := t.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// subjectSize is the recipe manifest's size, which a descriptor needs.
func subjectSize(ctx context.Context, j *job, h v1.Hash) int64 {
	ref, err := image.ParseRef(j.lease.Registry + "/" + j.lease.Build.Repository + "@" + h.String())
	if err != nil {
		return 0
	}
	desc, err := remote.Head(ref, remote.WithAuth(&authn.Basic{Username: j.lease.Username, Password: j.lease.Password}), remote.WithContext(ctx))
	if err != nil {
		return 0
	}
	return desc.Size
}

// logSender batches a build's output and sends it to the server.
type logSender struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	c      *client.Client
	id     string
	worker string
	ctx    context.Context
	kick   chan struct{}
	done   chan struct{}
	closed bool
}

func newLogSender(ctx context.Context, c *client.Client, id, worker string) *logSender {
	l := &logSender{c: c, id: id, worker: worker, ctx: ctx, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *logSender) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	big := l.buf.Len() > 64<<10
	l.mu.Unlock()
	if big {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (l *logSender) loop() {
	defer close(l.done)
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.kick:
		}
		l.mu.Lock()
		data := append([]byte(nil), l.buf.Bytes()...)
		l.buf.Reset()
		closed := l.closed
		l.mu.Unlock()
		if len(data) > 0 {
			for i := 0; i < 5; i++ {
				err := l.c.AppendLog(l.ctx, l.id, l.worker, data)
				var e *client.Error
				if err == nil || errors.As(err, &e) || l.ctx.Err() != nil {
					break
				}
				sleep(l.ctx, time.Duration(i+1)*time.Second)
			}
		}
		if closed {
			return
		}
	}
}

// close sends what is left and stops.
func (l *logSender) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	<-l.done
}
