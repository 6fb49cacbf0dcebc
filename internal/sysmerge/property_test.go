package sysmerge

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// propSeed is fixed so a failure reproduces; each case uses propSeed+i and
// names it.
const (
	propSeed  = 20261130
	propCases = 200
	propKeys  = 8
)

// propFormat renders a file from key → variant, for one format.
type propFormat struct {
	path string
	// entry renders key k in variant v.
	entry func(k, v int) string
	// render joins entries (sorted by key when the format is sorted).
	render func(entries []string) []byte
	// ordered: the file's order follows the layers, so the diffs' order
	// may change the order of lines but not the set of them.
	ordered bool
}

func joinLines(es []string) []byte {
	if len(es) == 0 {
		return []byte{}
	}
	return []byte(strings.Join(es, "\n") + "\n")
}

var propFormats = []propFormat{
	{path: "/var/lib/dpkg/status",
		entry: func(k, v int) string {
			return fmt.Sprintf("Package: pkg%d\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.%d-1\nDescription: package %d\n long\n .\n text %d\n", k, v, k, v)
		},
		render: func(es []string) []byte { return []byte(strings.Join(es, "\n")) }},
	{path: "/etc/passwd", ordered: true,
		entry: func(k, v int) string {
			return fmt.Sprintf("u%d:x:%d:%d:variant %d:/home/u%d:/bin/sh", k, 1000+k, 1000+k, v, k)
		}, render: joinLines},
	{path: "/etc/group", ordered: true,
		entry: func(k, v int) string {
			return fmt.Sprintf("g%d:x:%d:%s", k, 2000+k, strings.Join([]string{"", "m1", "m1,m2"}[v:v+1], ""))
		}, render: joinLines},
	{path: "/var/cache/debconf/config.dat", ordered: true,
		entry: func(k, v int) string {
			return fmt.Sprintf("Name: pkg%d/question\nTemplate: pkg%d/question\nValue: answer %d\nOwners: pkg%d\n", k, k, v, k)
		},
		render: func(es []string) []byte {
			var b strings.Builder
			for _, e := range es {
				b.WriteString(e + "\n")
			}
			return []byte(b.String())
		}},
	{path: "/etc/shells", ordered: true,
		entry:  func(k, v int) string { return fmt.Sprintf("/opt/shell%d/v%d", k, v) },
		render: joinLines},
	{path: "/var/lib/dpkg/alternatives/editor",
		entry: func(k, v int) string {
			return fmt.Sprintf("/usr/bin/ed%d\n%d\n/usr/share/man/man1/ed%d.%d.gz", k, 10*v, k, v)
		},
		render: func(es []string) []byte {
			if len(es) == 0 {
				return nil // update-alternatives leaves no file for a group without choices
			}
			return []byte("auto\n/usr/bin/editor\neditor.1.gz\n/usr/share/man/man1/editor.1.gz\n\n" + strings.Join(es, "\n") + "\n\n")
		}},
}

// state is a file as key → variant; absent keys are not in the file.
type state map[int]int

func (f propFormat) file(s state, order []int) []byte {
	var es []string
	for _, k := range order {
		if v, ok := s[k]; ok {
			es = append(es, f.entry(k, v))
		}
	}
	return f.render(es)
}

func randState(r *rand.Rand) state {
	s := state{}
	for k := 0; k < propKeys; k++ {
		if r.Intn(2) == 0 {
			s[k] = r.Intn(3)
		}
	}
	return s
}

// scenario is a base and diffs; touched holds the keys some diff changed.
type scenario struct {
	base    []byte
	diffs   []Change
	touched map[int]bool
	baseSt  state
}

