package service

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/project"
	"github.com/pei-dev/pei/internal/recipe"
	"github.com/pei-dev/pei/internal/store"
)

// Submission parameters only the server checks: a pei project's stage
// and a secret id.
var (
	stageRE    = regexp.MustCompile(`^(1|2|final|all|[a-z0-9][a-z0-9_.-]*)$`)
	secretIDRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

func (s *Server) view(b store.Build) api.BuildView {
	v := api.BuildView{ID: b.ID, Repository: b.Repo, Tag: b.Tag, Platform: b.Platform, Kind: b.Kind, Stage: b.Stage, State: b.State,
		Created: b.Created, Started: b.Started, Finished: b.Finished, Worker: b.Worker, Attempts: b.Attempts,
		Recipe: b.Recipe, RecipeSize: b.RecipeSize, Subject: b.Subject, Secrets: b.Secrets, Timeout: b.Timeout.String(),
		Webhook: b.Webhook != "", Submitter: b.Submitter, Digest: b.Digest, Error: b.Error, Cancel: b.Cancel && !b.Done()}
	if b.Digest != "" {
		v.Image = s.host() + "/" + b.Repo + "@" + b.Digest
	}
	v.Links.Self = api.BuildPath(b.Repo, b.ID)
	v.Links.Logs = api.LogsPath(b.Repo, b.ID)
	return v
}

func (s *Server) host() string {
	u, err := url.Parse(s.cfg.PublicURL)
	if err != nil {
		return s.cfg.PublicURL
	}
	return u.Host
}

// httpError is an error with the status and code to answer it with.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) write(w http.ResponseWriter) {
	if e.status == http.StatusServiceUnavailable {
		// Busy, not broken: say when to come back.
		w.Header().Set("Retry-After", strconv.Itoa(int(busyRetry/time.Second)))
	}
	writeError(w, e.status, e.code, e.msg, nil)
}

// busyRetry is when a submission refused because the server is busy
// checking other recipes should try again.
const busyRetry = 10 * time.Second

func badRequest(format string, args ...any) *httpError {
	return &httpError{http.StatusBadRequest, "BUILD_INVALID", fmt.Sprintf(format, args...)}
}

// buildRequest is what a submission asks for.
type buildRequest struct {
	repo, tag, platform, kind, stage, dockerfile string
	secrets                                      []string
	webhook, webhookSecret                       string
	timeout                                      time.Duration
}

func (s *Server) parseRequest(repo string, get func(string) string, list func(string) []string) (buildRequest, *httpError) {
	req := buildRequest{repo: repo, tag: get("tag"), kind: get("kind"), stage: get("stage"), dockerfile: get("dockerfile"),
		webhook: get("webhook"), webhookSecret: get("webhook_secret")}
	if req.tag == "" {
		req.tag = "latest"
	}
	if !api.ValidTag(req.tag) {
		return req, badRequest("tag %q: use letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')", req.tag)
	}
	switch req.kind {
	case "":
		req.kind = "pei"
	case "pei", "dockerfile":
	default:
		return req, badRequest("kind %q: use pei (a pei project) or dockerfile", req.kind)
	}
	// A parameter of the other kind is a mistake the build would not
	// show (it would be ignored): say so.
	if req.kind == "dockerfile" && req.stage != "" {
		return req, badRequest("stage %q: a Dockerfile build has no stages (stage is for kind=pei); leave it out", req.stage)
	}
	if req.kind == "pei" && req.dockerfile != "" {
		return req, badRequest("dockerfile %q: kind=pei builds user_config.yml; submit with kind=dockerfile to build a Dockerfile", req.dockerfile)
	}
	if req.kind == "dockerfile" && req.dockerfile == "" {
		req.dockerfile = "Dockerfile"
	}
	if req.kind == "pei" && req.stage != "" && !stageRE.MatchString(req.stage) {
		return req, badRequest("stage %q: use 1, 2, final, all or a name under compose", req.stage)
	}
	p := get("platform")
	if p == "" {
		p = platforms.DefaultString()
	}
	// Several platforms make one image index, built by one worker that
	// builds them all (natively or under emulation).
	var plats []string
	for _, one := range strings.Split(p, ",") {
		pl, err := platforms.Parse(strings.TrimSpace(one))
		if err != nil {
			return req, badRequest("platform %q: %v", one, err)
		}
		if f := platforms.Format(platforms.Normalize(pl)); !slices.Contains(plats, f) {
			plats = append(plats, f)
		}
	}
	req.platform = strings.Join(plats, ",")
	for _, sec := range list("secret") {
		for _, id := range strings.Split(sec, ",") {
			if id = strings.TrimSpace(id); id == "" {
				continue
			}
			if !secretIDRE.MatchString(id) {
				return req, badRequest("secret %q: a secret id is letters, digits, '_', '.' and '-'; the value stays with the workers", id)
			}
			req.secrets = append(req.secrets, id)
		}
	}
	req.timeout = s.cfg.Limits.BuildTimeout
	if t := get("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			return req, badRequest("timeout %q: give a duration such as 30m", t)
		}
		if d > s.cfg.Limits.BuildTimeout {
			return req, &httpError{http.StatusBadRequest, "BUILD_INVALID", fmt.Sprintf("timeout %s is over this server's limit of %s", d, s.cfg.Limits.BuildTimeout)}
		}
		req.timeout = d
	}
	if req.webhook != "" {
		u, err := url.Parse(req.webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return req, badRequest("webhook %q: give an http or https URL", req.webhook)
		}
	}
	return req, nil
}

