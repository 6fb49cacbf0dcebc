// Package store keeps pei serve's state: API tokens, the build queue,
// build logs and the referrers index, in SQLite (one server) or PostgreSQL (several replicas
// sharing one queue). Both go through database/sql with the same queries;
// only placeholders and the queue's row locking differ.
//
// Its row types (Token, Build) are its own: they hold what never goes on
// the wire (webhook secrets, lease deadlines, delivery state). Build states,
// scopes and the namespace rule are package api's, the values the API
// shows, so a state the store writes is the one a client reads; a token
// whose grant api.CheckGrant refuses is never stored.
package store
