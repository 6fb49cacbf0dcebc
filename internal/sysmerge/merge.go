package sysmerge

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Change is one diff's version of a file: Lower is the file in the diff's
// lower image (the dev base), Upper in its upper (dev base + language).
// A side where the file does not exist sets its Missing flag, so an absent
// file is told from an empty one.
type Change struct {
	Layer                      string
	Lower, Upper               []byte
	LowerMissing, UpperMissing bool
}

// touched reports whether the diff changed the file at all.
func (c Change) touched() bool {
	if c.LowerMissing || c.UpperMissing {
		return c.LowerMissing != c.UpperMissing
	}
	return !bytes.Equal(c.Lower, c.Upper)
}

// FindingKind says what a Finding asks of the caller.
type FindingKind int

const (
	// Conflict: two layers changed the same entry differently; Merge
	// returns these in a *ConflictError.
	Conflict FindingKind = iota + 1
	// Rebuild: the file is generated; run Step once after the merge.
	Rebuild
	// Unmerged: a file of no known format changed differently by several
	// layers; the last one won. The caller warns, or errors when strict.
	Unmerged
	// Dependency: an installed package's dependency is not installed in
	// the merged status.
	Dependency
)

func (k FindingKind) String() string {
	switch k {
	case Conflict:
		return "conflict"
	case Rebuild:
		return "rebuild"
	case Unmerged:
		return "unmerged"
	case Dependency:
		return "dependency"
	}
	return "FindingKind(?)"
}

// Finding is something the merge could not settle by itself.
type Finding struct {
	Kind FindingKind
	Path string
	// Layers are the layers involved, in the order given to Merge; the
	// runtime base is named RuntimeBase.
	Layers []string
	// Entry is the package, entry name, alternative or trigger concerned,
	// "" for the whole file.
	Entry string
	// Step is the command a Rebuild finding asks for.
	Step string
	Msg  string
}

// RuntimeBase names the runtime base in findings' Layers.
const RuntimeBase = "runtime base"

// Result is the merged file.
type Result struct {
	Data []byte
	// Missing: the file should not exist in the composed image.
	Missing  bool
	Findings []Finding
}

// ConflictError lists every conflict found in one file.
type ConflictError struct {
	Path      string
	Conflicts []Finding
}

func (e *ConflictError) Error() string {
	msgs := make([]string, len(e.Conflicts))
	for i, c := range e.Conflicts {
		msgs[i] = c.Msg
	}
	return fmt.Sprintf("%s: %s", e.Path, strings.Join(msgs, "; "))
}

// Merge merges the file at path: base is the runtime base's file (nil when
// the runtime base has none; pass a non-nil empty slice for an empty file),
// diffs are applied in order. Only what each diff's upper changed relative
// to its lower is applied, so entries a diff's lower and upper share (the
// dev base's own packages and users) never reach the result unless base has
// them. Two diffs changing one entry differently is a *ConflictError naming
// the layers and the entry; parse errors name the layer and line.
func Merge(path string, base []byte, diffs []Change) (Result, error) {
	var touched []Change
	for _, d := range diffs {
		if d.touched() {
			touched = append(touched, d)
		}
	}
	if len(touched) == 0 {
		// Byte-exact: nothing to merge means nothing rewritten.
		return Result{Data: base, Missing: base == nil}, nil
	}
	switch f := Kind(path); f {
	case DpkgStatus:
		return mergeStatus(path, base, touched)
	case Passwd, Group, Shadow, GShadow:
		return mergeKeyedFile(path, base, touched, passwdFormat(f))
	case LineSet:
		return mergeKeyedFile(path, base, touched, lineSetFormat())
	case Triggers:
		return mergeTriggers(path, base, touched)
	case Alternatives:
		return mergeAlternatives(path, base, touched)
	case Paragraphs:
		return mergeParagraphs(path, base, touched)
	case Log:
		return mergeLog(base, touched), nil
	default:
		return mergeWhole(path, f, base, touched)
	}
}

// side names where bytes came from, for parse errors.
func side(layer, which string) string {
	if layer == "" {
		return "the " + RuntimeBase
	}
	return fmt.Sprintf("layer %s (%s)", layer, which)
}

// parseError is a malformed input file.
func parseError(path, from string, line int, format string, args ...any) error {
	return fmt.Errorf("%s of %s, line %d: %s", path, from, line, fmt.Sprintf(format, args...))
}

