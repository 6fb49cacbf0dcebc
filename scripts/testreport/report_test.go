package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The streams in testdata were recorded from real runs of small test
// packages (Go 1.26):
//   - gotest.jsonl: `go test -json` of x/ok (a pass with output, subtests, a
//     skip), x/fail (a failing subtest), x/panic (a subtest panics in the test
//     goroutine), x/gopanic (a goroutine panics mid-test: the process dies),
//     x/nofiles (no test files);
//   - broken.jsonl: `go test -json` of a package that does not compile;
//   - perprocess.jsonl: as scripts/test.sh runs e2e tests, one process per
//     test through `go tool test2json`, with a heading line before each and
//     go test's FAIL line after a process that exits non-zero: TestPass,
//     TestGoPanic (goroutine panic), TestExit (os.Exit(3) mid-test), TestSkip;
//   - died.jsonl: three processes with no closing lines: TestHang killed
//     (SIGKILL) mid-test, TestPass, TestGoPanic dying at the end of input.

func names(rs []Result) []string {
	var out []string
	for _, r := range rs {
		s := r.Package + " " + r.Test
		if r.Panicked {
			s += " (panicked)"
		}
		out = append(out, s)
	}
	return out
}

func TestRecordedStreams(t *testing.T) {
	for _, tc := range []struct {
		file                    string
		totals                  Totals
		failed, crashed, skips  []string
		broken                  map[string]string
		shown, hidden           []string // output that must (not) be written
		before                  [][2]string
		problems, strictProblem string
	}{
		{
			file:    "gotest.jsonl",
			totals:  Totals{Run: 14, Passed: 8, Failed: 4, Crashed: 1, Skipped: 1},
			failed:  []string{"x/fail TestFail/bad", "x/fail TestFail", "x/panic TestPanic/sub", "x/panic TestPanic (panicked)"},
			crashed: []string{"x/gopanic TestGoPanic (panicked)"},
			skips:   []string{"x/ok TestSkip"},
			shown: []string{"SKIPPED TEST: no tool", "fail_test.go:7: bad thing happened", "panic: boom in the test",
				"gopanic_test.go:11: before the goroutine", "panic: boom in a goroutine", "--- CRASH: TestGoPanic", "ok  \tx/ok\t"},
			hidden: []string{"a says hi", "case one", "=== RUN   TestAlsoPasses"},
			before: [][2]string{{"panic: boom in a goroutine", "--- CRASH: TestGoPanic"}, {"--- CRASH: TestGoPanic", "FAIL\tx/gopanic"}},
			// Skips fail only in CI.
			problems:      "4 failed, 1 crashed",
			strictProblem: "4 failed, 1 crashed, 1 skipped (CI allows no skips)",
		},
		{
			file:          "broken.jsonl",
			broken:        map[string]string{"x/broken": "it did not build"},
			totals:        Totals{Broken: 1},
			shown:         []string{"undefined: undefined", "[build failed]"},
			problems:      "1 package(s) broken, no tests ran",
			strictProblem: "1 package(s) broken, no tests ran",
		},
		{
			file:    "perprocess.jsonl",
			totals:  Totals{Run: 4, Passed: 1, Crashed: 2, Skipped: 1},
			crashed: []string{"x/proc TestGoPanic (panicked)", "x/proc TestExit"},
			skips:   []string{"x/proc TestSkip"},
			shown:   []string{"== e2e TestPass\n", "== e2e TestSkip\n", "proc_test.go:17: exiting", "exit status 3", "--- CRASH: TestExit"},
			hidden:  []string{"proc_test.go:9: fine"},
			// Each crash is shown under the heading of its own test.
			before:        [][2]string{{"== e2e TestGoPanic", "panic: boom in a goroutine"}, {"--- CRASH: TestGoPanic", "== e2e TestExit"}, {"--- CRASH: TestExit", "== e2e TestSkip"}},
			problems:      "2 crashed",
			strictProblem: "2 crashed, 1 skipped (CI allows no skips)",
		},
		{
			file:          "died.jsonl",
			totals:        Totals{Run: 3, Passed: 1, Crashed: 2},
			crashed:       []string{"x/proc TestHang", "x/proc TestGoPanic (panicked)"},
			shown:         []string{"--- CRASH: TestHang", "--- CRASH: TestGoPanic", "panic: boom in a goroutine"},
			before:        [][2]string{{"--- CRASH: TestHang", "--- CRASH: TestGoPanic"}},
			problems:      "2 crashed",
			strictProblem: "2 crashed",
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var out bytes.Buffer
			r := NewReport(&out)
			if err := r.Read(f); err != nil {
				t.Fatal(err)
			}
			if got := r.Totals(); got != tc.totals {
				t.Errorf("totals %+v, want %+v", got, tc.totals)
			}
			for _, c := range []struct {
				what      string
				got, want []string
			}{{"failed", names(r.Failed), tc.failed}, {"crashed", names(r.Crashed), tc.crashed}, {"skipped", names(r.Skipped), tc.skips}} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
				}
			}
			for _, p := range r.Packages {
				if p.Broken != tc.broken[p.Name] {
					t.Errorf("%s broken: %q, want %q", p.Name, p.Broken, tc.broken[p.Name])
				}
			}
			text := out.String()
			for _, s := range tc.shown {
				if !strings.Contains(text, s) {
					t.Errorf("output lacks %q:\n%s", s, text)
				}
			}
			for _, s := range tc.hidden {
				if strings.Contains(text, s) {
					t.Errorf("output of a passing test shown: %q", s)
				}
			}
			for _, b := range tc.before {
				if i, j := strings.Index(text, b[0]), strings.Index(text, b[1]); i < 0 || j < 0 || i > j {
					t.Errorf("%q should come before %q:\n%s", b[0], b[1], text)
				}
			}
			if got := strings.Join(r.Problems(false), ", "); got != tc.problems {
				t.Errorf("problems %q, want %q", got, tc.problems)
			}
			if got := strings.Join(r.Problems(true), ", "); got != tc.strictProblem {
				t.Errorf("problems in CI %q, want %q", got, tc.strictProblem)
			}
		})
	}
}