// genScenario builds nd diffs over one dev base. With disjoint, diff i only
// changes keys k with k%nd == i and adds a key the runtime base has only as
// the base has it, so the diffs cannot conflict.
func genScenario(r *rand.Rand, f propFormat, nd int, disjoint bool) scenario {
	keys := make([]int, propKeys)
	for i := range keys {
		keys[i] = i
	}
	sc := scenario{touched: map[int]bool{}, baseSt: randState(r)}
	if r.Intn(10) > 0 {
		sc.base = f.file(sc.baseSt, keys) // nil: a format with no empty file
	} else {
		sc.baseSt = state{}
	}
	lower := randState(r)
	for i := 0; i < nd; i++ {
		upper := state{}
		for k, v := range lower {
			upper[k] = v
		}
		for k := 0; k < propKeys; k++ {
			if disjoint && k%nd != i {
				continue
			}
			switch r.Intn(4) {
			case 0: // add or change
				v := r.Intn(3)
				if bv, ok := sc.baseSt[k]; disjoint && ok {
					if _, inLower := lower[k]; !inLower {
						v = bv
					}
				}
				upper[k] = v
			case 1:
				delete(upper, k)
			}
		}
		for k := 0; k < propKeys; k++ {
			lv, lok := lower[k]
			uv, uok := upper[k]
			if lok != uok || lv != uv {
				sc.touched[k] = true
			}
		}
		// Added keys go after the lower's, as a tool appending would.
		order := append([]int(nil), keys...)
		if f.ordered {
			r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		}
		lw := f.file(lower, keys)
		up := f.file(upper, order)
		d := Change{Layer: fmt.Sprintf("layer%d", i), Lower: lw, Upper: up, LowerMissing: lw == nil, UpperMissing: up == nil}
		sc.diffs = append(sc.diffs, d)
	}
	return sc
}

type outcome struct {
	data    string
	missing bool
	err     string
}

func run(path string, base []byte, diffs []Change) (outcome, Result) {
	res, err := Merge(path, base, diffs)
	o := outcome{data: string(res.Data), missing: res.Missing}
	if err != nil {
		o = outcome{err: err.Error()}
	}
	return o, res
}

// content is what must not depend on the diffs' order: the bytes, or for a
// file written in layer order its set of lines.
func content(f propFormat, o outcome) string {
	if !f.ordered {
		return fmt.Sprintf("%v %v %q", o.missing, o.err, o.data)
	}
	lines := strings.Split(o.data, "\n")
	sort.Strings(lines)
	return fmt.Sprintf("%v %v %q", o.missing, o.err, lines)
}

func forCases(t *testing.T, body func(t *testing.T, r *rand.Rand, f propFormat) string) {
	for _, f := range propFormats {
		t.Run(f.path, func(t *testing.T) {
			for i := 0; i < propCases; i++ {
				seed := int64(propSeed + i)
				if msg := body(t, rand.New(rand.NewSource(seed)), f); msg != "" {
					t.Fatalf("seed %d: %s", seed, msg)
				}
			}
		})
	}
}

// (a) A diff merged twice changes nothing more than merged once.
func TestPropertySameDiffTwice(t *testing.T) {
	forCases(t, func(t *testing.T, r *rand.Rand, f propFormat) string {
		sc := genScenario(r, f, 1, false)
		once, _ := run(f.path, sc.base, sc.diffs)
		twice, _ := run(f.path, sc.base, []Change{sc.diffs[0], sc.diffs[0]})
		if once != twice {
			return fmt.Sprintf("once %+v\ntwice %+v", once, twice)
		}
		return ""
	})
}

