package api

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Token scopes an admin grants (pei token create --scope).
const (
	ScopePull   = "pull"
	ScopePush   = "push"
	ScopeBuild  = "build"
	ScopeAdmin  = "admin"  // every action, delete included
	ScopeWorker = "worker" // lease and run builds
)

// ValidScopes lists the scopes a token can have.
var ValidScopes = []string{ScopePull, ScopePush, ScopeBuild, ScopeAdmin, ScopeWorker}

// ScopeError is a scope no token can have.
type ScopeError struct{ Scope string }

func (e *ScopeError) Error() string {
	return fmt.Sprintf("scope %q: use %s", e.Scope, strings.Join(ValidScopes, ", "))
}

// ErrNoNamespaces is a token that could do nothing: scopes other than
// worker act in namespaces, and it names none.
var ErrNoNamespaces = errors.New("name the namespaces the token may use (or * for all)")

// CheckGrant checks what a token is to be granted: known scopes (else a
// *ScopeError), valid namespaces (else a *NamespaceError), and at least
// one namespace unless the token is a worker's alone (else
// ErrNoNamespaces).
func CheckGrant(namespaces, scopes []string) error {
	for _, s := range scopes {
		if !slices.Contains(ValidScopes, s) {
			return &ScopeError{Scope: s}
		}
	}
	for _, ns := range namespaces {
		if err := CheckNamespace(ns); err != nil {
			return err
		}
	}
	if len(namespaces) == 0 && !(len(scopes) == 1 && scopes[0] == ScopeWorker) {
		return ErrNoNamespaces
	}
	return nil
}