// submit takes an uploaded recipe: POST /v2/<name>/_pei/builds?tag=...
func (s *Server) submit(w http.ResponseWriter, r *http.Request, repo string) {
	c, err := s.caller(r)
	if err != nil || !s.allowed(c, repo, api.ScopeBuild) {
		s.deny(w, c, err, "build in "+repo)
		return
	}
	q := r.URL.Query()
	req, herr := s.parseRequest(repo, q.Get, func(k string) []string { return q[k] })
	if herr != nil {
		herr.write(w)
		return
	}
	if herr := s.checkActive(r.Context(), repo); herr != nil {
		herr.write(w)
		return
	}
	if r.ContentLength > s.cfg.Limits.MaxRecipeBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("recipe of %d bytes is over the limit of %d bytes", r.ContentLength, s.cfg.Limits.MaxRecipeBytes), nil)
		return
	}
	// The whole upload has UploadTimeout, however slowly it trickles; the
	// answer waits for it, then for the recipe's check.
	capRead(r, time.Now().Add(s.cfg.Limits.UploadTimeout))
	holdWrite(w, r, s.cfg.Limits.UploadTimeout)
	body := http.MaxBytesReader(w, r.Body, s.cfg.Limits.MaxRecipeBytes)
	dgst, size, path, herr := s.saveRecipe(body)
	if herr != nil {
		herr.write(w)
		return
	}
	capRead(r, time.Time{})
	holdWrite(w, r, s.cfg.Limits.UploadTimeout)
	catalog, herr := s.checkRecipe(r.Context(), path, req)
	if herr != nil {
		herr.write(w)
		return
	}
	b, err := s.store.CreateBuild(r.Context(), store.Build{Repo: repo, Namespace: api.Namespace(repo), Tag: req.tag, Platform: req.platform,
		Kind: req.kind, Stage: kindStage(req), Recipe: dgst, RecipeSize: size, Secrets: req.secrets, Webhook: req.webhook,
		WebhookSecret: req.webhookSecret, Submitter: c.Subject, Timeout: req.timeout, Catalog: catalog})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	s.events.notify("")
	v := s.view(b)
	w.Header().Set("Location", v.Links.Self)
	w.Header().Set("Pei-Build-Id", b.ID)
	writeJSON(w, http.StatusAccepted, v)
}

// kindStage is what the worker needs besides the kind: pei's --stage, or
// the Dockerfile's path in the context.
func kindStage(req buildRequest) string {
	if req.kind == "dockerfile" {
		return req.dockerfile
	}
	return req.stage
}

func (s *Server) checkActive(ctx context.Context, repo string) *httpError {
	n, err := s.store.Active(ctx, api.Namespace(repo))
	if err != nil {
		return &httpError{http.StatusInternalServerError, "UNKNOWN", err.Error()}
	}
	if n >= s.cfg.Limits.MaxActive {
		return &httpError{http.StatusTooManyRequests, "TOOMANYREQUESTS", fmt.Sprintf("namespace %s has %d builds queued or running, the limit; wait for some to finish or cancel them", api.Namespace(repo), n)}
	}
	return nil
}

