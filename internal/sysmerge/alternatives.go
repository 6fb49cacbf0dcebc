package sysmerge

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// altGroup is an update-alternatives database file: its mode, master link,
// slave links by name, and its choices.
type altGroup struct {
	mode, link string
	slaves     map[string]string // slave name → slave link
	choices    []altChoice
}

type altChoice struct {
	path, priority string
	slaves         map[string]string // slave name → this choice's file
}

// header is the group's identity, compared as a whole between layers.
func (g *altGroup) header() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s\n", g.mode, g.link)
	for _, n := range sortedKeys(g.slaves) {
		fmt.Fprintf(&b, "%s\n%s\n", n, g.slaves[n])
	}
	return b.String()
}

// text is a choice's canonical form: priority, then its slave files by name.
func (c altChoice) text() string {
	var b strings.Builder
	b.WriteString(c.priority)
	for _, n := range sortedKeys(c.slaves) {
		fmt.Fprintf(&b, "\n%s=%s", n, c.slaves[n])
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// parseAlternatives reads the file update-alternatives writes.
func parseAlternatives(p, from string, data []byte) (*altGroup, error) {
	lines := strings.Split(string(data), "\n")
	n := 0
	next := func(what string) (string, error) {
		if n >= len(lines) {
			return "", parseError(p, from, n+1, "the file ends where %s was expected", what)
		}
		n++
		return lines[n-1], nil
	}
	g := &altGroup{slaves: map[string]string{}}
	var err error
	if g.mode, err = next("the mode (auto or manual)"); err != nil {
		return nil, err
	}
	if g.mode != "auto" && g.mode != "manual" {
		return nil, parseError(p, from, n, "the mode must be auto or manual, not %q", g.mode)
	}
	if g.link, err = next("the master link"); err != nil {
		return nil, err
	}
	var order []string
	for {
		name, err := next("a slave name or an empty line")
		if err != nil {
			return nil, err
		}
		if name == "" {
			break
		}
		link, err := next("the link of slave " + name)
		if err != nil {
			return nil, err
		}
		g.slaves[name] = link
		order = append(order, name)
	}
	for n < len(lines) {
		cp, _ := next("")
		if cp == "" {
			break // the empty line that ends the file
		}
		c := altChoice{path: cp, slaves: map[string]string{}}
		if c.priority, err = next("the priority of " + cp); err != nil {
			return nil, err
		}
		if _, err := strconv.Atoi(c.priority); err != nil {
			return nil, parseError(p, from, n, "the priority of %s must be an integer, not %q", cp, c.priority)
		}
		for _, s := range order {
			f, err := next("the file of slave " + s + " for " + cp)
			if err != nil {
				return nil, err
			}
			if f != "" {
				c.slaves[s] = f
			}
		}
		g.choices = append(g.choices, c)
	}
	return g, nil
}

// write renders the group as update-alternatives does: slaves and choices
// sorted by name (alternative_sort_slaves, alternative_sort_choices).
func (g *altGroup) write() []byte {
	var b strings.Builder
	names := sortedKeys(g.slaves)
	fmt.Fprintf(&b, "%s\n%s\n", g.mode, g.link)
	for _, n := range names {
		fmt.Fprintf(&b, "%s\n%s\n", n, g.slaves[n])
	}
	b.WriteString("\n")
	cs := slices.Clone(g.choices)
	slices.SortFunc(cs, func(a, b altChoice) int { return strings.Compare(a.path, b.path) })
	for _, c := range cs {
		fmt.Fprintf(&b, "%s\n%s\n", c.path, c.priority)
		for _, n := range names {
			fmt.Fprintf(&b, "%s\n", c.slaves[n])
		}
	}
	b.WriteString("\n")
	return []byte(b.String())
}

// headerKey keys the group's header among the choices' paths, which are
// absolute.
const headerKey = "header"

// altEntries flattens a group into keyed entries for mergeKeyed.
func altEntries(g *altGroup) []entry {
	es := []entry{{key: headerKey, text: g.header()}}
	for _, c := range g.choices {
		es = append(es, entry{key: c.path, text: c.text()})
	}
	return es
}

// mergeAlternatives merges a link group's choices as a set; a choice two
// layers list with different priorities or slaves, or a header (mode, link,
// slaves) they change differently, is a conflict.
func mergeAlternatives(p string, base []byte, touched []Change) (Result, error) {
	groups := map[string]*altGroup{}
	var first *altGroup // the base's group if it has one
	f := keyedFormat{what: "alternative", idField: -1,
		parse: func(p, from string, data []byte) ([]entry, error) {
			g, err := parseAlternatives(p, from, data)
			if err != nil {
				return nil, err
			}
			if first == nil {
				first = g
			}
			es := altEntries(g)
			for _, e := range es[1:] {
				groups[e.key+"\x00"+e.text] = g
			}
			groups[headerKey+"\x00"+es[0].text] = g
			return es, nil
		}}
	m, err := mergeKeyed(p, base, touched, f)
	if err != nil {
		return Result{}, err
	}
	if err := m.conflictError(p); err != nil {
		return Result{}, err
	}
	out := &altGroup{slaves: map[string]string{}}
	hasHeader := false
	for _, e := range m.entries {
		src := groups[e.key+"\x00"+e.text]
		if e.key == headerKey {
			out.mode, out.link, out.slaves, hasHeader = src.mode, src.link, src.slaves, true
			continue
		}
		for _, c := range src.choices {
			if c.path == e.key {
				out.choices = append(out.choices, c)
				break
			}
		}
	}
	if !hasHeader && first != nil {
		// A layer that removed its last choice removed the header with the
		// file; the choices still listed need one.
		out.mode, out.link, out.slaves = first.mode, first.link, first.slaves
	}
	if len(out.choices) == 0 {
		// update-alternatives removes a group's file with its last choice.
		return Result{Missing: true}, nil
	}
	res := Result{Data: out.write()}
	var layers []string
	for _, d := range touched {
		layers = append(layers, d.Layer)
	}
	if out.mode == "auto" && len(layers) > 1 {
		name := path.Base(p)
		step := "update-alternatives --auto " + name
		res.Findings = append(res.Findings, Finding{Kind: Rebuild, Path: p, Layers: layers, Entry: name, Step: step,
			Msg: fmt.Sprintf("alternatives %s merged from layers %s: run %s so its link points at the best choice", name, strings.Join(layers, ", "), step)})
	}
	return res, nil
}
