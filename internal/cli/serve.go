package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/secretflag"
	"github.com/pei-dev/pei/internal/service"
	"github.com/pei-dev/pei/internal/store"
	"github.com/pei-dev/pei/internal/submit"
	"github.com/pei-dev/pei/internal/worker"
)

func defaultDataDir() string {
	if d := os.Getenv("PEI_SERVE_DATA"); d != "" {
		return d
	}
	if dir, err := os.UserHomeDir(); err == nil {
		return filepath.Join(dir, ".local", "share", "pei", "serve")
	}
	return "pei-serve"
}

type serveFlags struct {
	cfg       service.Config
	addr      string
	maxRecipe string
	tlsCert   string
	tlsKey    string
	anonymous []string
	hookAllow []string
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run an OCI registry that also builds: push a recipe, get an image",
		Long: `Serve runs an OCI distribution registry (the distribution/distribution
library) with a Docker token server, so docker login, docker push/pull,
skopeo, crane and BuildKit work against it, and build endpoints beside it:
pei submit uploads a pei project or a Dockerfile with its context, a
pei worker builds it with BuildKit and pushes the image here. Pushing an OCI
artifact of type application/vnd.pei.recipe.v1 queues a build too.

Every write needs a token (pei token create); tenants are namespaces, the
first component of a repository name. State lives in --data (signing key,
recipes, registry blobs) and in SQLite there or PostgreSQL (--database).
The web page at / lists repositories, tags and builds with live logs.
Each namespace has a catalog of prebuilt diffs (pei catalog); with
--shared-catalog NS, NS's catalog serves every tenant and only admins
write it. API: docs/api.md and docs/openapi.yaml.`,
		Example: `  pei serve --addr 127.0.0.1:5000 --data /srv/pei
  pei token create --data /srv/pei --name alice --namespace team-a --scope push,build
  pei serve --database postgres://pei@db/pei --data /srv/pei --public-url https://registry.example.com
  pei serve --data /srv/pei --shared-catalog pei`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:5000", "address to listen on")
	fl.StringVar(&f.cfg.DataDir, "data", defaultDataDir(), "data directory ($PEI_SERVE_DATA)")
	fl.StringVar(&f.cfg.Database, "database", "", "SQLite file or postgres://USER@HOST/DB URL (default DATA/pei.db)")
	fl.StringVar(&f.cfg.RegistryConfig, "registry-config", "", "distribution config file whose storage section to use (default: filesystem under DATA/registry)")
	fl.StringVar(&f.cfg.PublicURL, "public-url", "", "URL clients reach the server at (default http://ADDR)")
	fl.StringSliceVar(&f.anonymous, "anonymous-pull", nil, "namespaces anyone may pull from (repeatable)")
	fl.StringVar(&f.cfg.SharedNamespace, "shared-catalog", "", "namespace whose catalog every tenant's builds may take items from; only admin tokens write it or push to it")
	fl.StringArrayVar(&f.hookAllow, "webhook-allow", nil, "let webhooks reach this CIDR range, refused by default as private, loopback, CGNAT, ULA or link-local (repeatable; for receivers on site)")
	fl.StringVar(&f.maxRecipe, "max-recipe-size", "256MiB", "largest recipe upload")
	fl.IntVar(&f.cfg.Limits.MaxActive, "max-active", service.DefaultLimits.MaxActive, "queued+running builds per namespace")
	fl.DurationVar(&f.cfg.Limits.BuildTimeout, "build-timeout", service.DefaultLimits.BuildTimeout, "longest a build may run (default and maximum)")
	fl.Float64Var(&f.cfg.Limits.RequestsPerSec, "rate", service.DefaultLimits.RequestsPerSec, "requests per second per caller on the build endpoints")
	fl.IntVar(&f.cfg.Limits.Burst, "burst", service.DefaultLimits.Burst, "request burst per caller")
	fl.IntVar(&f.cfg.Limits.MaxUnpacks, "max-unpacks", service.DefaultLimits.MaxUnpacks, "recipes checked (unpacked) at once; more wait, then get 503")
	fl.IntVar(&f.cfg.Limits.MaxUnpacksPerNamespace, "max-unpacks-per-namespace", service.DefaultLimits.MaxUnpacksPerNamespace, "recipes of one namespace checked at once (each unpacks to at most 2 GiB)")
	fl.DurationVar(&f.cfg.Lease, "lease", 30*time.Second, "how long a worker holds a build between heartbeats")
	fl.DurationVar(&f.cfg.QueueTimeout, "queue-timeout", 24*time.Hour, "fail a build no worker takes within this (no worker for its platform or secrets)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate")
	fl.StringVar(&f.tlsKey, "tls-key", "", "and this key")
	fl.BoolVar(&f.cfg.Debug, "debug", false, "log the registry's requests")
	return cmd
}

