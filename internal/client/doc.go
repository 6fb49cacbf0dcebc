// Package client talks to pei serve's build endpoints: what pei submit
// and pei worker use (the registry side is any OCI client's). It speaks
// package api's types and imports nothing of the server's.
package client
