// Package api is the wire between pei serve and the programs that talk to
// it: the request and response bodies of its HTTP API (docs/api.md,
// docs/openapi.yaml), build states, token scopes, the recipe artifact's
// media types and annotations, and the naming rules both sides apply
// (namespaces, tags, the build cache's repository). The server
// (service, store), the client, the worker and the CLI import it; it
// imports no other pei package, so a client never depends on the server.
package api