func runServe(ctx context.Context, cmd *cobra.Command, f serveFlags) error {
	n, err := units.RAMInBytes(f.maxRecipe)
	if err != nil {
		return fmt.Errorf("--max-recipe-size %q: %w", f.maxRecipe, err)
	}
	f.cfg.Limits.MaxRecipeBytes = n
	for _, ns := range f.anonymous {
		if err := api.CheckNamespace(ns); err != nil {
			return fmt.Errorf("--anonymous-pull: %w", err)
		}
	}
	f.cfg.AnonymousPull = f.anonymous
	if ns := f.cfg.SharedNamespace; ns != "" && (ns == "*" || api.CheckNamespace(ns) != nil) {
		return fmt.Errorf("--shared-catalog %q: give one namespace, a repository name's first component (lower-case letters, digits and separators ., _, -)", ns)
	}
	if f.cfg.WebhookAllow, err = service.ParseWebhookAllow(f.hookAllow); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if f.cfg.PublicURL == "" {
		scheme := "http"
		if f.tlsCert != "" {
			scheme = "https"
		}
		f.cfg.PublicURL = scheme + "://" + ln.Addr().String()
	}
	f.cfg.Log = cmd.ErrOrStderr()
	srv, err := service.New(ctx, f.cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close()
	// Requests run under base, which is canceled during shutdown so that
	// workers' long polls and followers' log streams end (they reconnect).
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	hs := srv.HTTPServer()
	hs.BaseContext = func(net.Listener) context.Context { return base }
	errc := make(chan error, 1)
	go func() {
		if f.tlsCert != "" {
			errc <- hs.ServeTLS(ln, f.tlsCert, f.tlsKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	fmt.Fprintf(cmd.ErrOrStderr(), "pei serve: listening on %s (data %s)\n", f.cfg.PublicURL, f.cfg.DataDir)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "pei serve: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- hs.Shutdown(sctx) }()
	// Uploads in flight get a few seconds to finish; then the long-lived
	// requests are ended.
	select {
	case err := <-done:
		return err
	case <-time.After(3 * time.Second):
	}
	cancelBase()
	return <-done
}

func newTokenCmd() *cobra.Command {
	var data, database string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke pei serve's API tokens (run where the server's data is)",
	}
	cmd.PersistentFlags().StringVar(&data, "data", defaultDataDir(), "pei serve's data directory")
	cmd.PersistentFlags().StringVar(&database, "database", "", "pei serve's database (default DATA/pei.db)")
	tokens := func(cmd *cobra.Command) service.Tokens {
		return service.Tokens{DataDir: data, Database: database, Log: cmd.ErrOrStderr()}
	}
	var name string
	var namespaces, scopes []string
	var expires time.Duration
	create := &cobra.Command{
		Use:   "create --name NAME --namespace NS --scope pull,push,build",
		Short: "Create a token; its secret is printed once, on stdout",
		Long: `Create stores a new API token and prints its secret once. Use it as the
password of docker login (any user name), in PEI_TOKEN for pei submit and
pei worker, or for crane/skopeo. Scopes: pull, push (implies pull), build
(submit and cancel builds; implies pull), admin (everything, delete too) in
the given namespaces; worker lets a pei worker lease builds.`,
		Example: `  pei token create --name alice --namespace team-a --scope push,build
  pei token create --name ci-worker --scope worker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t := store.Token{Name: name, Namespaces: namespaces, Scopes: scopes}
			if expires > 0 {
				t.Expires = time.Now().Add(expires)
			}
			t, secret, err := tokens(cmd).Create(cmd.Context(), t)
			if err != nil {
				return grantFlagError(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s (%s): namespaces %s, scopes %s\n", t.ID, t.Name, strings.Join(t.Namespaces, ","), strings.Join(t.Scopes, ","))
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "who or what the token is for")
	create.Flags().StringSliceVar(&namespaces, "namespace", nil, "namespaces (repeatable or comma-separated; * is all)")
	create.Flags().StringSliceVar(&scopes, "scope", []string{api.ScopePull}, strings.Join(api.ValidScopes, ", "))
	create.Flags().DurationVar(&expires, "expires", 0, "lifetime, e.g. 720h (default: until revoked)")
	_ = create.MarkFlagRequired("name")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := tokens(cmd).List(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-26s %-16s %-20s %-22s %s\n", "ID", "NAME", "NAMESPACES", "SCOPES", "STATUS")
			now := time.Now()
			for _, t := range ts {
				fmt.Fprintf(w, "%-26s %-16s %-20s %-22s %s\n", t.ID, t.Name, strings.Join(t.Namespaces, ","), strings.Join(t.Scopes, ","), t.Status(now))
			}
			return nil
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tokens(cmd).Revoke(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// grantFlagError names the flag of a grant api.CheckGrant refused:
// --scope "x": ..., --namespace: ...
func grantFlagError(err error) error {
	var se *api.ScopeError
	var ne *api.NamespaceError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("--%w", err)
	case errors.As(err, &ne), errors.Is(err, api.ErrNoNamespaces):
		return fmt.Errorf("--namespace: %w", err)
	}
	return err
}

func newWorkerCmd() *cobra.Command {
	var opt worker.Options
	var secrets, allowNets []string
	cmd := &cobra.Command{
		Use:   "worker --server URL",
		Short: "Lease builds from pei serve and run them on BuildKit",
		Long: `Worker leases builds for its platforms from pei serve, builds them on a
BuildKit daemon (--builder, or one it starts as pei build does), pushes the
image to the server with the build's own credentials and streams the log.
It heartbeats while building; if it dies, the server hands the build to
another worker. A build that names secrets goes only to workers that hold
them (--secret id=ID,src=FILE); secrets never leave the worker.
Build steps run in a network namespace of their own: they reach the
internet (package mirrors) but not this host, its loopback or private
networks, except destinations given with --build-allow-net. A build that
asks for the host's network (a proxy at host.docker.internal, RUN
--network=host) fails, unless its namespace is given --allow-host-network.
The token (PEI_TOKEN) needs the worker scope.`,
		Example: `  PEI_TOKEN=... pei worker --server http://127.0.0.1:5000 --builder unix:///run/buildkit/buildkitd.sock --platform linux/amd64`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt.Token = os.Getenv("PEI_TOKEN")
			if opt.Token == "" {
				return errors.New("set PEI_TOKEN to a token with the worker scope (pei token create --scope worker)")
			}
			var err error
			if opt.Secrets, err = secretflag.Files(secrets); err != nil {
				return err
			}
			for _, a := range allowNets {
				p, err := parsePrefix(a)
				if err == nil && !p.Addr().Is4() {
					err = errors.New("build steps have IPv4 only: give an IPv4 address or CIDR")
				}
				if err != nil {
					return fmt.Errorf("--build-allow-net %q: %w", a, err)
				}
				opt.AllowNets = append(opt.AllowNets, p)
			}
			opt.Log = cmd.ErrOrStderr()
			return worker.Run(cmd.Context(), opt)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opt.Server, "server", os.Getenv("PEI_SERVER"), "pei serve URL ($PEI_SERVER)")
	fl.StringVar(&opt.Builder, "builder", "auto", "BuildKit daemon: auto, unix:///path.sock or tcp://host:port")
	fl.StringSliceVar(&opt.Platforms, "platform", nil, "platforms to build (default: the host's)")
	fl.StringVar(&opt.Name, "name", "", "worker name (default: host name)")
	fl.StringArrayVar(&secrets, "secret", nil, "a secret builds may name: id=ID,src=FILE")
	fl.BoolVar(&opt.Once, "once", false, "exit after one build")
	fl.BoolVar(&opt.NoCache, "no-registry-cache", false, "do not share the build cache through the registry (NAME/buildcache)")
	fl.StringArrayVar(&allowNets, "build-allow-net", nil, "an address or CIDR on this host or its networks that build steps may reach, e.g. a proxy or a package mirror (repeatable)")
	fl.StringArrayVar(&opt.HostNetwork, "allow-host-network", nil, "DANGEROUS: a namespace whose builds may use this host's network when they ask for it (repeatable; docs/serve.md)")
	_ = cmd.MarkFlagRequired("server")
	return cmd
}

// parsePrefix reads a CIDR, or an address as the network of that address alone.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an address or CIDR (e.g. 10.1.2.3 or 10.1.2.0/24)")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func newSubmitCmd() *cobra.Command {
	var o submit.Options
	var ref string
	cmd := &cobra.Command{
		Use:   "submit -p DIR --server URL --tag NAME:TAG",
		Short: "Send a project to pei serve to build; print the image digest",
		Long: `Submit packs the project directory (a pei project, or with --dockerfile a
Dockerfile and its context), uploads it to pei serve and prints the build's
id; with --follow it streams the build log to stderr and prints the pushed
image as REGISTRY/NAME@DIGEST on stdout (exit status 1 if the build failed).
The token comes from PEI_TOKEN (it needs the build scope in NAME's namespace).`,
		Example: `  PEI_TOKEN=... pei submit -p ./my-env --server http://127.0.0.1:5000 --tag team-a/my-env:1.0 --follow
  pei submit -p ./ctx --dockerfile Dockerfile --server $PEI_SERVER --tag team-a/tool:latest`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Build.Repo, o.Build.Tag, _ = strings.Cut(ref, ":")
			if o.Build.Repo == "" {
				return errors.New("--tag NAME:TAG: name the repository, e.g. team-a/app:1.0")
			}
			o.Token = os.Getenv("PEI_TOKEN")
			o.Log = cmd.ErrOrStderr()
			b, err := submit.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if o.Follow {
				fmt.Fprintln(cmd.OutOrStdout(), b.Image)
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), b.ID)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Dir, "project-dir", "p", ".", "project directory (or Dockerfile context)")
	fl.StringVar(&o.Server, "server", os.Getenv("PEI_SERVER"), "pei serve URL ($PEI_SERVER)")
	fl.StringVar(&ref, "tag", "", "repository and tag to push, NAME[:TAG]")
	fl.StringVar(&o.Build.Platform, "platform", "", "platform(s) to build, e.g. linux/arm64 or linux/amd64,linux/arm64 for one image index (default: the server host's)")
	fl.StringVar(&o.Build.Stage, "stage", "", "pei project: 1, 2, final, all or a compose NAME")
	fl.StringVar(&o.Build.Dockerfile, "dockerfile", "", "build this Dockerfile (path in the context) instead of a pei project")
	fl.StringArrayVar(&o.Build.Secrets, "secret", nil, "id of a secret the build needs; workers supply it (repeatable)")
	fl.StringVar(&o.Build.Webhook, "webhook", "", "URL to POST the build's end to (signed with HMAC-SHA256)")
	fl.StringVar(&o.Build.WebhookSecret, "webhook-secret", os.Getenv("PEI_WEBHOOK_SECRET"), "key of the webhook's signature ($PEI_WEBHOOK_SECRET)")
	fl.DurationVar(&o.Build.Timeout, "timeout", 0, "build timeout (default: the server's)")
	fl.BoolVar(&o.Follow, "follow", false, "stream the log and wait for the image")
	_ = cmd.MarkFlagRequired("server")
	_ = cmd.MarkFlagRequired("tag")
	return cmd
}
