package config

import (
	"fmt"
	"regexp"
	"strings"
)

// LookupFunc returns the value of an environment variable. It is injected so
// that loading a config never reads the process environment by itself.
type LookupFunc func(name string) (string, bool)

// interpolate expands configure-time variables in s:
//
//	${VAR}           the value of VAR, empty when unset
//	${VAR:-default}  default when VAR is unset or empty
//	${VAR-default}   default when VAR is unset
//	${VAR:?message}  an error naming message when VAR is unset or empty
//	$$               a literal $
//	{{VAR}}          written through as ${VAR}, for Compose to resolve at run time
//	{{VAR:-default}} written through as ${VAR:-default}
func interpolate(s string, lookup LookupFunc) (string, error) {
	out, _, err := interpolateRefs(s, lookup)
	return out, err
}

// interpolateRefs is interpolate that also returns where in the result the
// {{VAR}}s left for Compose are: a ${VAR} there is a run-time reference,
// any other $ in the result (from $$) is literal.
func interpolateRefs(s string, lookup LookupFunc) (string, []Span, error) {
	if !strings.ContainsAny(s, "${") {
		return s, nil, nil
	}
	var refs []Span
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$$"):
			b.WriteByte('$')
			i += 2
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", nil, fmt.Errorf("unclosed ${ in %q (write $$ for a literal $)", s)
			}
			v, err := expand(s[i+2:i+end], lookup)
			if err != nil {
				return "", nil, err
			}
			b.WriteString(v)
			i += end + 1
		case strings.HasPrefix(s[i:], "{{"):
			end := strings.Index(s[i:], "}}")
			name, def, hasDef := "", "", false
			if end >= 0 {
				name, def, hasDef = strings.Cut(s[i+2:i+end], ":-")
				name, def = strings.TrimSpace(name), strings.TrimSpace(def)
			}
			if end < 0 || !validVarName(name) {
				b.WriteString("{{")
				i += 2
				continue
			}
			// The default is written into compose files and shell scripts
			// as it is, inside ${...}: it must not end that, nor expand.
			if strings.ContainsAny(def, runtimeDefaultForbidden) {
				return "", nil, fmt.Errorf("{{%s:-%s}}: a default cannot hold any of %s", name, def, runtimeDefaultNames)
			}
			ref := "${" + name + "}"
			if hasDef {
				ref = "${" + name + ":-" + def + "}"
			}
			refs = append(refs, Span{Start: b.Len(), End: b.Len() + len(ref)})
			b.WriteString(ref)
			i += end + 2
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), refs, nil
}

func expand(expr string, lookup LookupFunc) (string, error) {
	name, op, arg := expr, "", ""
	for _, o := range []string{":-", ":?", "-", "?"} {
		if k := strings.Index(expr, o); k > 0 {
			name, op, arg = expr[:k], o, expr[k+len(o):]
			break
		}
	}
	if !validVarName(name) {
		return "", fmt.Errorf("${%s}: %q is not a variable name", expr, name)
	}
	v, ok := lookup(name)
	switch op {
	case ":-":
		if !ok || v == "" {
			return arg, nil
		}
	case "-":
		if !ok {
			return arg, nil
		}
	case ":?", "?":
		if !ok || (op == ":?" && v == "") {
			if arg == "" {
				arg = "is required"
			}
			return "", fmt.Errorf("variable %s: %s", name, arg)
		}
	}
	return v, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') {
			continue
		}
		return false
	}
	return true
}

// RuntimeVarRe matches what a {{VAR}} or {{VAR:-default}} became: a ${VAR}
// or ${VAR:-default} that Compose, or pei build, resolves. Group 1 is the
// name, group 2 the ":-default" part.
var RuntimeVarRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^{}$"'\x60\\~\n]*)?\}`)

// runtimeDefaultForbidden are the characters a {{VAR:-default}}'s default
// cannot hold (RuntimeVarRe's class must agree).
const (
	runtimeDefaultForbidden = "{}$\"'`\\~\n"
	runtimeDefaultNames     = "{ } $ \" ' ` \\ ~ or a line break"
)

// ResolveRuntime resolves the run-time variables of s as Compose does:
// ${VAR} is VAR's value ("" when unset) and ${VAR:-default} is default
// when VAR is unset or empty. A nil lookup sets nothing.
func ResolveRuntime(s string, lookup LookupFunc) string {
	return RuntimeVarRe.ReplaceAllStringFunc(s, func(m string) string {
		g := RuntimeVarRe.FindStringSubmatch(m)
		var v string
		if lookup != nil {
			v, _ = lookup(g[1])
		}
		if v == "" && g[2] != "" {
			return g[2][2:]
		}
		return v
	})
}

// exampleValue is s with each run-time variable at its default, or at
// placeholder when it has none (all reports whether each had a default):
// what validation checks in place of a value known only when Compose or
// pei build resolves it.
func exampleValue(s, placeholder string) (v string, all bool) {
	all = true
	v = RuntimeVarRe.ReplaceAllStringFunc(s, func(m string) string {
		if g := RuntimeVarRe.FindStringSubmatch(m); g[2] != "" {
			return g[2][2:]
		}
		all = false
		return placeholder
	})
	return v, all
}
