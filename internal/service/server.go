package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/sirupsen/logrus"

	_ "github.com/distribution/distribution/v3/registry/auth/token"                // token access controller
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // default storage
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

// Config configures a Server.
type Config struct {
	// DataDir holds the signing key, uploaded recipes and, unless
	// RegistryConfig names other storage, the registry's blobs.
	DataDir string
	// Database is a SQLite file path or a postgres:// URL; "" is
	// DataDir/pei.db.
	Database string
	// RegistryConfig is a distribution configuration file whose storage
	// section is used (auth and HTTP are pei's); "" is filesystem storage
	// under DataDir/registry.
	RegistryConfig string
	// PublicURL is how clients reach the server (the token realm),
	// e.g. http://127.0.0.1:5000.
	PublicURL string
	// AnonymousPull lists namespaces anyone may pull from; each must pass
	// api.CheckNamespace.
	AnonymousPull []string
	// SharedNamespace is the namespace of the shared catalog ("" for
	// none): every tenant's builds may take its items and every token
	// with a namespace may pull its images, but only admin tokens there
	// may write its catalog or push, build or delete in it, so no tenant
	// can change what another tenant's runtime is made of.
	SharedNamespace string
	Limits          Limits
	// Lease is how long a worker holds a build between heartbeats.
	Lease time.Duration
	// MaxAttempts is how many times a build whose worker vanished is run.
	MaxAttempts int
	// QueueTimeout fails a build no worker takes within it.
	QueueTimeout time.Duration
	// WebhookAllow opens address ranges to webhooks that are refused by
	// default (loopback, private, CGNAT, ULA, link-local): receivers on
	// site. Metadata services, multicast and unspecified stay refused.
	WebhookAllow []netip.Prefix
	// Timeouts bound idle and stalled connections.
	Timeouts Timeouts
	Log      io.Writer
	Debug    bool
}

// Limits bound what one tenant can ask of the server.
type Limits struct {
	MaxRecipeBytes   int64         // compressed recipe upload
	MaxContextBytes  int64         // recipe unpacked
	MaxActive        int           // queued+running builds per namespace
	BuildTimeout     time.Duration // default and maximum per build
	UploadTimeout    time.Duration // to receive a recipe
	RequestsPerSec   float64       // per caller on pei's endpoints
	Burst            int
	MaxManifestBytes int64
	MaxLogBytes      int64 // kept per build; the rest is cut
	// MaxUnpacks bounds recipes checked at once (each may unpack to
	// MaxContextBytes); a submission waits up to UnpackWait for its turn,
	// then is told to retry.
	MaxUnpacks int
	// MaxUnpacksPerNamespace bounds the recipes of one namespace checked
	// at once, and with MaxContextBytes the disk they take.
	MaxUnpacksPerNamespace int
	UnpackWait             time.Duration
	// MaxCatalogItems bounds a namespace's catalog.
	MaxCatalogItems int
}

// DefaultLimits are the limits when none are configured.
var DefaultLimits = Limits{
	MaxRecipeBytes:         256 << 20,
	MaxContextBytes:        2 << 30,
	MaxActive:              20,
	BuildTimeout:           time.Hour,
	UploadTimeout:          10 * time.Minute,
	RequestsPerSec:         50,
	Burst:                  100,
	MaxManifestBytes:       4 << 20,
	MaxLogBytes:            32 << 20,
	MaxUnpacks:             2,
	MaxUnpacksPerNamespace: 1,
	UnpackWait:             15 * time.Second,
	MaxCatalogItems:        256,
}

