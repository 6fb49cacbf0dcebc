package sysmerge

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// triggersStep processes the triggers the merge leaves pending.
const triggersStep = "dpkg --triggers-only --pending"

// mergeTriggers merges dpkg's trigger databases as line sets, so no layer's
// interests are lost, and reports by name the triggers the layers added to
// Unincorp (activated, not yet run) and File (file triggers, which files
// that other layers brought under their paths would have activated).
func mergeTriggers(p string, base []byte, touched []Change) (Result, error) {
	m, err := mergeKeyed(p, base, touched, lineSetFormat())
	if err != nil {
		return Result{}, err
	}
	res := m.result()
	name := path.Base(p)
	if name != "Unincorp" && name != "File" {
		return res, nil
	}
	var names, layers []string
	for _, k := range m.order {
		e := m.edits[k]
		if e.removed || strings.TrimSpace(k) == "" {
			continue
		}
		names = append(names, strings.Fields(k)[0])
		for _, l := range e.layers {
			if !slices.Contains(layers, l) {
				layers = append(layers, l)
			}
		}
	}
	if len(names) == 0 {
		return res, nil
	}
	what := "pending dpkg triggers"
	if name == "File" {
		what = "dpkg file triggers added (activate them with dpkg-trigger --no-await PATH for the files other layers brought)"
	}
	res.Findings = append(res.Findings, Finding{Kind: Rebuild, Path: p, Layers: layers, Entry: strings.Join(names, " "),
		Step: triggersStep, Msg: fmt.Sprintf("%s: %s; run %s after the merge", what, strings.Join(names, ", "), triggersStep)})
	return res, nil
}
