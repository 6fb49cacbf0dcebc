// Package project is the library API behind pei's commands on a project
// directory: Create scaffolds one, Configure turns its user_config.yml into
// build files (all or nothing), Remove deletes what Compose made from it.
package project