// saveRecipe stores an upload under recipes/sha256/<hex>, written to a
// temporary file and renamed once complete, so a cut upload or a crash
// leaves nothing behind.
func (s *Server) saveRecipe(body io.Reader) (string, int64, string, *httpError) {
	dir := filepath.Join(s.cfg.DataDir, "recipes", "sha256")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, "", &httpError{http.StatusInternalServerError, "UNKNOWN", err.Error()}
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return "", 0, "", &httpError{http.StatusInternalServerError, "UNKNOWN", err.Error()}
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if err == nil {
		err = tmp.Sync()
	}
	tmp.Close()
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return "", 0, "", &httpError{http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("recipe is over the limit of %d bytes", s.cfg.Limits.MaxRecipeBytes)}
		case errors.Is(err, os.ErrDeadlineExceeded):
			return "", 0, "", &httpError{http.StatusRequestTimeout, "TIMEOUT", fmt.Sprintf("recipe upload took longer than %s", s.cfg.Limits.UploadTimeout)}
		}
		return "", 0, "", &httpError{http.StatusBadRequest, "BLOB_UPLOAD_INVALID", "read recipe: " + err.Error()}
	}
	if n == 0 {
		return "", 0, "", badRequest("empty body: send the recipe as a gzip-compressed tar (pei submit does this)")
	}
	hexsum := hex.EncodeToString(h.Sum(nil))
	final := filepath.Join(dir, hexsum)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", 0, "", &httpError{http.StatusInternalServerError, "UNKNOWN", err.Error()}
	}
	return "sha256:" + hexsum, n, final, nil
}

func (s *Server) recipeLimits() recipe.Limits {
	return recipe.Limits{MaxBytes: s.cfg.Limits.MaxContextBytes, MaxFiles: recipe.DefaultLimits.MaxFiles}
}

// checkRecipe checks a stored recipe (see checkRecipeReader).
func (s *Server) checkRecipe(ctx context.Context, path string, req buildRequest) ([]api.CatalogItem, *httpError) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &httpError{http.StatusInternalServerError, "UNKNOWN", err.Error()}
	}
	defer f.Close()
	return s.checkRecipeReader(ctx, f, req)
}

// checkRecipeReader checks a recipe as the tenant's, who may be hostile:
// a safe archive (recipe.Walk's checks), the file the kind needs as a
// regular file entry of the archive itself (never a link), and for a pei
// project a valid user_config.yml, read with every file it names through
// an os.Root of the recipe unpacked, with ${VAR} expanding from nothing.
// No error carries a byte from outside the recipe, as nothing outside it
// is read. Compose layers may take items of the namespace's catalog and
// the shared one; those it takes are returned pinned to their digests,
// for the build. Recipes are checked a few at a time (Limits.MaxUnpacks).
func (s *Server) checkRecipeReader(ctx context.Context, r io.Reader, req buildRequest) ([]api.CatalogItem, *httpError) {
	release, herr := s.unpackTurn(ctx, req.repo)
	if herr != nil {
		return nil, herr
	}
	defer release()
	if req.kind == "dockerfile" {
		// BuildKit reads the context itself: a stream check is enough.
		es, err := recipe.Scan(r, s.recipeLimits())
		if err != nil {
			return nil, recipeError(err)
		}
		return nil, regularEntry(es, req.dockerfile, "dockerfile "+req.dockerfile,
			fmt.Sprintf("recipe has no file %s: put the Dockerfile at the top of the context or name it with dockerfile=PATH", req.dockerfile))
	}
	dir, err := os.MkdirTemp("", "pei-recipe-*")
	if err != nil {
		return nil, &httpError{http.StatusInternalServerError, "UNKNOWN", err.Error()}
	}
	defer os.RemoveAll(dir)
	es, err := recipe.Unpack(r, dir, s.recipeLimits())
	if err != nil {
		return nil, recipeError(err)
	}
	if herr := regularEntry(es, config.DefaultFile, config.DefaultFile,
		"recipe has no user_config.yml at its top: a pei project needs one (or submit a Dockerfile with kind=dockerfile)"); herr != nil {
		return nil, herr
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, &httpError{http.StatusInternalServerError, "UNKNOWN", err.Error()}
	}
	defer root.Close()
	// Scratch paths never reach an error (the project is read through
	// the fs.FS); stripping dir is a second guard that they do not.
	strip := func(err error) string { return strings.ReplaceAll(err.Error(), dir, ".") }
	served, catalog, err := s.servedCatalog(ctx, api.Namespace(req.repo))
	if err != nil {
		return nil, &httpError{http.StatusInternalServerError, "UNKNOWN", err.Error()}
	}
	pr, err := project.Load(project.LoadOptions{Policy: project.Recipe, FS: root.FS(), Catalog: catalog})
	if err != nil {
		return nil, badRecipe("%s", strip(err))
	}
	p := pr.Plan
	if st := req.stage; st != "" && st != "1" && st != "2" && st != "all" {
		found := st == "final" && p.Final != nil
		for _, ci := range p.Compose {
			found = found || ci.Name == st
		}
		if !found {
			return nil, badRequest("stage %q: the recipe's user_config.yml has no %s image", st, st)
		}
	}
	// A config secret from an environment variable or an absolute path is
	// the submitter's: workers serve their own secret of that id instead
	// (build.Options.Recipe), so the submission must ask for it.
	for _, sec := range pr.Config.Secrets {
		if (sec.Env != "" || filepath.IsAbs(sec.File)) && !slices.Contains(req.secrets, sec.Name) {
			return nil, badRecipe("user_config.yml: secrets.%s is read from the submitter's environment or files, which pei serve's workers never read: submit with --secret %s, and a worker holding %s serves it", sec.Name, sec.Name, sec.Name)
		}
	}
	return s.pinCatalog(ctx, served, pr.Config)
}

