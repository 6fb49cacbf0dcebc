package sysmerge

import (
	"fmt"
	"slices"
	"strings"
)

// passwdFields is the number of fields of each passwd-style file.
var passwdFields = map[Format]int{Passwd: 7, Group: 4, Shadow: 9, GShadow: 4}

// passwdFormat: one entry a line, keyed by its name (the first field).
func passwdFormat(f Format) keyedFormat {
	n := passwdFields[f]
	kf := keyedFormat{what: "user", idField: -1, claims: true}
	switch f {
	case Passwd:
		kf.idField, kf.idName = 2, "uid"
	case Group:
		kf.what, kf.idField, kf.idName = "group", 2, "gid"
	case GShadow:
		kf.what = "group"
		kf.summary = hidePassword
	case Shadow:
		kf.summary = hidePassword
		// Field 3 is the day the password last changed: images built on
		// different days add the same system user with different days.
		kf.equiv = func(a, b string) bool {
			fa, fb := strings.Split(a, ":"), strings.Split(b, ":")
			if len(fa) != len(fb) || len(fa) < 3 {
				return a == b
			}
			fa[2], fb[2] = "", ""
			return slices.Equal(fa, fb)
		}
	}
	if f == Group || f == GShadow {
		kf.added = onlyAddedMembers
	}
	kf.parse = func(path, from string, data []byte) ([]entry, error) {
		var es []entry
		for i, l := range splitLines(data) {
			if strings.TrimSpace(l) == "" {
				continue
			}
			if strings.HasPrefix(l, "#") {
				es = append(es, entry{key: l, text: l, line: i + 1})
				continue
			}
			fields := strings.Split(l, ":")
			if len(fields) != n || fields[0] == "" {
				return nil, parseError(path, from, i+1, "a %s entry has %d colon-separated fields starting with a name, this one %d: %s",
					f, n, len(fields), kf.text(l))
			}
			es = append(es, entry{key: fields[0], text: l, line: i + 1})
		}
		return es, nil
	}
	return kf
}

// hidePassword shows a shadow or gshadow entry without its password field
// (a hash is a secret: messages reach build logs), keeping the markers
// that say there is none or that it is locked.
func hidePassword(text string) string {
	f := strings.Split(text, ":")
	if len(f) > 1 {
		switch f[1] {
		case "", "*", "!", "!!", "!*", "x":
		default:
			f[1] = "<password hidden>"
		}
	}
	return fmt.Sprintf("%q", strings.Join(f, ":"))
}

// onlyAddedMembers returns the members upper added to lower's group entry
// when that is all it changed.
func onlyAddedMembers(lower, upper string) ([]string, bool) {
	lf, uf := strings.Split(lower, ":"), strings.Split(upper, ":")
	if len(lf) != 4 || len(uf) != 4 || !slices.Equal(lf[:3], uf[:3]) {
		return nil, false
	}
	lm, um := members(lf[3]), members(uf[3])
	var added []string
	for _, m := range um {
		if !slices.Contains(lm, m) {
			added = append(added, m)
		}
	}
	for _, m := range lm {
		if !slices.Contains(um, m) {
			return nil, false // a member removed: not a pure addition
		}
	}
	return added, len(added) > 0
}

func members(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// addGroupMembers appends the members the group entry lacks.
func addGroupMembers(text string, add []string) string {
	f := strings.Split(text, ":")
	if len(f) != 4 {
		return text
	}
	ms := members(f[3])
	for _, m := range add {
		if !slices.Contains(ms, m) {
			ms = append(ms, m)
		}
	}
	f[3] = strings.Join(ms, ",")
	return strings.Join(f, ":")
}

// checkClaims reports an entry a layer added that the runtime base has
// differently, and an id two entries of the result claim, when a layer
// brought at least one of them.
func (m *keyedMerge) checkClaims(path string, f keyedFormat, base []entry) {
	baseText := map[string]string{}
	for _, b := range base {
		if _, ok := baseText[b.key]; !ok {
			baseText[b.key] = b.text
		}
	}
	for _, k := range m.order {
		e := m.edits[k]
		bt, inBase := baseText[k]
		if e.conflicted || e.removed || e.members != nil || e.addedBy == "" || !inBase || f.same(bt, e.text) {
			continue
		}
		m.conflicts = append(m.conflicts, Finding{Kind: Conflict, Path: path, Entry: k,
			Layers: []string{e.addedBy, RuntimeBase},
			Msg: fmt.Sprintf("%s %s added by layer %s (%s) differs from the %s's (%s); make them agree or rename one",
				f.what, k, e.addedBy, f.text(e.text), RuntimeBase, f.text(bt))})
	}
	if f.idField < 0 {
		return
	}
	type claim struct{ key, layer string }
	byID := map[string]claim{}
	for _, e := range m.entries {
		fields := strings.Split(e.text, ":")
		if len(fields) <= f.idField || strings.HasPrefix(e.text, "#") || strings.HasPrefix(e.key, "+") || strings.HasPrefix(e.key, "-") {
			continue // comments and NIS entries claim nothing
		}
		id := fields[f.idField]
		layer := RuntimeBase
		if ed := m.edits[e.key]; ed != nil && !ed.removed {
			layer = ed.layers[0]
		}
		c, seen := byID[id]
		if !seen {
			byID[id] = claim{e.key, layer}
			continue
		}
		if c.key == e.key || (c.layer == RuntimeBase && layer == RuntimeBase) {
			continue
		}
		m.conflicts = append(m.conflicts, Finding{Kind: Conflict, Path: path, Entry: e.key,
			Layers: []string{c.layer, layer},
			Msg: fmt.Sprintf("%s %s is claimed by %s %s (%s) and %s %s (%s); give one of them another %s",
				f.idName, id, f.what, c.key, c.layer, f.what, e.key, layer, f.idName)})
	}
}