// (b) The order of diffs that do not conflict does not change the content.
func TestPropertyOrderOfDiffs(t *testing.T) {
	forCases(t, func(t *testing.T, r *rand.Rand, f propFormat) string {
		sc := genScenario(r, f, 2+r.Intn(2), true)
		first, _ := run(f.path, sc.base, sc.diffs)
		if first.err != "" {
			return "non-conflicting diffs conflict: " + first.err
		}
		perm := slices.Clone(sc.diffs)
		r.Shuffle(len(perm), func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
		other, _ := run(f.path, sc.base, perm)
		if content(f, first) != content(f, other) {
			return fmt.Sprintf("order %v:\n%s\nshuffled:\n%s", sc.diffs, first.data, other.data)
		}
		// Untouched entries of the runtime base stay byte for byte.
		for k, v := range sc.baseSt {
			if !sc.touched[k] && !strings.Contains(first.data, f.entry(k, v)) {
				return fmt.Sprintf("untouched entry %q lost or rewritten:\n%s", f.entry(k, v), first.data)
			}
		}
		return ""
	})
}

// (c) No diffs: base byte for byte, and its absence kept.
func TestPropertyNoDiffs(t *testing.T) {
	forCases(t, func(t *testing.T, r *rand.Rand, f propFormat) string {
		sc := genScenario(r, f, 0, false)
		res, err := Merge(f.path, sc.base, nil)
		if err != nil || !bytes.Equal(res.Data, sc.base) || res.Missing != (sc.base == nil) || len(res.Findings) != 0 {
			return fmt.Sprintf("base %q: got %q missing=%v %v", sc.base, res.Data, res.Missing, err)
		}
		return ""
	})
}

// (d) A diff whose upper is its lower changes nothing, wherever it stands;
// and (determinism) the same inputs give the same result.
func TestPropertyNoopDiffAndDeterminism(t *testing.T) {
	forCases(t, func(t *testing.T, r *rand.Rand, f propFormat) string {
		sc := genScenario(r, f, 1+r.Intn(3), r.Intn(2) == 0)
		want, wantRes := run(f.path, sc.base, sc.diffs)
		again, againRes := run(f.path, sc.base, sc.diffs)
		if want != again || !reflect.DeepEqual(wantRes, againRes) {
			return "two runs differ"
		}
		noop := sc.diffs[r.Intn(len(sc.diffs))]
		noop.Layer, noop.Upper, noop.UpperMissing = "noop", noop.Lower, noop.LowerMissing
		if r.Intn(4) == 0 {
			noop = Change{Layer: "noop", LowerMissing: true, UpperMissing: true}
		}
		at := r.Intn(len(sc.diffs) + 1)
		with := slices.Insert(slices.Clone(sc.diffs), at, noop)
		got, _ := run(f.path, sc.base, with)
		if got != want {
			return fmt.Sprintf("a no-op diff at %d changed the result:\n%+v\nwant\n%+v", at, got, want)
		}
		return ""
	})
}

// Malformed input of every format is an error or a result, never a panic.
func TestPropertyGarbageDoesNotPanic(t *testing.T) {
	paths := []string{"/var/lib/dpkg/status", "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow",
		"/var/lib/dpkg/alternatives/x", "/etc/shells", "/var/lib/dpkg/triggers/Unincorp", "/var/lib/dpkg/info/a.list",
		"/etc/ld.so.cache", "/etc/os-release"}
	const alphabet = "ab:1 \t\n\n~-.,|()<>=[]P"
	garbage := func(r *rand.Rand) []byte {
		b := make([]byte, r.Intn(60))
		for i := range b {
			b[i] = alphabet[r.Intn(len(alphabet))]
		}
		// Some start like a real file so parsing gets past the first line.
		switch r.Intn(4) {
		case 0:
			return append([]byte("Package: p\nDepends: "), b...)
		case 1:
			return append([]byte("auto\n/usr/bin/x\n"), b...)
		}
		return b
	}
	for i := 0; i < 2000; i++ {
		seed := int64(propSeed + i)
		r := rand.New(rand.NewSource(seed))
		p := paths[r.Intn(len(paths))]
		func() {
			defer func() {
				if v := recover(); v != nil {
					t.Fatalf("seed %d: Merge(%s) panicked: %v", seed, p, v)
				}
			}()
			_, _ = Merge(p, garbage(r), []Change{
				{Layer: "a", Lower: garbage(r), Upper: garbage(r)},
				{Layer: "b", Lower: garbage(r), Upper: garbage(r), LowerMissing: r.Intn(3) == 0}})
			CheckDepends(garbage(r))
			CompareVersions(string(garbage(r)), string(garbage(r)))
		}()
	}
}