// unpackTurn waits, up to Limits.UnpackWait, for a place to check a recipe
// for repo in: one of Limits.MaxUnpacks places in all and of
// Limits.MaxUnpacksPerNamespace for repo's namespace, so one tenant's
// recipes (each unpacking to at most MaxContextBytes) neither keep the
// others waiting nor hold more than MaxUnpacksPerNamespace × MaxContextBytes
// of the disk. release gives both back.
func (s *Server) unpackTurn(ctx context.Context, repo string) (release func(), herr *httpError) {
	t := time.NewTimer(s.cfg.Limits.UnpackWait)
	defer t.Stop()
	ns := api.Namespace(repo)
	mine := s.namespaceUnpacks(ns)
	// The namespace's place first: a tenant waiting on its own recipes
	// holds none of the places the others share.
	select {
	case mine <- struct{}{}:
	case <-t.C:
		s.dropNamespaceUnpacks(ns, mine)
		return nil, &httpError{http.StatusServiceUnavailable, "UNAVAILABLE",
			fmt.Sprintf("the server is checking %d recipes for %s, its limit per namespace; retry in %s", cap(mine), ns, busyRetry)}
	case <-ctx.Done():
		s.dropNamespaceUnpacks(ns, mine)
		return nil, &httpError{http.StatusServiceUnavailable, "UNAVAILABLE", "the request ended while waiting to check the recipe"}
	}
	giveMine := func() {
		<-mine
		s.dropNamespaceUnpacks(ns, mine)
	}
	select {
	case s.unpacks <- struct{}{}:
		return func() { <-s.unpacks; giveMine() }, nil
	case <-t.C:
		giveMine()
		return nil, &httpError{http.StatusServiceUnavailable, "UNAVAILABLE",
			fmt.Sprintf("the server is checking %d recipes, its limit; retry in %s", cap(s.unpacks), busyRetry)}
	case <-ctx.Done():
		giveMine()
		return nil, &httpError{http.StatusServiceUnavailable, "UNAVAILABLE", "the request ended while waiting to check the recipe"}
	}
}

// namespaceUnpacks is ns's places to check recipes in, made on first use;
// it counts a user until dropNamespaceUnpacks, so an idle namespace's
// places are forgotten (tenants cannot grow the map without bound).
func (s *Server) namespaceUnpacks(ns string) chan struct{} {
	s.nsUnpacksMu.Lock()
	defer s.nsUnpacksMu.Unlock()
	if s.nsUnpacks == nil {
		s.nsUnpacks = map[string]*nsPlaces{}
	}
	p := s.nsUnpacks[ns]
	if p == nil {
		p = &nsPlaces{places: make(chan struct{}, s.cfg.Limits.MaxUnpacksPerNamespace)}
		s.nsUnpacks[ns] = p
	}
	p.users++
	return p.places
}

func (s *Server) dropNamespaceUnpacks(ns string, places chan struct{}) {
	s.nsUnpacksMu.Lock()
	defer s.nsUnpacksMu.Unlock()
	if p := s.nsUnpacks[ns]; p != nil && p.places == places {
		if p.users--; p.users == 0 {
			delete(s.nsUnpacks, ns)
		}
	}
}

// nsPlaces is one namespace's places to check recipes in and the requests
// that hold or wait for one.
type nsPlaces struct {
	places chan struct{}
	users  int
}

