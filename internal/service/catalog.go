package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/distribution/reference"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/store"
)

// maxCatalogBody bounds a catalog item's JSON.
const maxCatalogBody = 64 << 10

// shared reports whether ns is the shared catalog's namespace.
func (s *Server) shared(ns string) bool {
	return s.cfg.SharedNamespace != "" && ns == s.cfg.SharedNamespace
}

// catalogGrant is what a caller may do with namespace ns's catalog: read
// it where it may pull, write it where it may push (in the shared
// namespace, admin tokens only: grant). Build credentials have neither.
func (s *Server) catalogGrant(c *claims, ns, action string) bool {
	var t *store.Token
	if c != nil {
		if c.Build != "" {
			return false
		}
		t = &store.Token{Namespaces: c.Namespaces, Scopes: c.Scopes}
	}
	return len(s.grant(t, ns+"/catalog", []string{action})) > 0
}

// catalogRoutes serves /v2/_pei/catalogs/{ns}[/{name}].
func (s *Server) catalogRoutes(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if ns == "*" || api.CheckNamespace(ns) != nil {
		writeError(w, http.StatusNotFound, "NAME_INVALID", fmt.Sprintf("invalid namespace %q", ns), nil)
		return
	}
	c, err := s.caller(r)
	action := "pull"
	if r.Method == http.MethodPut || r.Method == http.MethodDelete {
		action = "push"
	}
	if err != nil || !s.catalogGrant(c, ns, action) {
		what := "read the catalog of " + ns
		if action == "push" {
			what = "write the catalog of " + ns
			if s.shared(ns) {
				what += " (the shared catalog: admin tokens only)"
			}
		}
		s.deny(w, c, err, what)
		return
	}
	switch {
	case name == "" && r.Method == http.MethodGet:
		s.listCatalog(w, r, ns)
	case name == "":
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "GET a catalog; PUT, GET or DELETE one of its items", nil)
	case r.Method == http.MethodGet:
		it, err := s.store.CatalogItem(r.Context(), ns, name)
		if itemError(w, err, ns, name) {
			return
		}
		writeJSON(w, http.StatusOK, it)
	case r.Method == http.MethodPut:
		s.putCatalogItem(w, r, c, ns, name)
	case r.Method == http.MethodDelete:
		if itemError(w, s.store.DeleteCatalogItem(r.Context(), ns, name), ns, name) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "PUT, GET or DELETE a catalog item", nil)
	}
}

// itemError answers a store error about item ns/name, if there is one.
func itemError(w http.ResponseWriter, err error, ns, name string) bool {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "CATALOG_UNKNOWN", fmt.Sprintf("the catalog of %s has no item %q", ns, name), nil)
	case err != nil:
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
	}
	return err != nil
}