// Server is pei serve.
type Server struct {
	cfg      Config
	store    *store.Store
	signer   *signer
	jobKey   []byte
	app      *handlers.App
	registry distribution.Namespace
	limiter  *limiter
	// tokenLimiter is /token's request rate, liveness what registry
	// tokens stand for (revocation).
	tokenLimiter *limiter
	liveness     *liveCache
	hooks        *webhooks
	events       *events
	unpacks      chan struct{} // a place for each recipe being checked
	nsUnpacksMu  sync.Mutex
	nsUnpacks    map[string]*nsPlaces // places per namespace (Limits.MaxUnpacksPerNamespace)
	handler      http.Handler
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

// New opens the server's state and builds its handler.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("pei serve needs a data directory")
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("pei serve needs its public URL (the token realm)")
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	for _, ns := range cfg.AnonymousPull {
		if err := api.CheckNamespace(ns); err != nil {
			return nil, fmt.Errorf("anonymous pull: %w", err)
		}
	}
	if cfg.SharedNamespace != "" {
		if err := api.CheckNamespace(cfg.SharedNamespace); err != nil || cfg.SharedNamespace == "*" {
			return nil, fmt.Errorf("shared catalog namespace %q: give one namespace (a repository name's first component)", cfg.SharedNamespace)
		}
	}
	fillLimits(&cfg.Limits)
	orDefault(&cfg.Lease, 30*time.Second)
	orDefault(&cfg.MaxAttempts, 3)
	orDefault(&cfg.QueueTimeout, 24*time.Hour)
	orDefault(&cfg.Timeouts.ReadHeader, DefaultTimeouts.ReadHeader)
	orDefault(&cfg.Timeouts.Stall, DefaultTimeouts.Stall)
	orDefault(&cfg.Timeouts.Idle, DefaultTimeouts.Idle)
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if err := PrepareDataDir(cfg.DataDir, cfg.Log); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "recipes"), 0o700); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, dsn(cfg.DataDir, cfg.Database))
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: st, unpacks: make(chan struct{}, cfg.Limits.MaxUnpacks)}
	fail := func(err error) (*Server, error) {
		st.Close()
		return nil, err
	}
	sig, jwks, err := loadSigner(filepath.Join(cfg.DataDir, "auth"))
	if err != nil {
		return fail(fmt.Errorf("signing key: %w", err))
	}
	s.signer = sig
	key, err := s.secretFile("job-key")
	if err != nil {
		return fail(err)
	}
	s.jobKey = []byte(key)
	rcfg, err := s.registryConfig(jwks)
	if err != nil {
		return fail(err)
	}
	// distribution logs through logrus's standard logger.
	logrus.SetOutput(cfg.Log)
	// distribution logs every 4xx answer as an error: keep it quiet unless
	// debugging.
	logrus.SetLevel(logrus.FatalLevel)
	if cfg.Debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	rctx := context.Background()
	// NewApp panics on a bad storage configuration: try the driver first.
	driver, err := factory.Create(rctx, rcfg.Storage.Type(), rcfg.Storage.Parameters())
	if err != nil {
		return fail(fmt.Errorf("registry storage %s: %w", rcfg.Storage.Type(), err))
	}
	if s.registry, err = storage.NewRegistry(rctx, driver, storage.EnableDelete); err != nil {
		return fail(err)
	}
	s.app = handlers.NewApp(rctx, rcfg)
	s.limiter = newLimiter(cfg.Limits.RequestsPerSec, cfg.Limits.Burst)
	s.tokenLimiter = newLimiter(cfg.Limits.RequestsPerSec, cfg.Limits.Burst)
	s.liveness = newLiveCache()
	s.hooks = newWebhooks(cfg.WebhookAllow)
	s.events = newEvents()
	s.handler = s.routes()
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.expireLoop(bg)
	}()
	go func() {
		defer s.wg.Done()
		s.hookLoop(bg)
	}()
	return s, nil
}

func fillLimits(l *Limits) {
	d := DefaultLimits
	orDefault(&l.MaxRecipeBytes, d.MaxRecipeBytes)
	orDefault(&l.MaxContextBytes, d.MaxContextBytes)
	orDefault(&l.MaxActive, d.MaxActive)
	orDefault(&l.BuildTimeout, d.BuildTimeout)
	orDefault(&l.UploadTimeout, d.UploadTimeout)
	orDefault(&l.RequestsPerSec, d.RequestsPerSec)
	orDefault(&l.Burst, d.Burst)
	orDefault(&l.MaxManifestBytes, d.MaxManifestBytes)
	orDefault(&l.MaxLogBytes, d.MaxLogBytes)
	orDefault(&l.MaxUnpacks, d.MaxUnpacks)
	orDefault(&l.MaxUnpacksPerNamespace, d.MaxUnpacksPerNamespace)
	orDefault(&l.UnpackWait, d.UnpackWait)
	orDefault(&l.MaxCatalogItems, d.MaxCatalogItems)
}