// regularEntry requires name to be a regular file of the recipe itself:
// not a link, not under one, not a directory. what names it in errors.
func regularEntry(es recipe.Entries, name, what, missing string) *httpError {
	if _, err := config.ResolveProjectPath("", name); err != nil {
		return badRecipe("%s: %v", what, err)
	}
	clean := path.Clean(filepath.ToSlash(name))
	for dir := path.Dir(clean); dir != "."; dir = path.Dir(dir) {
		if es[dir].Type == tar.TypeSymlink {
			return badRecipe("%s: lies under the symbolic link %s in the recipe; name the file itself", what, dir)
		}
	}
	e, ok := es[clean]
	switch {
	case !ok:
		return badRecipe("%s", missing)
	case e.Type == tar.TypeSymlink:
		return badRecipe("%s: is a symbolic link in the recipe; it must be a regular file", what)
	case !es.Regular(clean):
		return badRecipe("%s: is a directory in the recipe; it must be a regular file", what)
	}
	return nil
}

func badRecipe(format string, args ...any) *httpError {
	return &httpError{http.StatusBadRequest, "RECIPE_INVALID", fmt.Sprintf(format, args...)}
}

func recipeError(err error) *httpError {
	if errors.Is(err, recipe.ErrTooLarge) {
		return &httpError{http.StatusRequestEntityTooLarge, "SIZE_INVALID", err.Error()}
	}
	return badRecipe("%s", err.Error())
}

// recipeArtifact checks a pushed recipe artifact before the registry
// stores it and returns what queues its build once it is stored.
func (s *Server) recipeArtifact(r *http.Request, repo string, m ocispecs.Manifest) (func(string) (string, error), *httpError) {
	c, err := s.caller(r)
	if err != nil || !s.allowed(c, repo, api.ScopeBuild) {
		return nil, &httpError{http.StatusForbidden, "DENIED", fmt.Sprintf("pushing a pei recipe to %s queues a build: the token needs the build scope there", repo)}
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != api.RecipeMediaType {
		return nil, &httpError{http.StatusBadRequest, "MANIFEST_INVALID", fmt.Sprintf("a pei recipe artifact has exactly one layer of type %s", api.RecipeMediaType)}
	}
	a := m.Annotations
	get := func(k string) string {
		switch k {
		case "tag":
			return a[api.AnnotationTag]
		case "platform":
			return a[api.AnnotationPlatform]
		case "kind":
			return a[api.AnnotationKind]
		case "stage":
			return a[api.AnnotationStage]
		}
		return ""
	}
	req, herr := s.parseRequest(repo, get, func(string) []string { return []string{a[api.AnnotationSecrets]} })
	if herr != nil {
		return nil, herr
	}
	if herr := s.checkActive(r.Context(), repo); herr != nil {
		return nil, herr
	}
	layer := m.Layers[0]
	if layer.Size > s.cfg.Limits.MaxRecipeBytes {
		return nil, &httpError{http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("recipe layer of %d bytes is over the limit of %d", layer.Size, s.cfg.Limits.MaxRecipeBytes)}
	}
	rc, err := s.openBlob(r.Context(), repo, layer.Digest)
	if err != nil {
		return nil, &httpError{http.StatusBadRequest, "BLOB_UNKNOWN", fmt.Sprintf("recipe layer %s: push it before the manifest: %v", layer.Digest, err)}
	}
	catalog, herr := s.checkRecipeReader(r.Context(), rc, req)
	rc.Close()
	if herr != nil {
		return nil, herr
	}
	return func(manifest string) (string, error) {
		b, err := s.store.CreateBuild(context.WithoutCancel(r.Context()), store.Build{Repo: repo, Namespace: api.Namespace(repo), Tag: req.tag,
			Platform: req.platform, Kind: req.kind, Stage: kindStage(req), Recipe: layer.Digest.String(), RecipeSize: layer.Size,
			Subject: manifest, Secrets: req.secrets, Submitter: c.Subject, Timeout: req.timeout, Catalog: catalog})
		if err != nil {
			return "", err
		}
		s.events.notify("")
		return b.ID, nil
	}, nil
}

func (s *Server) openBlob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return nil, err
	}
	rep, err := s.registry.Repository(ctx, named)
	if err != nil {
		return nil, err
	}
	return rep.Blobs(ctx).Open(ctx, d)
}

