// Package buildkit builds a plan's images with BuildKit: it turns each
// planned stage into LLB (client/llb) directly from the plan — the same plan
// the Dockerfile renderer reads, with no Dockerfile parsed back — and solves
// it through BuildKit's Go client with progress rendered by progressui.
// Composed images (compose:) are MergeOps of images, DiffOps and runner
// installs; inside the same build, the shared files their layers change are
// read through the gateway, merged by internal/sysmerge and written over
// the merge, and the caches are rebuilt in one step.
package buildkit
