// Package build is the one typed API behind every way pei builds an image:
// pei build and pei base (the CLI), and pei worker (a tenant's recipe
// from pei serve). Build builds a pei project (configured through
// project, planned once, turned into LLB by buildkit), Dockerfile builds
// a plain Dockerfile and Base bootstraps a Debian base into the base
// store. Options are values: outputs, targets, secrets, cache entries,
// platforms, credentials and the daemon; Flags and BaseFlags read the
// CLI's flag strings and environment into them, and the worker fills them
// directly. Daemon is the one place that finds or starts buildkitd and
// connects to it.
package build