// Hand-written streams for the cases that are awkward to record.
func TestStreams(t *testing.T) {
	const (
		start = `{"Action":"start","Package":"p"}`
		runA  = `{"Action":"run","Package":"p","Test":"TestA"}`
		outA  = `{"Action":"output","Package":"p","Test":"TestA","Output":"a's output\n"}`
		passA = `{"Action":"pass","Package":"p","Test":"TestA","Elapsed":2.5}`
		pass  = `{"Action":"pass","Package":"p","Elapsed":3}`
		fail  = `{"Action":"fail","Package":"p","Elapsed":3}`
	)
	for _, tc := range []struct {
		name     string
		lines    []string
		verbose  bool
		totals   Totals
		broken   string
		strict   string // Problems(true)
		shown    []string
		notShown []string
	}{
		{name: "pass", lines: []string{start, runA, outA, passA, pass}, totals: Totals{Run: 1, Passed: 1},
			notShown: []string{"a's output"}},
		{name: "verbose shows passing output", verbose: true, lines: []string{start, runA, outA, passA, pass}, totals: Totals{Run: 1, Passed: 1},
			shown: []string{"a's output"}},
		{name: "text lines pass through", lines: []string{"== heading", "go: downloading x", start, runA, passA, pass}, totals: Totals{Run: 1, Passed: 1},
			shown: []string{"== heading\n", "go: downloading x\n"}},
		{name: "no tests", lines: []string{start, pass}, strict: "no tests ran"},
		{name: "failure outside tests (TestMain)", lines: []string{start, runA, passA, fail}, totals: Totals{Run: 1, Passed: 1, Broken: 1},
			broken: "a test process failed outside any test", strict: "1 package(s) broken"},
		{name: "died before any test", lines: []string{start, start, runA, passA, pass}, totals: Totals{Run: 1, Passed: 1, Broken: 1},
			broken: "a test process ended without reporting a result", strict: "1 package(s) broken"},
		{name: "input ends mid-process", lines: []string{start, runA, passA}, totals: Totals{Run: 1, Passed: 1, Broken: 1},
			broken: "a test process never reported its end", strict: "1 package(s) broken"},
		{name: "input ends mid-test", lines: []string{start, runA, outA}, totals: Totals{Run: 1, Crashed: 1},
			strict: "1 crashed", shown: []string{"a's output", "--- CRASH: TestA"}},
		{name: "parent and subtest crash", lines: []string{start, runA, `{"Action":"run","Package":"p","Test":"TestA/x"}`, fail},
			totals: Totals{Run: 2, Crashed: 2}, strict: "2 crashed", shown: []string{"--- CRASH: TestA (", "--- CRASH: TestA/x ("}},
		{name: "a line too long for one read", lines: []string{start, runA, `{"Action":"output","Package":"p","Test":"TestA","Output":"` + strings.Repeat("x", 200000) + `\n"}`, `{"Action":"fail","Package":"p","Test":"TestA"}`, fail},
			totals: Totals{Run: 1, Failed: 1}, strict: "1 failed", shown: []string{strings.Repeat("x", 200000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := NewReport(&out)
			r.Verbose = tc.verbose
			if err := r.Read(strings.NewReader(strings.Join(tc.lines, "\n"))); err != nil {
				t.Fatal(err)
			}
			if got := r.Totals(); got != tc.totals {
				t.Errorf("totals %+v, want %+v", got, tc.totals)
			}
			if got := r.Packages[0].Broken; got != tc.broken {
				t.Errorf("broken %q, want %q", got, tc.broken)
			}
			if got := strings.Join(r.Problems(true), ", "); got != tc.strict {
				t.Errorf("problems %q, want %q", got, tc.strict)
			}
			for _, s := range tc.shown {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tc.notShown {
				if strings.Contains(out.String(), s) {
					t.Errorf("output has %q:\n%s", s, out.String())
				}
			}
		})
	}
}

// The summary names every test that did not pass, the time per package,
// and its verdict matches Problems.
func TestSummary(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "perprocess.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := NewReport(&bytes.Buffer{})
	if err := r.Read(f); err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	if r.Summary(&sum, false) {
		t.Error("a run with crashes passed")
	}
	for _, want := range []string{
		"FAIL  x/proc        1       0        2        1        0s\n",
		"CRASHED  x/proc TestGoPanic (panicked)\n",
		"CRASHED  x/proc TestExit\n",
		"SKIPPED  x/proc TestSkip\n",
		"tests: 4 run, 1 passed, 0 failed, 2 crashed, 1 skipped",
		"FAIL: 2 crashed\n",
	} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
	}

	// A skip passes outside CI and fails in it.
	skipOnly := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestS"}
{"Action":"skip","Package":"p","Test":"TestS"}
{"Action":"run","Package":"p","Test":"TestSlow"}
{"Action":"pass","Package":"p","Test":"TestSlow","Elapsed":75.25}
{"Action":"pass","Package":"p","Elapsed":76}
`
	r = NewReport(&bytes.Buffer{})
	if err := r.Read(strings.NewReader(skipOnly)); err != nil {
		t.Fatal(err)
	}
	sum.Reset()
	if !r.Summary(&sum, false) || !strings.HasSuffix(sum.String(), "\nPASS\n") {
		t.Errorf("a skip failed the run outside CI:\n%s", sum.String())
	}
	for _, want := range []string{"ok    p             1       0        0        1     1m16s\n", "slowest tests: TestSlow 1m15.3s\n"} {
		if !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
	}
	sum.Reset()
	if r.Summary(&sum, true) || !strings.Contains(sum.String(), "FAIL: 1 skipped (CI allows no skips)\n") {
		t.Errorf("a skip passed in CI:\n%s", sum.String())
	}
}