func (s *Server) listCatalog(w http.ResponseWriter, r *http.Request, ns string) {
	own, err := s.store.CatalogItems(r.Context(), ns)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	out := api.Catalog{Namespace: ns, Items: own}
	if s.cfg.SharedNamespace != "" && !s.shared(ns) {
		out.SharedNamespace = s.cfg.SharedNamespace
		if out.Shared, err = s.sharedItems(r.Context(), own); err != nil {
			writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// sharedItems is the shared catalog's items that own does not shadow.
func (s *Server) sharedItems(ctx context.Context, own []api.CatalogItem) ([]api.CatalogItem, error) {
	all, err := s.store.CatalogItems(ctx, s.cfg.SharedNamespace)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(it api.CatalogItem) bool {
		return slices.ContainsFunc(own, func(o api.CatalogItem) bool { return o.Name == it.Name })
	}), nil
}

func (s *Server) putCatalogItem(w http.ResponseWriter, r *http.Request, c *claims, ns, name string) {
	var it api.CatalogItem
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCatalogBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&it); err != nil {
		writeError(w, http.StatusBadRequest, "CATALOG_INVALID", fmt.Sprintf("catalog item: %v: send {\"lower\": \"%s/DEV-BASE:TAG\", \"upper\": \"%s/LANG:TAG\", \"exclude\": [\"/PATH\"]} (at most %d bytes)", err, ns, ns, maxCatalogBody), nil)
		return
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		writeError(w, http.StatusBadRequest, "CATALOG_INVALID", "catalog item: send one JSON object", nil)
		return
	}
	switch {
	case it.Name == "":
		it.Name = name
	case it.Name != name:
		writeError(w, http.StatusBadRequest, "CATALOG_INVALID", fmt.Sprintf("the item is named %q in the body and %q in the path; leave name out of the body", it.Name, name), nil)
		return
	}
	if it.Namespace != "" || !it.Updated.IsZero() || it.UpdatedBy != "" {
		writeError(w, http.StatusBadRequest, "CATALOG_INVALID", "namespace, updated and updated_by are the server's; leave them out", nil)
		return
	}
	if err := api.CheckCatalogItem(ns, it); err != nil {
		writeError(w, http.StatusBadRequest, "CATALOG_INVALID", fmt.Sprintf("catalog item %s/%s: %v", ns, name, err), nil)
		return
	}
	// Both images must be there now: an item naming nothing would fail
	// every build that takes it.
	for _, ref := range []struct{ field, ref string }{{"lower", it.Lower}, {"upper", it.Upper}} {
		if _, err := s.resolveImage(r.Context(), ns, ref.ref); err != nil {
			writeError(w, http.StatusBadRequest, "CATALOG_INVALID", fmt.Sprintf("catalog item %s/%s: %s: %v", ns, name, ref.field, err), nil)
			return
		}
	}
	stored, created, err := s.store.PutCatalogItem(r.Context(), ns, it, c.Subject, s.cfg.Limits.MaxCatalogItems)
	if errors.Is(err, store.ErrCatalogFull) {
		writeError(w, http.StatusConflict, "CATALOG_FULL", fmt.Sprintf("the catalog of %s holds %d items, the limit; delete one first", ns, s.cfg.Limits.MaxCatalogItems), nil)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", api.CatalogItemPath(ns, name))
	writeJSON(w, status, stored)
}

// resolveImage pins a catalog image of namespace ns to its digest in
// this registry: HOST/REPO[:TAG]@DIGEST.
func (s *Server) resolveImage(ctx context.Context, ns, ref string) (string, error) {
	r, err := api.CatalogImage(ns, ref)
	if err != nil {
		return "", err
	}
	named := r.(reference.Named)
	repo, err := s.registry.Repository(ctx, named)
	if err != nil {
		return "", err
	}
	if d, ok := r.(reference.Digested); ok {
		exists, err := repo.Manifests(ctx)
		if err == nil {
			var ok bool
			ok, err = exists.Exists(ctx, d.Digest())
			if err == nil && !ok {
				err = errors.New("no such manifest")
			}
		}
		if err != nil {
			return "", fmt.Errorf("%s: not in this registry (%v): push it first", ref, err)
		}
		return s.host() + "/" + reference.FamiliarString(r), nil
	}
	tag := r.(reference.Tagged).Tag()
	desc, err := repo.Tags(ctx).Get(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("%s: not in this registry (%v): push it first", ref, err)
	}
	return s.host() + "/" + named.Name() + ":" + tag + "@" + desc.Digest.String(), nil
}

// servedCatalog is what builds in namespace ns may take from pei serve's
// catalog: ns's items, then the shared catalog's that they do not shadow,
// as config items whose images are this registry's (not yet pinned).
func (s *Server) servedCatalog(ctx context.Context, ns string) ([]api.CatalogItem, []config.CatalogItem, error) {
	items, err := s.store.CatalogItems(ctx, ns)
	if err != nil {
		return nil, nil, err
	}
	if s.cfg.SharedNamespace != "" && !s.shared(ns) {
		more, err := s.sharedItems(ctx, items)
		if err != nil {
			return nil, nil, err
		}
		items = append(items, more...)
	}
	cfg := make([]config.CatalogItem, len(items))
	for i, it := range items {
		cfg[i] = config.CatalogItem{Name: it.Name, Lower: config.ImageRef{Raw: s.host() + "/" + it.Lower},
			Upper: config.ImageRef{Raw: s.host() + "/" + it.Upper}, Exclude: it.Exclude}
	}
	return items, cfg, nil
}

// pinCatalog resolves the served items a project's compose layers take
// (those its own catalog does not hold) to digests, so the build uses
// what the catalog held when it was queued.
func (s *Server) pinCatalog(ctx context.Context, served []api.CatalogItem, cfg config.Config) ([]api.CatalogItem, *httpError) {
	var out []api.CatalogItem
	for _, c := range cfg.Compose {
		for _, l := range c.Layers {
			if l.Catalog == "" || slices.ContainsFunc(cfg.Catalog, func(it config.CatalogItem) bool { return it.Name == l.Catalog }) ||
				slices.ContainsFunc(out, func(it api.CatalogItem) bool { return it.Name == l.Catalog }) {
				continue
			}
			i := slices.IndexFunc(served, func(it api.CatalogItem) bool { return it.Name == l.Catalog })
			if i < 0 {
				continue // the config's check said so
			}
			it := served[i]
			lower, err := s.resolveImage(ctx, it.Namespace, it.Lower)
			if err == nil {
				it.Lower = lower
				it.Upper, err = s.resolveImage(ctx, it.Namespace, it.Upper)
			}
			if err != nil {
				return nil, badRecipe("catalog item %s/%s (compose.%s): %v; its owner must push it again or fix the item", it.Namespace, it.Name, c.Name, err)
			}
			out = append(out, it)
		}
	}
	return out, nil
}