// orDefault sets *v to d when it is the zero value (not configured).
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// registryConfig is distribution's configuration: storage from the user's
// file or the data directory, token auth against our signing key, and an
// upload-state secret kept in the data directory so uploads started before
// a restart (or on another replica) can go on.
func (s *Server) registryConfig(jwks string) (*configuration.Configuration, error) {
	cfg := &configuration.Configuration{}
	if s.cfg.RegistryConfig != "" {
		f, err := os.Open(s.cfg.RegistryConfig)
		if err != nil {
			return nil, fmt.Errorf("registry config: %w", err)
		}
		defer f.Close()
		if cfg, err = configuration.Parse(f); err != nil {
			return nil, fmt.Errorf("registry config %s: %w", s.cfg.RegistryConfig, err)
		}
	} else {
		cfg.Storage = configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": filepath.Join(s.cfg.DataDir, "registry")},
		}
	}
	if params, ok := cfg.Storage["filesystem"]; ok {
		// The same driver, with private modes.
		delete(cfg.Storage, "filesystem")
		cfg.Storage[privateFSName] = params
	}
	cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	if _, ok := cfg.Storage["cache"]; !ok {
		cfg.Storage["cache"] = configuration.Parameters{"blobdescriptor": "inmemory"}
	}
	secret, err := s.secretFile("http-secret")
	if err != nil {
		return nil, err
	}
	cfg.HTTP = configuration.HTTP{Secret: secret, Host: s.cfg.PublicURL}
	cfg.HTTP.Headers = map[string][]string{"X-Content-Type-Options": {"nosniff"}}
	cfg.Auth = configuration.Auth{"token": configuration.Parameters{
		"realm":   s.cfg.PublicURL + "/token",
		"service": service,
		"issuer":  issuer,
		"jwks":    jwks,
	}}
	cfg.Log.Level = "warn"
	cfg.Log.AccessLog.Disabled = true
	cfg.Notifications = configuration.Notifications{}
	// Foreign layers (non-distributable, with URLs) are accepted as other
	// registries do; their blobs are not required here.
	cfg.Validation.Manifests.URLs.Allow = []string{"^https?://"}
	return cfg, nil
}

// secretFile reads a random secret kept in the data directory, making it
// on first use: replicas sharing the directory share it.
func (s *Server) secretFile(name string) (string, error) {
	path := filepath.Join(s.cfg.DataDir, "auth", name)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(b[:])
	return secret, writeFileAtomic(path, []byte(secret), 0o600)
}

// Store is the server's database, for a program that runs the server in
// its own process (tests) and makes tokens or reads builds directly.
func (s *Server) Store() *store.Store { return s.store }

// ServeHTTP serves the registry, the token endpoint and pei's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close stops background work and closes the database.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	s.app.Shutdown()
	return s.store.Close()
}

// expireLoop re-queues builds whose workers stopped heartbeating and ends
// those past their timeout.
func (s *Server) expireLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Lease / 3)
	defer t.Stop()
	for {
		ended, err := s.store.Expire(ctx, s.cfg.MaxAttempts)
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(s.cfg.Log, "pei serve: expire leases: %v\n", err)
		}
		stale, err := s.store.ExpireQueued(ctx, s.cfg.QueueTimeout)
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(s.cfg.Log, "pei serve: expire queue: %v\n", err)
		}
		ended = append(ended, stale...)
		for _, b := range ended {
			s.ended(b)
		}
		// Waiters re-check on their own: nothing waits forever on a
		// change that went unannounced.
		s.events.notifyAll()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
