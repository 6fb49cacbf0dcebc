package submit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"

	"github.com/docker/go-units"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/project"
	"github.com/pei-dev/pei/internal/recipe"
)

// Options say what to submit where.
type Options struct {
	Dir    string // a pei project, or the Dockerfile's context
	Server string // pei serve's URL
	Token  string // a pei token with the build scope in the repository's namespace
	// Build says what to build; Kind is set here: dockerfile when
	// Dockerfile names one, else pei.
	Build client.SubmitOptions
	// Follow waits for the build's end, streaming its log to Log.
	Follow bool
	// Log gets the queued build's line and, with Follow, its log.
	Log io.Writer
}

// FailedError is a followed build that ended other than succeeded.
type FailedError struct{ Build api.BuildView }

func (e *FailedError) Error() string {
	return fmt.Sprintf("build %s %s: %s", e.Build.ID, e.Build.State, e.Build.Error)
}

// Run submits and returns the build: as queued, or with Follow as it
// ended, its pushed image in Image. A followed build that failed or was
// canceled is a *FailedError. A pei project is checked first with the
// server's catalog for the repository's namespace (what its compose
// layers' catalog: NAME may take); its config errors are project.Load's
// (config.Errors), unwrapped, and nothing is uploaded.
func Run(ctx context.Context, o Options) (api.BuildView, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	c := client.New(o.Server, o.Token)
	if o.Build.Dockerfile != "" {
		o.Build.Kind = api.KindDockerfile
	} else {
		o.Build.Kind = api.KindPei
		served, err := servedCatalog(ctx, c, api.Namespace(o.Build.Repo))
		if err != nil {
			return api.BuildView{}, err
		}
		// The server checks too, the same way (a recipe: nothing outside
		// the project, ${VAR} from nothing, its catalog for compose
		// layers); failing here saves the upload.
		if _, err := project.Load(project.LoadOptions{Policy: project.Recipe, Dir: o.Dir, Catalog: served}); err != nil {
			return api.BuildView{}, err
		}
	}
	var buf bytes.Buffer
	if err := recipe.Pack(o.Dir, nil, &buf); err != nil {
		return api.BuildView{}, err
	}
	b, err := c.Submit(ctx, o.Build, bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return api.BuildView{}, fmt.Errorf("submit: %w", err)
	}
	fmt.Fprintf(o.Log, "build %s queued (%s, recipe %s)\n", b.ID, c.Server+b.Links.Self, units.HumanSize(float64(buf.Len())))
	if !o.Follow {
		return b, nil
	}
	end, err := c.Follow(ctx, o.Build.Repo, b.ID, func(ev client.Event) { fmt.Fprintln(o.Log, ev.Data) })
	if err != nil {
		return api.BuildView{}, err
	}
	if end.State != api.Succeeded {
		return end, &FailedError{Build: end}
	}
	return end, nil
}

// servedCatalog is what builds in namespace ns may take from the server's
// catalog, as the server reads it when it checks the recipe: ns's items,
// then the shared catalog's, their images in the server's registry. A
// server without catalogs (404) has none.
func servedCatalog(ctx context.Context, c *client.Client, ns string) ([]config.CatalogItem, error) {
	cat, err := c.Catalog(ctx, ns)
	var e *client.Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the catalog of %s on %s: %w", ns, c.Server, err)
	}
	host := c.Server
	if u, err := url.Parse(c.Server); err == nil {
		host = u.Host
	}
	var out []config.CatalogItem
	for _, it := range slices.Concat(cat.Items, cat.Shared) {
		out = append(out, config.CatalogItem{Name: it.Name, Lower: config.ImageRef{Raw: host + "/" + it.Lower},
			Upper: config.ImageRef{Raw: host + "/" + it.Upper}, Exclude: it.Exclude})
	}
	return out, nil
}
