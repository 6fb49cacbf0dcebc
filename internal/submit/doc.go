// Package submit is pei submit: it packs a project directory (a pei
// project, whose config is checked first, with the server's catalog, or
// a Dockerfile and its context) into a recipe, uploads it to pei serve
// and, when asked, follows the build's log until the build ends.
package submit