// getBuild loads a build that must belong to repo; a build of another
// repository is "not found", so ids cannot be probed across tenants.
func (s *Server) getBuild(w http.ResponseWriter, r *http.Request, repo, id, action string) (store.Build, bool) {
	c, err := s.caller(r)
	if err != nil || !s.allowed(c, repo, action) {
		s.deny(w, c, err, action+" in "+repo)
		return store.Build{}, false
	}
	b, err := s.store.Build(r.Context(), id)
	if err != nil || b.Repo != repo {
		writeError(w, http.StatusNotFound, "BUILD_UNKNOWN", fmt.Sprintf("no build %s in %s", id, repo), nil)
		return store.Build{}, false
	}
	return b, true
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, repo, id string) {
	if b, ok := s.getBuild(w, r, repo, id, "pull"); ok {
		writeJSON(w, http.StatusOK, s.view(b))
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, repo string) {
	c, err := s.caller(r)
	if err != nil || !s.allowed(c, repo, "pull") {
		s.deny(w, c, err, "read builds in "+repo)
		return
	}
	s.writeBuilds(w, r, store.Filter{Repo: repo})
}

// listAll lists builds in every namespace the caller can read.
func (s *Server) listAll(w http.ResponseWriter, r *http.Request) {
	c, err := s.caller(r)
	if err != nil {
		s.deny(w, nil, err, "")
		return
	}
	namespaces := slices.Clone(s.cfg.AnonymousPull)
	if c != nil {
		namespaces = append(namespaces, c.Namespaces...)
	}
	if len(namespaces) == 0 {
		s.deny(w, c, nil, "read builds")
		return
	}
	f := store.Filter{}
	if !slices.Contains(namespaces, "*") {
		f.Namespaces = namespaces
	}
	s.writeBuilds(w, r, f)
}

func (s *Server) writeBuilds(w http.ResponseWriter, r *http.Request, f store.Filter) {
	q := r.URL.Query()
	f.State = api.State(q.Get("state"))
	if n, err := strconv.Atoi(q.Get("n")); err == nil {
		f.Limit = n
	}
	bs, err := s.store.Builds(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	out := api.BuildList{Builds: []api.BuildView{}}
	for _, b := range bs {
		out.Builds = append(out.Builds, s.view(b))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) cancelBuild(w http.ResponseWriter, r *http.Request, repo, id string) {
	b, ok := s.getBuild(w, r, repo, id, api.ScopeBuild)
	if !ok {
		return
	}
	if b.Done() {
		writeError(w, http.StatusConflict, "BUILD_DONE", fmt.Sprintf("build %s has already ended (%s)", id, b.State), nil)
		return
	}
	b, err := s.store.Cancel(r.Context(), id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	if b.Done() {
		s.ended(b)
	}
	s.events.notify(id)
	writeJSON(w, http.StatusAccepted, s.view(b))
}

// logs serves a build's log: Server-Sent Events that follow it to the end
// (resuming after Last-Event-ID), or plain text of what there is so far.
func (s *Server) logs(w http.ResponseWriter, r *http.Request, repo, id string) {
	b, ok := s.getBuild(w, r, repo, id, "pull")
	if !ok {
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Pei-Build-State", string(b.State))
		var after int64
		for {
			chunks, err := s.store.Logs(r.Context(), id, after)
			if err != nil || len(chunks) == 0 {
				return
			}
			for _, c := range chunks {
				io.WriteString(w, c.Data)
				after = c.Seq
			}
		}
	}
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	} else if v := r.URL.Query().Get("after"); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	fmt.Fprintf(w, "retry: 2000\n\n")
	rc.Flush()
	keepalive := time.NewTicker(s.keepaliveEvery())
	defer keepalive.Stop()
	for {
		wake := s.events.wait(id)
		chunks, err := s.store.Logs(r.Context(), id, after)
		if err != nil {
			return
		}
		for _, c := range chunks {
			fmt.Fprintf(w, "id: %d\nevent: log\n", c.Seq)
			writeSSEData(w, c.Data)
			fmt.Fprint(w, "\n")
			after = c.Seq
		}
		if len(chunks) > 0 {
			rc.Flush()
			continue
		}
		b, err := s.store.Build(r.Context(), id)
		if err != nil {
			return
		}
		if b.Done() {
			// Every chunk is out: the worker writes its last log before
			// finishing.
			js, _ := jsonCompact(s.view(b))
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", js)
			rc.Flush()
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			rc.Flush()
		}
	}
}
