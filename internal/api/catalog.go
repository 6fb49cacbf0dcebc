package api

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// CatalogItem is a prebuilt diff in pei serve's catalog of a namespace: a
// language (or anything) built on a dev base, which a pei project's
// compose layer takes with catalog: NAME. Written, Lower and Upper are
// repositories of the server in the catalog's namespace with a tag or a
// digest (team-a/lang-python:3.11-bookworm); in a lease they are full
// references pinned by digest (HOST/team-a/lang-python:3.11-bookworm@sha256:...).
type CatalogItem struct {
	Name    string   `json:"name"`
	Lower   string   `json:"lower"`
	Upper   string   `json:"upper"`
	Exclude []string `json:"exclude,omitempty"`
	// Set by the server.
	Namespace string    `json:"namespace,omitempty"`
	Updated   time.Time `json:"updated,omitzero"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}

// Catalog is a namespace's catalog as GET /v2/_pei/catalogs/{ns} shows
// it: its own items and the shared catalog's items its builds may take
// (those its own do not shadow), each sorted by name.
type Catalog struct {
	Namespace       string        `json:"namespace"`
	Items           []CatalogItem `json:"items"`
	SharedNamespace string        `json:"shared_namespace,omitempty"`
	Shared          []CatalogItem `json:"shared,omitempty"`
}

// Limits of a catalog item, so a tenant's catalog stays small.
const (
	MaxCatalogExcludes  = 64
	maxCatalogPathBytes = 4096
)

// CatalogPath is a namespace's catalog; CatalogItemPath one item of it.
func CatalogPath(ns string) string           { return "/v2/_pei/catalogs/" + ns }
func CatalogItemPath(ns, name string) string { return CatalogPath(ns) + "/" + name }

var catalogNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ValidCatalogName reports whether name can name a catalog item: what a
// config's catalog key may be, at most 128 characters.
func ValidCatalogName(name string) bool { return catalogNameRE.MatchString(name) }

// CheckCatalogItem checks an item written to namespace ns's catalog: a
// usable name, lower and upper images of ns (CatalogImage), clean
// absolute excludes. Errors name the field.
func CheckCatalogItem(ns string, it CatalogItem) error {
	var errs []error
	if !ValidCatalogName(it.Name) {
		errs = append(errs, fmt.Errorf("name %q: use letters, digits, '_', '.' and '-' (at most 128, starting with a letter or digit)", it.Name))
	}
	for _, f := range []struct{ field, ref string }{{"lower", it.Lower}, {"upper", it.Upper}} {
		if _, err := CatalogImage(ns, f.ref); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.field, err))
		}
	}
	if len(it.Exclude) > MaxCatalogExcludes {
		errs = append(errs, fmt.Errorf("exclude: %d paths, at most %d", len(it.Exclude), MaxCatalogExcludes))
	}
	for i, e := range it.Exclude {
		if !strings.HasPrefix(e, "/") || path.Clean(e) != e || e == "/" || len(e) > maxCatalogPathBytes || strings.ContainsRune(e, 0) {
			errs = append(errs, fmt.Errorf("exclude[%d] %q: give a clean absolute path below /", i, e))
		}
	}
	return errors.Join(errs...)
}

// CatalogImage reads an image of namespace ns's catalog: a repository of
// this registry in ns (no host), with a tag, a digest or both.
func CatalogImage(ns, ref string) (reference.Reference, error) {
	r, err := reference.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference (REPOSITORY:TAG or REPOSITORY@DIGEST): %v", ref, err)
	}
	named, ok := r.(reference.Named)
	if !ok {
		return nil, fmt.Errorf("%q: name a repository of this registry, e.g. %s/lang-python:3.11-bookworm", ref, ns)
	}
	name := named.Name()
	if Namespace(name) != ns || !strings.Contains(name, "/") {
		return nil, fmt.Errorf("%q is not in namespace %s: a catalog item's images are repositories of this registry in the catalog's namespace, written without the host (e.g. %s/lang-python:3.11-bookworm)", ref, ns, ns)
	}
	_, tagged := r.(reference.Tagged)
	_, digested := r.(reference.Digested)
	if !tagged && !digested {
		return nil, fmt.Errorf("%q: give a tag or a digest (e.g. %s:1)", ref, name)
	}
	return r, nil
}
