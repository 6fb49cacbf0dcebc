package sysmerge

import (
	"fmt"
	"strings"
)

// relation is one alternative of a dependency: name, and optionally an
// operator and version.
type relation struct {
	name, op, version string
}

func (r relation) String() string {
	if r.op == "" {
		return r.name
	}
	return fmt.Sprintf("%s (%s %s)", r.name, r.op, r.version)
}

// parseDepends splits a Depends-style field into its comma-separated groups
// of '|' alternatives. Architecture qualifiers are dropped (":any" and
// ":native" are treated as any architecture), as are the architecture and
// profile restrictions that only source packages carry.
func parseDepends(field string) [][]relation {
	var groups [][]relation
	for _, g := range strings.Split(strings.ReplaceAll(field, "\n", " "), ",") {
		var alts []relation
		for _, a := range strings.Split(g, "|") {
			a = stripBrackets(stripBrackets(a, '[', ']'), '<', '>')
			r := relation{}
			if i := strings.IndexByte(a, '('); i >= 0 {
				rel := strings.TrimSuffix(strings.TrimSpace(a[i+1:]), ")")
				a = a[:i]
				op := strings.TrimLeft(rel, "<=>")
				r.op = strings.TrimSpace(rel[:len(rel)-len(op)])
				r.version = strings.TrimSpace(op)
			}
			r.name, _, _ = strings.Cut(strings.TrimSpace(a), ":")
			if r.name != "" {
				alts = append(alts, r)
			}
		}
		if len(alts) > 0 {
			groups = append(groups, alts)
		}
	}
	return groups
}

func stripBrackets(s string, open, closing byte) string {
	for {
		i := strings.IndexByte(s, open)
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i:], closing)
		if j < 0 {
			return s[:i]
		}
		s = s[:i] + s[i+j+1:]
	}
}

// holds reports whether version v satisfies op ref.
func holds(v, op, ref string) bool {
	c := CompareVersions(v, ref)
	switch op {
	case "<<":
		return c < 0
	case "<=", "<": // "<" and ">" are dpkg's obsolete spellings of <= and >=
		return c <= 0
	case "=":
		return c == 0
	case ">=", ">":
		return c >= 0
	case ">>":
		return c > 0
	}
	return false
}

// installed indexes what a status's configured packages offer.
type installed struct {
	versions map[string][]string // package name → installed versions
	provides map[string][]string // virtual name → provided versions ("" unversioned)
}

// configured says the package is installed far enough to satisfy a
// dependency.
func configured(s stanza) bool {
	f := strings.Fields(s["status"])
	if len(f) != 3 {
		return false
	}
	switch f[2] {
	case "installed", "triggers-awaited", "triggers-pending":
		return true
	}
	return false
}

func newInstalled(ss []stanza) installed {
	in := installed{versions: map[string][]string{}, provides: map[string][]string{}}
	for _, s := range ss {
		if !configured(s) {
			continue
		}
		in.versions[s["package"]] = append(in.versions[s["package"]], s["version"])
		for _, g := range parseDepends(s["provides"]) {
			for _, r := range g {
				in.provides[r.name] = append(in.provides[r.name], r.version)
			}
		}
	}
	return in
}

// satisfies reports whether one alternative of the group is installed.
func (in installed) satisfies(group []relation) bool {
	for _, r := range group {
		for _, v := range in.versions[r.name] {
			if r.op == "" || holds(v, r.op, r.version) {
				return true
			}
		}
		for _, v := range in.provides[r.name] {
			// Only a versioned Provides satisfies a versioned dependency.
			if r.op == "" || (v != "" && holds(v, r.op, r.version)) {
				return true
			}
		}
	}
	return false
}

type depFinding struct {
	Finding
	dep []relation
}

// CheckDepends checks that every configured package of a dpkg status has
// its Depends and Pre-Depends satisfied by the configured packages (or
// their Provides) of the same status, and returns a Dependency finding,
// Entry naming the package, for each group that is not.
func CheckDepends(status []byte) []Finding {
	fs := checkDepends(status)
	out := make([]Finding, len(fs))
	for i, f := range fs {
		out[i] = f.Finding
	}
	return out
}

func checkDepends(status []byte) []depFinding {
	es, err := parseStatus("", "", status)
	if err != nil {
		return []depFinding{{Finding: Finding{Kind: Dependency, Msg: "dpkg status cannot be read: " + err.Error()}}}
	}
	ss := make([]stanza, len(es))
	for i, e := range es {
		ss[i] = parseStanza(e.text)
	}
	in := newInstalled(ss)
	var fs []depFinding
	for i, s := range ss {
		if !configured(s) {
			continue
		}
		for _, field := range []string{"pre-depends", "depends"} {
			for _, g := range parseDepends(s[field]) {
				if in.satisfies(g) {
					continue
				}
				alts := make([]string, len(g))
				for k, r := range g {
					alts[k] = r.String()
				}
				fs = append(fs, depFinding{dep: g, Finding: Finding{Kind: Dependency, Entry: es[i].key,
					Msg: fmt.Sprintf("package %s %s %s, which no installed package provides",
						es[i].key, map[string]string{"depends": "depends on", "pre-depends": "pre-depends on"}[field],
						strings.Join(alts, " | "))}})
			}
		}
	}
	return fs
}
