package api

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// Namespace is a repository's tenant: its first path component.
func Namespace(repo string) string {
	ns, _, _ := strings.Cut(repo, "/")
	return ns
}

// namespaceRE is a repository name component as the OCI distribution
// spec has it: a namespace can be the first of any repository's.
var namespaceRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// NamespaceError is a namespace no repository name can start with.
type NamespaceError struct{ Namespace string }

func (e *NamespaceError) Error() string {
	return fmt.Sprintf("namespace %q: use lower-case letters, digits and separators (., _, -), like a repository name's first component, or * for all", e.Namespace)
}

// CheckNamespace says whether ns can name a tenant in a token or a
// server's configuration: a repository name's first component, or * for
// every namespace. It returns a *NamespaceError if not.
func CheckNamespace(ns string) error {
	if ns == "*" || namespaceRE.MatchString(ns) {
		return nil
	}
	return &NamespaceError{Namespace: ns}
}

// tagRE is the distribution spec's tag grammar (distribution/reference's
// one definition), anchored.
var tagRE = regexp.MustCompile(`^(?:` + reference.TagRegexp.String() + `)$`)

// ValidTag reports whether tag can tag an image: letters, digits, '_',
// '.' and '-', at most 128, not starting with '.' or '-'.
func ValidTag(tag string) bool { return tagRE.MatchString(tag) }

// CacheRepo is the repository workers keep a repository's build cache in.
func CacheRepo(repo string) string { return repo + "/buildcache" }
