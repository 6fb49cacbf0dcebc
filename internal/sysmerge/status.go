package sysmerge

import (
	"fmt"
	"slices"
	"strings"
)

// stanza is one parsed deb822 paragraph: field names folded to lower case,
// continuation lines joined with "\n".
type stanza map[string]string

// parseStanza reads the fields of a stanza's text (already checked by
// parseStatus).
func parseStanza(text string) stanza {
	s := stanza{}
	var last string
	for _, l := range strings.Split(text, "\n") {
		if l == "" {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if last != "" {
				s[last] += "\n" + l
			}
			continue
		}
		name, value, _ := strings.Cut(l, ":")
		last = strings.ToLower(strings.TrimSpace(name))
		s[last] = strings.TrimSpace(value)
	}
	return s
}

func statusKey(s stanza) string {
	if a := s["architecture"]; a != "" {
		return s["package"] + ":" + a
	}
	return s["package"]
}

// parseStatus splits a dpkg status file into stanzas keyed by package and
// architecture, each kept byte for byte.
func parseStatus(path, from string, data []byte) ([]entry, error) {
	return parseDeb822(path, from, data, "Package", statusKey)
}

// paragraphKey keys apt's extended_states by package and architecture, and
// debconf's databases by Name.
func paragraphKey(s stanza) string {
	if s["package"] != "" {
		return statusKey(s)
	}
	return s["name"]
}

// parseDeb822 splits a deb822 file into its paragraphs, each kept byte for
// byte and keyed by key, which must not be "" (field names the field it
// needs, for the error).
func parseDeb822(path, from string, data []byte, field string, key func(stanza) string) ([]entry, error) {
	var es []entry
	var cur []string
	start := 0
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		text := strings.Join(cur, "\n")
		s := parseStanza(text)
		k := key(s)
		if k == "" {
			return parseError(path, from, start, "the stanza starting here has no %s field", field)
		}
		es = append(es, entry{key: k, text: text, line: start})
		cur = nil
		return nil
	}
	for i, l := range splitLines(data) {
		if strings.TrimSpace(l) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if len(cur) == 0 {
				return nil, parseError(path, from, i+1, "a continuation line (starting with a space) must follow a field")
			}
		} else if name, _, ok := strings.Cut(l, ":"); !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t") {
			return nil, parseError(path, from, i+1, "expected a field (Name: value), found %q", l)
		}
		if len(cur) == 0 {
			start = i + 1
		}
		cur = append(cur, l)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return es, nil
}

var statusFormat = keyedFormat{what: "package", idField: -1, parse: parseStatus,
	summary: func(text string) string {
		s := parseStanza(text)
		return fmt.Sprintf("version %s, %s", s["version"], s["status"])
	}}

// mergeStatus merges dpkg's status by package stanza, writes it in dpkg's
// order and reports the dependencies the merge left unsatisfied.
func mergeStatus(path string, base []byte, touched []Change) (Result, error) {
	m, err := mergeChecked(path, base, touched, statusFormat)
	if err != nil {
		return Result{}, err
	}
	if m.missing {
		return Result{Missing: true}, nil
	}
	sortStatus(m.entries)
	texts := make([]string, len(m.entries))
	for i, e := range m.entries {
		texts[i] = e.text + "\n"
	}
	data := []byte(strings.Join(texts, "\n"))
	res := Result{Data: data}

	// A diff carries only the files an upgrade changed: without the package
	// in the runtime base, the rest of its files are missing.
	for _, k := range m.order {
		if e := m.edits[k]; !e.removed && e.addedBy == "" && !m.inBase[k] {
			res.Findings = append(res.Findings, Finding{Kind: Dependency, Path: path, Layers: slices.Clone(e.layers), Entry: k,
				Msg: fmt.Sprintf("package %s was upgraded by layer %s, whose diff holds only the files the upgrade changed, and the %s lacks it: install it in the runtime base",
					k, e.layers[0], RuntimeBase)})
		}
	}

	// A dependency only a diff's lower (the dev base) satisfied is what the
	// runtime base must provide and does not.
	lowers := make([][]stanza, len(touched))
	for i, d := range touched {
		if d.LowerMissing {
			continue
		}
		es, _ := parseStatus(path, "", d.Lower) // parsed once already
		for _, e := range es {
			lowers[i] = append(lowers[i], parseStanza(e.text))
		}
	}
	for _, f := range checkDepends(data) {
		f.Path = path
		f.Layers = []string{RuntimeBase}
		if e := m.edits[f.Entry]; e != nil && !e.removed {
			f.Layers = slices.Clone(e.layers)
		}
		for i, d := range touched {
			if slices.Contains(f.Layers, d.Layer) && newInstalled(lowers[i]).satisfies(f.dep) {
				f.Msg += fmt.Sprintf("; only the dev base (the lower of layer %s) had it: install it in the runtime base", d.Layer)
				break
			}
		}
		res.Findings = append(res.Findings, f.Finding)
	}
	return res, nil
}

var paragraphFormat = keyedFormat{what: "entry", idField: -1,
	parse: func(path, from string, data []byte) ([]entry, error) {
		return parseDeb822(path, from, data, "Package or Name", paragraphKey)
	}}

// mergeParagraphs merges a deb822 file by paragraph, keeping base's order
// and appending new paragraphs in layer order, each ended by a blank line
// as apt and debconf write them.
func mergeParagraphs(path string, base []byte, touched []Change) (Result, error) {
	m, err := mergeChecked(path, base, touched, paragraphFormat)
	if err != nil {
		return Result{}, err
	}
	if m.missing {
		return Result{Missing: true}, nil
	}
	var b strings.Builder
	for _, e := range m.entries {
		b.WriteString(e.text)
		b.WriteString("\n\n")
	}
	return Result{Data: []byte(b.String())}, nil
}

// sortStatus orders stanzas as dpkg writes its database: by package name,
// then the one whose name needs no architecture qualifier first, then by
// architecture (pkg_sorter_by_nonambig_name_arch).
func sortStatus(es []entry) {
	type key struct {
		name, arch string
		needsArch  bool
	}
	keys := map[string]key{}
	native := nativeArch(es)
	for _, e := range es {
		s := parseStanza(e.text)
		a := s["architecture"]
		needs := a != "" && a != "all" && (strings.EqualFold(s["multi-arch"], "same") || a != native)
		keys[e.key] = key{s["package"], a, needs}
	}
	slices.SortStableFunc(es, func(x, y entry) int {
		a, b := keys[x.key], keys[y.key]
		if c := strings.Compare(a.name, b.name); c != 0 || a.arch == b.arch {
			return c
		}
		if a.needsArch != b.needsArch {
			if a.needsArch {
				return 1
			}
			return -1
		}
		if !a.needsArch {
			return 0
		}
		return strings.Compare(a.arch, b.arch)
	})
}

// nativeArch is dpkg's own architecture, the native one; failing that the
// commonest one other than all.
func nativeArch(es []entry) string {
	count := map[string]int{}
	for _, e := range es {
		s := parseStanza(e.text)
		a := s["architecture"]
		if s["package"] == "dpkg" && a != "" && a != "all" {
			return a
		}
		if a != "" && a != "all" {
			count[a]++
		}
	}
	best := ""
	for a, n := range count {
		if n > count[best] || (n == count[best] && a < best) {
			best = a
		}
	}
	return best
}
