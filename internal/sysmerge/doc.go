// Package sysmerge merges the shared system files that several layers of a
// composed image change (dpkg's status and info files, passwd-style
// databases, alternatives, line lists, caches) by their format, three-way:
// the runtime base's file plus, for each diff in order, what the diff's upper
// changed relative to its lower. Letting the upper layer's whole file win, as
// a plain MergeOp does, leaves dpkg and apt believing in only one diff's
// packages and drops the users another diff added.
//
// It is pure: callers read the files (from the layers, inside the build) and
// pass their bytes; nothing here runs commands or touches a filesystem. Steps
// that only a command can do (ldconfig, update-ca-certificates, ...) are
// returned as Rebuild findings for the caller to run once after the merge.
package sysmerge
