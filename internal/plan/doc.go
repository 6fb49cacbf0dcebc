// Package plan turns a validated, defaulted config into an engine-neutral
// build plan: for each stage, the base and output images, the ordered build
// steps (each with the inputs that key its cache, the mounts it needs,
// whether it runs an on_build hook, and the config position that caused
// it), the data the in-image scripts are generated from, and the run-time
// settings of the stage's container. Renderers (Dockerfile, Compose) and
// build backends read only the Plan.
package plan
