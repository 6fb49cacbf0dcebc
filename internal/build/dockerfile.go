package build

import (
	"context"
	"io"

	"github.com/docker/cli/cli/config/configfile"
	bkclient "github.com/moby/buildkit/client"

	"github.com/pei-dev/pei/internal/buildkit"
)

// DockerfileOptions configure Dockerfile: a plain Dockerfile build (pei
// serve's kind=dockerfile) of a context directory into an OCI tarball.
type DockerfileOptions struct {
	ContextDir string
	// Dockerfile is its path in ContextDir.
	Dockerfile string
	// Platform is one platform or a comma-separated list ("" the host's).
	Platform     string
	Secrets      map[string]string // id → file on this machine
	Dest         string            // the OCI tarball to write
	Auth         *configfile.ConfigFile
	CacheImports []bkclient.CacheOptionsEntry
	CacheExports []bkclient.CacheOptionsEntry
	// CacheNamespace keeps a tenant's cache mounts its own.
	CacheNamespace string
	Daemon         Daemon
	Progress       string
	Stderr         io.Writer
}

// Dockerfile builds a Dockerfile with BuildKit's dockerfile frontend.
// Timestamps are left as the Dockerfile makes them.
// It returns the image's manifest digest.
func Dockerfile(ctx context.Context, opts DockerfileOptions) (string, error) {
	conn, err := opts.Daemon.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.close()
	return buildkit.BuildDockerfile(ctx, conn.client, buildkit.DockerfileOptions{
		ContextDir: opts.ContextDir, Dockerfile: opts.Dockerfile, Platform: opts.Platform, Secrets: opts.Secrets, Dest: opts.Dest,
		Auth: opts.Auth, SourceDateEpoch: -1, Progress: opts.Progress, Stderr: opts.Stderr,
		CacheImports: opts.CacheImports, CacheExports: opts.CacheExports, CacheNamespace: opts.CacheNamespace,
		HostNetwork: opts.Daemon.Network.HostAllowed,
	})
}
