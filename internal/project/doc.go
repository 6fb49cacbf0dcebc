// Package project is the library API behind pei's commands on a project
// directory: Load reads, validates and plans one under a Policy (the
// user's own project, or a tenant's recipe that may reach nothing outside
// itself), Create scaffolds one, Configure writes its build files from
// what Load gives (all or nothing), Remove deletes what Compose made from
// it. Building is package build's.
package project
