package config

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Hook is one hook entry, "path [args...]" split with POSIX shell quoting
// rules: Script is the path as written, relative to installation/. Load
// splits every entry once; Raw keeps the entry for messages and step titles.
type Hook struct {
	Raw    string
	Script string
	Args   []Arg
}

// Arg is one hook argument: literal text and variables, in order. As in
// PeiDocker, where the argument text is shell code, a variable ($HOME,
// ${PEI_SOFT_DATA}) takes its value inside the container when the hook
// runs; pei keeps it one argument (never split or globbed).
type Arg []ArgPart

// ArgPart is literal text (Lit) or the name of a variable (Var).
type ArgPart struct {
	Lit, Var string
}

// LitArg is an argument of literal text only.
func LitArg(s string) Arg { return Arg{{Lit: s}} }

// Literal returns the argument's text when it has no variable.
func (a Arg) Literal() (string, bool) {
	var b strings.Builder
	for _, p := range a {
		if p.Var != "" {
			return "", false
		}
		b.WriteString(p.Lit)
	}
	return b.String(), true
}

// Shell returns the argument as one bash word: literal text single-quoted,
// variables as "${NAME-}" (empty when unset, also under set -u). Nothing
// in an argument can end the word, so it cannot add shell code.
func (a Arg) Shell() string {
	if len(a) == 0 {
		return "''"
	}
	var b strings.Builder
	for _, p := range a {
		if p.Var != "" {
			b.WriteString(`"${` + p.Var + `-}"`)
		} else {
			b.WriteString(shellQuote(p.Lit))
		}
	}
	return b.String()
}

// shellQuote quotes s as one POSIX shell word (a comma too, which
// shellcheck takes for a mistake in an array).
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// String returns the entry as written.
func (h Hook) String() string { return h.Raw }

func (h *Hook) setRaw(s string) { h.Raw = s }

const literalDollar = `hook arguments expand only $NAME and ${NAME} (inside the container, when the hook runs); write \$ or put it in single quotes for a literal $`

// parseHook splits a hook entry into its script and arguments as a POSIX
// shell splits words: '...' is literal; in "..." a backslash escapes only
// $ ` " and \ (and is kept before anything else); an unquoted backslash
// escapes any character; an unquoted # starting a word begins a comment.
// Shell code that pei cannot carry as arguments (command substitution,
// ; & | < > ( ), other $ expansions) is refused rather than passed on
// literally, so an entry never means something else than it would in
// PeiDocker without saying so.
func parseHook(entry string) (Hook, error) {
	if i, r := controlAt(entry); i >= 0 {
		return Hook{}, fmt.Errorf("the entry has a control character (%U) at byte %d; write the entry on one line, without newlines, tabs or other control characters", r, i+1)
	}
	var (
		words  []Arg
		cur    Arg
		inWord bool
		lit    strings.Builder
	)
	flush := func() {
		if lit.Len() > 0 {
			cur = append(cur, ArgPart{Lit: lit.String()})
			lit.Reset()
		}
	}
	endWord := func() {
		if inWord {
			flush()
			if cur == nil {
				cur = Arg{}
			}
			words = append(words, cur)
		}
		cur, inWord = nil, false
	}
	// dollar reads a variable at s[i] == '$' and returns the index after it.
	dollar := func(i int) (int, error) {
		rest := entry[i+1:]
		if strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 || !validVarName(rest[1:end]) {
				return 0, fmt.Errorf("%q at byte %d: %s", "${", i+1, literalDollar)
			}
			flush()
			cur = append(cur, ArgPart{Var: rest[1:end]})
			return i + 1 + end + 1, nil
		}
		n := 0
		for n < len(rest) && (rest[n] == '_' || rest[n] >= 'A' && rest[n] <= 'Z' || rest[n] >= 'a' && rest[n] <= 'z' || n > 0 && rest[n] >= '0' && rest[n] <= '9') {
			n++
		}
		if n == 0 {
			return 0, fmt.Errorf("%q at byte %d: %s", "$"+firstRune(rest), i+1, literalDollar)
		}
		flush()
		cur = append(cur, ArgPart{Var: rest[:n]})
		return i + 1 + n, nil
	}
	for i := 0; i < len(entry); {
		c := entry[i]
		switch {
		case c == ' ':
			endWord()
			i++
		case c == '#' && !inWord:
			i = len(entry)
		case c == '\'':
			inWord = true
			end := strings.IndexByte(entry[i+1:], '\'')
			if end < 0 {
				return Hook{}, fmt.Errorf("cannot split %q into a path and arguments: the ' at byte %d is not closed", entry, i+1)
			}
			lit.WriteString(entry[i+1 : i+1+end])
			i += end + 2
		case c == '"':
			inWord = true
			j := i + 1
			for {
				if j >= len(entry) {
					return Hook{}, fmt.Errorf("cannot split %q into a path and arguments: the \" at byte %d is not closed", entry, i+1)
				}
				d := entry[j]
				if d == '"' {
					j++
					break
				}
				switch d {
				case '\\':
					if j+1 < len(entry) && strings.IndexByte("$`\"\\", entry[j+1]) >= 0 {
						lit.WriteByte(entry[j+1])
						j += 2
					} else {
						lit.WriteByte('\\')
						j++
					}
				case '$':
					next, err := dollar(j)
					if err != nil {
						return Hook{}, err
					}
					j = next
				case '`':
					return Hook{}, fmt.Errorf("` at byte %d: command substitution is not supported in hook arguments; run the command in the script, or write \\` for a literal `", j+1)
				default:
					lit.WriteByte(d)
					j++
				}
			}
			i = j
		case c == '\\':
			inWord = true
			if i+1 >= len(entry) {
				return Hook{}, fmt.Errorf("cannot split %q into a path and arguments: it ends with a \\; write \\\\ for a backslash", entry)
			}
			_, size := utf8.DecodeRuneInString(entry[i+1:])
			lit.WriteString(entry[i+1 : i+1+size])
			i += 1 + size
		case c == '$':
			inWord = true
			next, err := dollar(i)
			if err != nil {
				return Hook{}, err
			}
			i = next
		case strings.IndexByte(";&|<>()`", c) >= 0:
			return Hook{}, fmt.Errorf("%q at byte %d is shell syntax that a hook entry cannot hold (it is a script path and its arguments); quote it ('%c') to pass it as an argument", c, i+1, c)
		default:
			inWord = true
			lit.WriteByte(c)
			i++
		}
	}
	endWord()
	if len(words) == 0 {
		return Hook{}, fmt.Errorf("empty entry; give a script path relative to installation/")
	}
	script, ok := words[0].Literal()
	if !ok {
		return Hook{}, fmt.Errorf("the script path %q holds a variable; give the path relative to installation/ as written", entry)
	}
	return Hook{Raw: entry, Script: script, Args: words[1:]}, nil
}

func firstRune(s string) string {
	if s == "" {
		return ""
	}
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}
