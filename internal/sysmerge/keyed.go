package sysmerge

import (
	"fmt"
	"slices"
	"strings"
)

// entry is one keyed unit of a file: a stanza, a passwd line, a line of a
// line set. text is its bytes as read, without the separator after it.
type entry struct {
	key  string
	text string
	line int
}

// keyedFormat describes a file made of keyed entries.
type keyedFormat struct {
	// what names an entry in messages ("package", "user", "line").
	what string
	// parse splits a file into entries; from names the source in errors.
	parse func(path, from string, data []byte) ([]entry, error)
	// equiv says two versions of an entry are the same change; nil: equal.
	equiv func(a, b string) bool
	// added returns the members upper only added to lower's group; ok is
	// false when upper changed anything else. nil for other formats.
	added func(lower, upper string) (members []string, ok bool)
	// summary describes an entry's version in messages; nil: its text.
	summary func(text string) string
	// idField is the index of the numeric id field, -1 for none; idName
	// names it in messages.
	idField int
	idName  string
	// claims: entries claim their name (and id) against the runtime base.
	claims bool
}

func (f keyedFormat) same(a, b string) bool {
	if f.equiv != nil {
		return f.equiv(a, b)
	}
	return a == b
}

// edit is what the layers did to one key.
type edit struct {
	key     string
	layers  []string
	removed bool
	text    string
	// members, when non-nil, is all the layers did: add these members.
	members []string
	// addedBy is the first layer that added the key (it was absent from
	// that layer's lower), "" when every layer changed an entry its lower
	// had: an entry any layer added is whole in that layer's diff.
	addedBy string
	// conflicted: already reported; later layers are not compared again.
	conflicted bool
}

func (e *edit) describe(f keyedFormat) string {
	switch {
	case e.removed:
		return "removed"
	case e.members != nil:
		return "added members " + strings.Join(e.members, ",")
	}
	return f.text(e.text)
}

// text shows an entry's text in messages: its summary, else quoted.
func (f keyedFormat) text(t string) string {
	if f.summary != nil {
		return f.summary(t)
	}
	return fmt.Sprintf("%q", t)
}

// keyedMerge is the outcome before serialization.
type keyedMerge struct {
	entries   []entry
	edits     map[string]*edit
	order     []string // edited keys in layer order
	conflicts []Finding
	missing   bool
	inBase    map[string]bool
}

// mergeKeyed applies each diff's entry changes to base.
func mergeKeyed(path string, base []byte, touched []Change, f keyedFormat) (*keyedMerge, error) {
	var baseEntries []entry
	if base != nil {
		var err error
		if baseEntries, err = f.parse(path, side("", ""), base); err != nil {
			return nil, err
		}
	}
	m := &keyedMerge{edits: map[string]*edit{}}
	exists, deleted := base != nil, false
	for _, d := range touched {
		var lower, upper []entry
		var err error
		if !d.LowerMissing {
			if lower, err = f.parse(path, side(d.Layer, "lower"), d.Lower); err != nil {
				return nil, err
			}
		}
		if !d.UpperMissing {
			if upper, err = f.parse(path, side(d.Layer, "upper"), d.Upper); err != nil {
				return nil, err
			}
			exists = true
		} else {
			deleted = true
		}
		lowerText := map[string]string{}
		for _, e := range lower {
			lowerText[e.key] = e.text
		}
		inUpper := map[string]bool{}
		var mine []*edit
		for _, e := range upper {
			if inUpper[e.key] {
				continue // a duplicate: the first one stands for the key
			}
			inUpper[e.key] = true
			lt, had := lowerText[e.key]
			if had && lt == e.text {
				continue
			}
			ed := &edit{key: e.key, layers: []string{d.Layer}, text: e.text}
			if !had {
				ed.addedBy = d.Layer
			}
			if had && f.added != nil {
				if ms, ok := f.added(lt, e.text); ok {
					ed.members = ms
				}
			}
			mine = append(mine, ed)
		}
		for _, e := range lower {
			if !inUpper[e.key] {
				inUpper[e.key] = true
				mine = append(mine, &edit{key: e.key, layers: []string{d.Layer}, removed: true})
			}
		}
		for _, ed := range mine {
			m.combine(path, f, ed)
		}
	}
	m.apply(baseEntries)
	m.missing = len(m.entries) == 0 && (!exists || deleted)
	if f.claims {
		m.checkClaims(path, f, baseEntries)
	}
	return m, nil
}