// version is one layer's outcome for a whole file.
type version struct {
	layers  []string
	missing bool
	data    []byte
}

// mergeWhole handles files merged as a whole: dpkg info files (a conflict
// is an error), caches (rebuilt) and unknown files (reported).
func mergeWhole(path string, f Format, base []byte, touched []Change) (Result, error) {
	var vs []*version
	for _, d := range touched {
		i := slices.IndexFunc(vs, func(v *version) bool {
			return v.missing == d.UpperMissing && bytes.Equal(v.data, d.Upper)
		})
		if i >= 0 {
			vs[i].layers = append(vs[i].layers, d.Layer)
			continue
		}
		vs = append(vs, &version{layers: []string{d.Layer}, missing: d.UpperMissing, data: d.Upper})
	}
	layers := func() []string {
		var ls []string
		for _, d := range touched {
			ls = append(ls, d.Layer)
		}
		return ls
	}
	res := Result{Data: vs[0].data, Missing: vs[0].missing}
	if vs[0].missing {
		res.Data = nil
	}
	if f == Cache {
		step := RebuildStep(path)
		if len(vs) > 1 {
			// The rebuild regenerates it; keeping base's makes the bytes
			// independent of the diffs' order.
			res = Result{Data: base, Missing: base == nil}
		}
		res.Findings = append(res.Findings, Finding{Kind: Rebuild, Path: path, Layers: layers(), Step: step,
			Msg: fmt.Sprintf("%s is a cache changed by %s: run %s after the merge", path, strings.Join(layers(), ", "), step)})
		return res, nil
	}
	if len(vs) == 1 {
		return res, nil
	}
	if f == Backup {
		return lastWins(vs, touched), nil
	}
	first, other := vs[0].layers[0], vs[1].layers[0]
	if f == DpkgInfo {
		return Result{}, &ConflictError{Path: path, Conflicts: []Finding{{Kind: Conflict, Path: path,
			Layers: []string{first, other}, Entry: infoPackage(path),
			Msg: fmt.Sprintf("dpkg info file of package %s changed differently by layers %s and %s: both diffs install or change that package; build it in one of them only",
				infoPackage(path), first, other)}}}
	}
	res = lastWins(vs, touched)
	res.Findings = append(res.Findings, Finding{Kind: Unmerged, Path: path, Layers: layers(),
		Msg: fmt.Sprintf("%s has no known format and was changed differently by layers %s; the last one (%s) wins",
			path, strings.Join(layers(), ", "), touched[len(touched)-1].Layer)})
	return res, nil
}

// lastWins is the version of the last layer that touched the file.
func lastWins(vs []*version, touched []Change) Result {
	last := vs[len(vs)-1]
	for _, v := range vs {
		if slices.Contains(v.layers, touched[len(touched)-1].Layer) {
			last = v
		}
	}
	if last.missing {
		return Result{Missing: true}
	}
	return Result{Data: last.data}
}

// mergeLog appends to base what each layer appended to its lower's log, in
// layer order. A log a layer rewrote rather than appended to (rotated,
// compressed) is taken whole from the last such layer: logs are history,
// not state a package manager reads, so neither case is reported.
func mergeLog(base []byte, touched []Change) Result {
	out, exists := slices.Clone(base), base != nil
	for _, d := range touched {
		exists = exists || !d.UpperMissing
		switch {
		case d.UpperMissing:
		case d.LowerMissing:
			out = append(out, d.Upper...)
		case bytes.HasPrefix(d.Upper, d.Lower):
			out = append(out, d.Upper[len(d.Lower):]...)
		default:
			last := touched[len(touched)-1]
			for _, d := range touched {
				if !d.UpperMissing && !d.LowerMissing && !bytes.HasPrefix(d.Upper, d.Lower) {
					last = d
				}
			}
			return Result{Data: last.Upper}
		}
	}
	if !exists {
		return Result{Missing: true}
	}
	return Result{Data: append([]byte{}, out...)}
}

// infoPackage is the package an info file belongs to: its name up to the
// last dot.
func infoPackage(path string) string {
	name := path[strings.LastIndex(path, "/")+1:]
	if i := strings.LastIndex(name, "."); i > 0 {
		return name[:i]
	}
	return name
}
