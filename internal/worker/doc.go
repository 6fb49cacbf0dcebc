// Package worker is pei worker: it leases builds from pei serve (through
// package client, in package api's terms), builds them with BuildKit (a
// pei project through the same path as pei build, a Dockerfile through
// BuildKit's dockerfile frontend), pushes the image to the server's
// registry with the build's own credentials and reports back,
// heartbeating so a dead worker's build is handed to another. It imports
// nothing of the server's.
package worker
