package buildkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/docker/cli/cli/config/configfile"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/tonistiigi/fsutil"
)

// DockerfileOptions configure BuildDockerfile.
type DockerfileOptions struct {
	ContextDir string
	Dockerfile string // path inside ContextDir
	Platform   string // e.g. linux/amd64, or a comma-separated list; "" is the host's
	Secrets    map[string]string
	Dest       string // the OCI tarball written
	Auth       *configfile.ConfigFile
	// SourceDateEpoch clamps timestamps in the image; -1 leaves them.
	SourceDateEpoch int64
	Progress        string
	Stderr          io.Writer
	// CacheImports and CacheExports are BuildKit cache sources and
	// destinations (e.g. a registry shared by several workers).
	CacheImports []bkclient.CacheOptionsEntry
	CacheExports []bkclient.CacheOptionsEntry
	// CacheNamespace is the tenant a pei serve build is for: every cache
	// mount id of the Dockerfile goes under CacheNamespace(ns), whatever
	// id the Dockerfile names, and its steps' results are its own
	// (TenantHostname).
	CacheNamespace string
	// HostNetwork grants RUN --network=host (the network.host entitlement);
	// without it such a step is refused. security.insecure never is.
	HostNetwork bool
}

// BuildDockerfile builds a plain Dockerfile with BuildKit's built-in
// dockerfile frontend into an OCI tarball: what pei serve builds when a
// recipe is a Dockerfile and its context rather than a pei project.
func BuildDockerfile(ctx context.Context, c *bkclient.Client, opt DockerfileOptions) (string, error) {
	ctxFS, err := fsutil.NewFS(opt.ContextDir)
	if err != nil {
		return "", err
	}
	dfDir := filepath.Join(opt.ContextDir, filepath.Dir(filepath.FromSlash(opt.Dockerfile)))
	dfFS, err := fsutil.NewFS(dfDir)
	if err != nil {
		return "", err
	}
	var srcs []secretsprovider.Source
	for id, file := range opt.Secrets {
		srcs = append(srcs, secretsprovider.Source{ID: id, FilePath: file})
	}
	secretStore, err := secretsprovider.NewStore(srcs)
	if err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	attrs := map[string]string{"filename": path.Base(opt.Dockerfile)}
	if opt.Platform != "" {
		// One or several (an image index), as the frontend takes them.
		var list []string
		for _, one := range strings.Split(opt.Platform, ",") {
			p, err := platforms.Parse(one)
			if err != nil {
				return "", err
			}
			list = append(list, platforms.Format(p))
		}
		attrs["platform"] = strings.Join(list, ",")
	}
	if opt.CacheNamespace != "" {
		attrs["build-arg:BUILDKIT_CACHE_MOUNT_NS"] = CacheNamespace(opt.CacheNamespace)
		attrs["hostname"] = TenantHostname(opt.CacheNamespace)
	}
	exp := map[string]string{"compression": "gzip", "force-compression": "true"}
	if opt.SourceDateEpoch >= 0 {
		attrs["build-arg:SOURCE_DATE_EPOCH"] = strconv.FormatInt(opt.SourceDateEpoch, 10)
		exp["rewrite-timestamp"] = "true"
	}
	dest := opt.Dest
	so := bkclient.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		Session:       []session.Attachable{secretsprovider.NewSecretProvider(secretStore), authSession(opt.Auth)},
		Exports: []bkclient.ExportEntry{{Type: "oci", Attrs: exp, Output: func(map[string]string) (io.WriteCloser, error) {
			return os.Create(dest)
		}}},
		CacheImports: opt.CacheImports,
		CacheExports: opt.CacheExports,
	}
	if opt.HostNetwork {
		so.AllowedEntitlements = []string{"network.host"}
	}
	prog, err := newProgress(opt.Progress, opt.Stderr)
	if err != nil {
		return "", err
	}
	// Solve closes the status channel when it returns, ending the display.
	resp, err := c.Solve(ctx, nil, so, prog.ch)
	<-prog.done
	if err != nil {
		return "", fmt.Errorf("build %s: %w", opt.Dockerfile, explainEntitlement(err))
	}
	return resp.ExporterResponse["containerimage.digest"], nil
}

// explainEntitlement says why BuildKit refused a step that asked for the
// host's network or for privileges, and what the builder can do.
func explainEntitlement(err error) error {
	switch msg := err.Error(); {
	case strings.Contains(msg, "network.host is not allowed"):
		return fmt.Errorf("%w: a step asks for the host's network (RUN --network=host), which this build may not use: "+
			"it runs in a network namespace of its own (remove --network=host; an admin may allow it for a namespace, see docs/serve.md): %v", ErrHostNetwork, err)
	case strings.Contains(msg, "security.insecure is not allowed"):
		return fmt.Errorf("%w: a step asks to run privileged (RUN --security=insecure), which pei never allows: %v", ErrInsecure, err)
	}
	return err
}

// ErrInsecure is matched by the refusal of a privileged step.
var ErrInsecure = errors.New("the build may not run privileged steps")
