package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pei-dev/pei/internal/image"
)

// Flags are pei inspect's flags as written, and the environment (the
// variables --secret-env names, DOCKER_CONFIG) they are read with.
type Flags struct {
	Image      string
	Compare    string // another image to compare Image with
	Platform   string // "" means the host's
	Secrets    []string
	SecretEnvs []string
	Top        int
	// CI gates the report on MinEfficiency, MaxWasted and secrets.
	CI            bool
	MinEfficiency float64
	MaxWasted     string // a size like 20MB; "" means no maximum
	Getenv        func(string) string
}

// Request is one inspection: Image analysed, or compared with Compare.
type Request struct {
	Image   string
	Compare string
	// Open is how both images are opened (platform, credentials).
	Open    image.OpenOptions
	Analyze Options
	// Gate, when set, is checked against Image's report (not a comparison).
	Gate *Gate
}

// Request reads the flags; every error names its flag.
func (f Flags) Request() (Request, error) {
	getenv := f.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	req := Request{Image: f.Image, Compare: f.Compare, Analyze: Options{Secrets: append([]string(nil), f.Secrets...), Top: f.Top}}
	g := Gate{MinEfficiency: f.MinEfficiency, MaxWasted: -1}
	if f.MaxWasted != "" {
		n, err := units.FromHumanSize(f.MaxWasted)
		if err != nil {
			return Request{}, fmt.Errorf("--max-wasted %q: give a size like 20MB: %w", f.MaxWasted, err)
		}
		g.MaxWasted = n
	}
	if f.CI {
		req.Gate = &g
	}
	for _, name := range f.SecretEnvs {
		v := getenv(name)
		if v == "" {
			return Request{}, fmt.Errorf("--secret-env %s: the variable is not set", name)
		}
		req.Analyze.Secrets = append(req.Analyze.Secrets, v)
	}
	if f.Platform != "" {
		p, err := v1.ParsePlatform(f.Platform)
		if err != nil {
			return Request{}, fmt.Errorf("--platform %q: %w", f.Platform, err)
		}
		req.Open.Platform = *p
	}
	auth, err := image.LoadAuth(getenv("DOCKER_CONFIG"))
	if err != nil {
		return Request{}, err
	}
	req.Open.Keychain = image.Keychain(auth)
	return req, nil
}

// Result is an inspection's outcome: a Report, or a Comparison.
type Result struct {
	Report     *Report
	Comparison *Comparison
	// Problems are how Report breaks the request's Gate; none means it
	// passes (or there was no gate).
	Problems []string
	top      int
}

// Run opens the image (and the one to compare it with) and analyses or
// compares them.
func Run(ctx context.Context, req Request) (Result, error) {
	img, done, err := image.Open(ctx, req.Image, req.Open)
	if err != nil {
		return Result{}, err
	}
	defer done()
	if req.Compare != "" {
		other, odone, err := image.Open(ctx, req.Compare, req.Open)
		if err != nil {
			return Result{}, err
		}
		defer odone()
		c, err := Compare(req.Image, img, req.Compare, other)
		if err != nil {
			return Result{}, fmt.Errorf("compare %s with %s: %w", req.Image, req.Compare, err)
		}
		return Result{Comparison: &c, top: req.Analyze.Top}, nil
	}
	r, err := Analyze(req.Image, img, req.Analyze)
	if err != nil {
		return Result{}, fmt.Errorf("inspect %s: %w", req.Image, err)
	}
	res := Result{Report: &r, top: req.Analyze.Top}
	if req.Gate != nil {
		res.Problems = req.Gate.Check(r)
	}
	return res, nil
}

// Write prints the result as text, or as indented JSON.
func (r Result) Write(w io.Writer, asJSON bool) error {
	var v any = r.Report
	if r.Comparison != nil {
		v = r.Comparison
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	if r.Comparison != nil {
		return WriteComparison(w, *r.Comparison, r.top)
	}
	return WriteText(w, *r.Report)
}
