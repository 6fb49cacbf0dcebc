// Package secretflag reads the --secret flags of pei build and pei
// worker, comma-separated key=value fields naming a secret's id and its
// source: id=ID,src=FILE or id=ID,env=VAR. One parser, so both commands
// take the same form.
package secretflag
