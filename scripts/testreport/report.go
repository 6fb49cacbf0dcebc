package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// event is one line of `go test -json` or `go tool test2json` output.
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64 // seconds
	Output      string
	FailedBuild string
}

// Result is one test that ended, or crashed.
type Result struct {
	Package, Test string
	Elapsed       float64
	Panicked      bool // its output has a panic
}

// Package is what one package's test processes reported.
type Package struct {
	Name                             string
	Elapsed                          float64 // summed over its processes
	Passed, Failed, Skipped, Crashed int
	// Broken says why the package failed apart from its tests' results: it
	// did not build, or a process of it failed or died outside any test.
	Broken string

	running    map[string]*bytes.Buffer // output of the tests running in the current process
	output     bytes.Buffer             // the current process's output outside tests
	open       bool                     // a process started and has not reported its end
	procFailed bool                     // a test failed in the current process
}

// Report adds up the events of one or more test processes, read in order:
// `go test -json` for many packages, or one `go tool test2json` stream per
// process, concatenated. A test that started and did not end before its
// process reported its end, a new process of its package started or the
// input ended, crashed. As it reads, Report writes the output of each test
// that fails, crashes or skips (of every test with Verbose), package output
// and any line that is not an event (the caller's headings, go's messages).
type Report struct {
	Verbose  bool
	Packages []*Package
	Failed   []Result // tests that reported a failure
	Crashed  []Result // tests whose process died before they ended
	Skipped  []Result
	Ended    []Result // top-level tests that passed, failed or skipped

	out   io.Writer
	byPkg map[string]*Package
}

// NewReport returns a report that writes test output to out.
func NewReport(out io.Writer) *Report {
	return &Report{out: out, byPkg: map[string]*Package{}}
}

// Read adds every line of in, then ends the processes still open (Close).
func (r *Report) Read(in io.Reader) error {
	br := bufio.NewReaderSize(in, 64*1024)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			r.Line(line)
		}
		if err != nil {
			r.Close()
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read test events: %w", err)
		}
	}
}

// Line adds one line of input.
func (r *Report) Line(line []byte) {
	var e event
	if !bytes.HasPrefix(line, []byte("{")) || json.Unmarshal(line, &e) != nil || e.Action == "" {
		r.out.Write(line)
		if !bytes.HasSuffix(line, []byte("\n")) {
			io.WriteString(r.out, "\n")
		}
		return
	}
	switch e.Action {
	case "build-output":
		// The compiler's errors; the package's "fail" event follows.
		io.WriteString(r.out, e.Output)
		return
	case "build-fail":
		return
	}
	p := r.pkg(e.Package)
	if e.Test == "" {
		r.packageEvent(p, e)
		return
	}
	switch e.Action {
	case "run":
		p.running[e.Test] = &bytes.Buffer{}
	case "output":
		if b := p.running[e.Test]; b != nil && !r.Verbose {
			b.WriteString(e.Output)
		} else {
			io.WriteString(r.out, e.Output)
		}
	case "pass", "fail", "skip":
		out := p.running[e.Test]
		delete(p.running, e.Test)
		res := Result{Package: p.Name, Test: e.Test, Elapsed: e.Elapsed}
		switch e.Action {
		case "pass":
			p.Passed++
		case "fail":
			p.Failed++
			p.procFailed = true
			res.Panicked = out != nil && hasPanic(out.String())
			r.Failed = append(r.Failed, res)
		case "skip":
			p.Skipped++
			r.Skipped = append(r.Skipped, res)
		}
		if e.Action != "pass" && out != nil {
			r.out.Write(out.Bytes())
		}
		if !strings.Contains(e.Test, "/") {
			r.Ended = append(r.Ended, res)
		}
	}
}

func hasPanic(out string) bool {
	return strings.HasPrefix(out, "panic: ") || strings.Contains(out, "\npanic: ")
}

func (r *Report) pkg(name string) *Package {
	p := r.byPkg[name]
	if p == nil {
		p = &Package{Name: name, running: map[string]*bytes.Buffer{}}
		r.byPkg[name] = p
		r.Packages = append(r.Packages, p)
	}
	return p
}

func (r *Report) packageEvent(p *Package, e event) {
	switch e.Action {
	case "start":
		// A new process of the package: one still open died unreported.
		if p.open && r.endProcess(p) == 0 {
			p.broken("a test process ended without reporting a result")
		}
		p.open, p.procFailed = true, false
	case "pass", "skip":
		r.endProcess(p)
		p.Elapsed += e.Elapsed
	case "fail":
		crashed := r.endProcess(p)
		p.Elapsed += e.Elapsed
		switch {
		case e.FailedBuild != "":
			p.broken("it did not build")
		case crashed == 0 && !p.procFailed:
			p.broken("a test process failed outside any test")
		}
	case "output":
		// Held until the process ends, to follow the output of the tests
		// it crashed. A test binary's bare last line says nothing the
		// summary won't.
		if r.Verbose || (e.Output != "PASS\n" && e.Output != "FAIL\n") {
			p.output.WriteString(e.Output)
		}
	}
}

