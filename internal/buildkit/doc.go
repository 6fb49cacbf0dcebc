// Package buildkit builds a plan's images with BuildKit: it turns each
// planned stage into LLB (client/llb) directly from the plan — the same plan
// the Dockerfile renderer reads, with no Dockerfile parsed back — and solves
// it through BuildKit's Go client with progress rendered by progressui.
package buildkit
