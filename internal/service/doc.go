// Package service is pei serve: an OCI distribution registry (the
// distribution/distribution library, not a hand-written one) with a Docker
// token server in front of it and build endpoints beside it. Users push and
// pull images as from any registry and submit recipes (pei projects or
// Dockerfiles with their context) that workers (package worker) lease,
// build with BuildKit and push back here. What goes over the wire (bodies,
// build states, scopes, the namespace rule) is package api's, shared with
// the client; state lives in package store. Tokens administers the API
// tokens of a server's data directory (pei token).
package service
