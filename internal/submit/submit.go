package submit

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/docker/go-units"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/client"
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
// canceled is a *FailedError. A pei project's config errors are
// project.Load's (config.Errors), unwrapped, and nothing is uploaded.
func Run(ctx context.Context, o Options) (api.BuildView, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Build.Dockerfile != "" {
		o.Build.Kind = api.KindDockerfile
	} else {
		o.Build.Kind = api.KindPei
		// The server checks too, the same way (a recipe: nothing outside
		// the project, ${VAR} from nothing); failing here saves the upload.
		if _, err := project.Load(project.LoadOptions{Policy: project.Recipe, Dir: o.Dir}); err != nil {
			return api.BuildView{}, err
		}
	}
	var buf bytes.Buffer
	if err := recipe.Pack(o.Dir, nil, &buf); err != nil {
		return api.BuildView{}, err
	}
	c := client.New(o.Server, o.Token)
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
