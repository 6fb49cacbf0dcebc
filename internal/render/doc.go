// Package render turns a plan into files: the stage Dockerfiles, the
// in-image scripts (from embedded templates), docker-compose.yml (built from
// compose-go's types) and, on request, a merged Dockerfile with build and
// run scripts. It only produces bytes; it never runs anything or touches
// the file system.
package render
