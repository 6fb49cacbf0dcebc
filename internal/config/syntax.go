package config

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reports a syntax error as "yaml: line N: problem", where N is the
// line of the construct the parser was in (the context mark), else of the
// token it stopped at, and is 0-based for parser errors but 1-based for
// scanner errors; on the first line it gives no line at all. syntaxError
// undoes that, so the message names the line a user would call the real
// place: where an unclosed construct began and where the parser stopped.
var yamlErrRe = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// parserProblems are the problems yaml.v3's parser (not its scanner)
// reports: their line is 0-based.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

func syntaxError(file string, data []byte, err error) *FieldError {
	m := yamlErrRe.FindStringSubmatch(err.Error())
	if m == nil {
		return &FieldError{File: file, Msg: "YAML syntax error: " + err.Error()}
	}
	problem := m[2]
	n, _ := strconv.Atoi(m[1]) // no line means the first
	line := max(n, 1)
	if parserProblems[problem] {
		line = n + 1
	}
	lines := bytes.Split(data, []byte("\n"))
	text := func(l int) string {
		if l < 1 || l > len(lines) {
			return ""
		}
		return string(lines[l-1])
	}
	e := &FieldError{File: file, Line: line, Col: 1, Msg: "YAML syntax error: " + problem}

	switch problem {
	case "did not find expected ',' or ']'", "did not find expected ',' or '}'":
		open, close := byte('['), byte(']')
		if strings.HasSuffix(problem, "'}'") {
			open, close = '{', '}'
		}
		col := openBracket(text(line), open)
		if col == 0 && line != 1 {
			// A construct on the first line: yaml.v3 gave the stop's line.
			if c := openBracket(text(1), open); c > 0 {
				line, col = 1, c
			}
		}
		if col == 0 {
			break
		}
		e.Line, e.Col = line, col
		what := "list"
		if open == '{' {
			what = "mapping"
		}
		e.Msg = fmt.Sprintf("YAML syntax error: unclosed '%c' opened here", open)
		if stop := stopLine(data, lines, line, problem); stop > 0 {
			e.Msg += "; the parser " + stopped(lines, stop)
		}
		e.Msg += fmt.Sprintf(" without finding ',' or '%c'; close the %s with '%c', or quote a value that holds '%c'", close, what, close, open)
	case "did not find expected key", "did not find expected '-' indicator", "did not find expected node content":
		ctx := line
		stop := stopLine(data, lines, ctx, problem)
		if stop <= 0 {
			// The construct is on the first line, so yaml.v3 gave the
			// stop's line.
			ctx, stop = 1, line
		}
		e.Line = stop
		if stop != ctx {
			// The offending token then starts its line: mis-indented.
			e.Col = firstNonBlank(text(stop))
		}
		what := "mapping"
		switch problem {
		case "did not find expected '-' indicator":
			what = "list"
		case "did not find expected node content":
			what = "value"
		}
		e.Msg = fmt.Sprintf("YAML syntax error: %s: this does not fit the %s that starts at line %d:%d; check the indentation (spaces only) and look for an unbalanced bracket or quote", problem, what, ctx, firstNonBlank(text(ctx)))
	case "found a tab character that violates indentation":
		// The line is the plain scalar's before the tab; the tab is on a
		// later line's indentation.
		for l := line + 1; l <= len(lines); l++ {
			if c := indentTab(text(l)); c > 0 {
				e.Line, e.Col = l, c
				break
			}
		}
		e.Msg = "YAML syntax error: a tab in the indentation; YAML indents with spaces only"
	case "found character that cannot start any token":
		if c := indentTab(text(line)); c > 0 {
			e.Col = c
			e.Msg += " (a tab: YAML indents with spaces only)"
		}
	case "mapping values are not allowed in this context":
		e.Msg += "; quote a value that holds ': ', or check the indentation of this line and the one above"
	case "found unexpected end of stream":
		if c := openQuote(text(line)); c > 0 {
			e.Col = c
			e.Msg = "YAML syntax error: unclosed quote opened here; the parser reached the end of the file looking for the closing one"
		}
	}
	return e
}

// stopLine finds where the parser stopped for a problem whose context
// (the construct it was in) began on line ctx: parsing from the start of
// that line puts the context on yaml.v3's line 0, so that it reports the
// stop's line instead. 0 means unknown.
func stopLine(data []byte, lines [][]byte, ctx int, problem string) int {
	if ctx < 1 || ctx > len(lines) {
		return 0
	}
	off := 0
	for _, l := range lines[:ctx-1] {
		off += len(l) + 1
	}
	var n yaml.Node
	err := yaml.NewDecoder(bytes.NewReader(data[off:])).Decode(&n)
	if err == nil {
		return 0
	}
	m := yamlErrRe.FindStringSubmatch(err.Error())
	if m == nil || m[2] != problem {
		return 0 // the text parsed alone went another way
	}
	rel, _ := strconv.Atoi(m[1])
	return ctx + rel
}

// stopped says where the parser stopped: a line, or the end of the file
// when only blank lines follow.
func stopped(lines [][]byte, stop int) string {
	for _, l := range lines[min(stop, len(lines))-1:] {
		if len(bytes.TrimSpace(l)) > 0 {
			return fmt.Sprintf("stopped at line %d", stop)
		}
	}
	return "reached the end of the file"
}

func firstNonBlank(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' {
			return i + 1
		}
	}
	return 1
}

// indentTab is the column of the first tab in s's indentation, or 0.
func indentTab(s string) int {
	for i := 0; i < len(s) && (s[i] == ' ' || s[i] == '\t'); i++ {
		if s[i] == '\t' {
			return i + 1
		}
	}
	return 0
}

// flowScan walks one line as YAML tokens closely enough to tell brackets
// and quotes that open something from those inside scalars or comments.
// It returns the brackets still open at the end of the line and the
// column of a quote still open, or 0.
func flowScan(s string) (open []int, quote int) {
	startsToken := func(i int) bool {
		return i == 0 || strings.IndexByte(" \t[{,", s[i-1]) >= 0
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote > 0:
			switch {
			case s[quote-1] == '"' && c == '\\':
				i++
			case c == s[quote-1] && c == '\'' && i+1 < len(s) && s[i+1] == '\'':
				i++
			case c == s[quote-1]:
				quote = 0
			}
		case c == '#' && startsToken(i):
			return open, 0
		case (c == '"' || c == '\'') && (startsToken(i) || (i > 0 && s[i-1] == ':')):
			quote = i + 1
		case (c == '[' || c == '{') && startsToken(i):
			open = append(open, i+1)
		case (c == ']' || c == '}') && len(open) > 0:
			if last := s[open[len(open)-1]-1]; (last == '[') == (c == ']') {
				open = open[:len(open)-1]
			}
		}
	}
	return open, quote
}

// openBracket is the column of the innermost bracket of kind b left open
// on line s, or 0.
func openBracket(s string, b byte) int {
	open, _ := flowScan(s)
	for i := len(open) - 1; i >= 0; i-- {
		if s[open[i]-1] == b {
			return open[i]
		}
	}
	return 0
}

// openQuote is the column of a quote left open on line s, or 0.
func openQuote(s string) int {
	_, q := flowScan(s)
	return q
}