// combine adds one layer's edit of a key to those of earlier layers.
func (m *keyedMerge) combine(path string, f keyedFormat, n *edit) {
	e, ok := m.edits[n.key]
	if !ok {
		m.edits[n.key] = n
		m.order = append(m.order, n.key)
		return
	}
	if e.conflicted {
		return
	}
	switch {
	case e.removed && n.removed:
	case e.members != nil && n.members != nil:
		for _, mb := range n.members {
			if !slices.Contains(e.members, mb) {
				e.members = append(e.members, mb)
			}
		}
	case !e.removed && !n.removed && e.members == nil && n.members == nil && f.same(e.text, n.text):
		// Equivalent but not equal (a shadow entry's change date): keep
		// the greater so the diffs' order does not matter.
		e.text = max(e.text, n.text)
		if e.addedBy == "" {
			e.addedBy = n.addedBy
		}
	default:
		m.conflicts = append(m.conflicts, Finding{Kind: Conflict, Path: path, Entry: n.key,
			Layers: []string{e.layers[0], n.layers[0]},
			Msg: fmt.Sprintf("%s %s changed differently by layers %s (%s) and %s (%s); build it in one of them only",
				f.what, n.key, e.layers[0], e.describe(f), n.layers[0], n.describe(f))})
		e.conflicted = true
		return
	}
	e.layers = append(e.layers, n.layers[0])
}

// apply writes the edits over base: base's entries in base's order, then
// the new ones in the order the layers added them.
func (m *keyedMerge) apply(base []entry) {
	inBase := map[string]bool{}
	m.inBase = inBase
	for _, b := range base {
		inBase[b.key] = true
		if e := m.edits[b.key]; e != nil {
			switch {
			case e.removed:
				continue
			case e.members != nil:
				b.text = addGroupMembers(b.text, e.members)
			default:
				b.text = e.text
			}
		}
		m.entries = append(m.entries, b)
	}
	for _, k := range m.order {
		e := m.edits[k]
		if inBase[k] || e.removed {
			continue
		}
		t := e.text
		if e.members != nil {
			t = addGroupMembers(t, e.members)
		}
		m.entries = append(m.entries, entry{key: k, text: t})
	}
}

// conflictError returns the conflicts as an error, or nil.
func (m *keyedMerge) conflictError(path string) error {
	if len(m.conflicts) == 0 {
		return nil
	}
	return &ConflictError{Path: path, Conflicts: m.conflicts}
}

// mergeKeyedFile merges a file whose entries keep base's order, new ones
// appended in layer order.
func mergeKeyedFile(path string, base []byte, touched []Change, f keyedFormat) (Result, error) {
	m, err := mergeChecked(path, base, touched, f)
	if err != nil {
		return Result{}, err
	}
	return m.result(), nil
}

// mergeChecked is mergeKeyed with the conflicts as its error.
func mergeChecked(path string, base []byte, touched []Change, f keyedFormat) (*keyedMerge, error) {
	m, err := mergeKeyed(path, base, touched, f)
	if err != nil {
		return nil, err
	}
	return m, m.conflictError(path)
}

func (m *keyedMerge) result() Result {
	if m.missing {
		return Result{Missing: true}
	}
	var b strings.Builder
	for _, e := range m.entries {
		b.WriteString(e.text)
		b.WriteByte('\n')
	}
	return Result{Data: []byte(b.String())}
}

// splitLines splits data into lines without their newlines; a last line
// without one still counts.
func splitLines(data []byte) []string {
	s := string(data)
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// lineSetFormat: every line is its own key.
func lineSetFormat() keyedFormat {
	return keyedFormat{what: "line", idField: -1,
		parse: func(_, _ string, data []byte) ([]entry, error) {
			var es []entry
			for i, l := range splitLines(data) {
				es = append(es, entry{key: l, text: l, line: i + 1})
			}
			return es, nil
		}}
}