func (p *Package) broken(why string) {
	if p.Broken == "" {
		p.Broken = why
	}
}

// endProcess ends the package's current process: the tests still running
// crashed with it. It writes their output, then the process's, and returns
// how many crashed.
func (r *Report) endProcess(p *Package) int {
	p.open = false
	names := make([]string, 0, len(p.running))
	for name := range p.running {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		out := p.running[name].String()
		p.Crashed++
		r.Crashed = append(r.Crashed, Result{Package: p.Name, Test: name, Panicked: hasPanic(out)})
		io.WriteString(r.out, out)
		fmt.Fprintf(r.out, "--- CRASH: %s (its test process died before the test ended)\n", name)
	}
	clear(p.running)
	r.out.Write(p.output.Bytes())
	p.output.Reset()
	return len(names)
}

// Close ends the processes still open: the input is over.
func (r *Report) Close() {
	for _, p := range r.Packages {
		if p.open && r.endProcess(p) == 0 {
			p.broken("a test process never reported its end")
		}
	}
}

// Totals are the counts over all packages.
type Totals struct{ Run, Passed, Failed, Crashed, Skipped, Broken int }

// Totals adds up the packages.
func (r *Report) Totals() Totals {
	var t Totals
	for _, p := range r.Packages {
		t.Passed += p.Passed
		t.Failed += p.Failed
		t.Crashed += p.Crashed
		t.Skipped += p.Skipped
		if p.Broken != "" {
			t.Broken++
		}
	}
	t.Run = t.Passed + t.Failed + t.Crashed + t.Skipped
	return t
}

// Problems lists why the run fails, empty if it passes. In CI (strict) a
// skipped test fails it too; a run of no tests always does.
func (r *Report) Problems(strict bool) []string {
	t := r.Totals()
	var why []string
	add := func(n int, what string) {
		if n > 0 {
			why = append(why, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(t.Failed, "failed")
	add(t.Crashed, "crashed")
	add(t.Broken, "package(s) broken")
	if strict {
		add(t.Skipped, "skipped (CI allows no skips)")
	}
	if t.Run == 0 {
		why = append(why, "no tests ran")
	}
	return why
}

// Summary writes a table of packages (tests by result, time), the slowest
// tests, every test that did not pass and the totals, and reports whether
// the run passed.
func (r *Report) Summary(w io.Writer, strict bool) bool {
	fmt.Fprintln(w, "\n== SUMMARY")
	width := len("package")
	for _, p := range r.Packages {
		width = max(width, len(p.Name))
	}
	row := func(status, name string, cells ...any) {
		fmt.Fprintf(w, "%-4s  %-*s  %6v  %6v  %7v  %7v  %8v\n", append([]any{status, width, name}, cells...)...)
	}
	row("", "package", "passed", "failed", "crashed", "skipped", "time")
	var total float64
	noTests := 0
	for _, p := range r.Packages {
		total += p.Elapsed
		if p.Passed+p.Failed+p.Crashed+p.Skipped == 0 && p.Broken == "" {
			noTests++
			continue
		}
		status := "ok"
		if p.Failed+p.Crashed > 0 || p.Broken != "" {
			status = "FAIL"
		}
		row(status, p.Name, p.Passed, p.Failed, p.Crashed, p.Skipped, seconds(p.Elapsed))
	}
	if noTests > 0 {
		fmt.Fprintf(w, "packages without tests: %d\n", noTests)
	}

	slowest := slices.Clone(r.Ended)
	slices.SortStableFunc(slowest, func(a, b Result) int { return cmp.Compare(b.Elapsed, a.Elapsed) })
	var parts []string
	for _, s := range slowest[:min(5, len(slowest))] {
		if s.Elapsed >= 1 {
			parts = append(parts, fmt.Sprintf("%s %s", s.Test, seconds(s.Elapsed)))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "slowest tests: %s\n", strings.Join(parts, ", "))
	}

	for _, p := range r.Packages {
		if p.Broken != "" {
			fmt.Fprintf(w, "BROKEN   %s: %s\n", p.Name, p.Broken)
		}
	}
	list := func(label string, rs []Result) {
		for _, res := range rs {
			note := ""
			if res.Panicked {
				note = " (panicked)"
			}
			fmt.Fprintf(w, "%-8s %s %s%s\n", label, res.Package, res.Test, note)
		}
	}
	list("FAILED", r.Failed)
	list("CRASHED", r.Crashed)
	list("SKIPPED", r.Skipped)

	t := r.Totals()
	fmt.Fprintf(w, "tests: %d run, %d passed, %d failed, %d crashed, %d skipped; package times add up to %s\n",
		t.Run, t.Passed, t.Failed, t.Crashed, t.Skipped, seconds(total))
	if why := r.Problems(strict); len(why) > 0 {
		fmt.Fprintf(w, "FAIL: %s\n", strings.Join(why, ", "))
		return false
	}
	fmt.Fprintln(w, "PASS")
	return true
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond).String()
}
