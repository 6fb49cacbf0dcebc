package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds how many YAML nodes one config may expand to, so that an
// alias bomb fails fast instead of exhausting memory.
const maxNodes = 100_000

// decoder turns a yaml.Node tree into the typed config, strictly: unknown
// keys, wrong types and duplicate keys are errors, and every error is kept.
type decoder struct {
	file   string
	lookup LookupFunc
	errs   Errors
	pos    map[string]Pos
	nodes  int
	halted bool
	// failed holds the paths that had a decode error, so that validation
	// does not report a second problem about the same value.
	failed map[string]bool
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	e := &FieldError{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if d.failed == nil {
		d.failed = map[string]bool{}
	}
	d.failed[path] = true
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// resolve follows aliases and charges the node budget.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.nodes++
	if d.nodes > maxNodes && !d.halted {
		d.halted = true
		d.errorf(n, path, "the document has more than %d nodes (too many aliases or entries); refusing to read further", maxNodes)
	}
	return n
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	envListType    = reflect.TypeOf(EnvList(nil))
	entryHooksType = reflect.TypeOf(EntryHooks(nil))
)

// textValue is a config type written as one YAML string (ImageRef, Hook):
// the decoder stores the string, validation parses it, and the schema and
// reference show a string.
type textValue interface{ setRaw(string) }

var (
	textValueType = reflect.TypeOf((*textValue)(nil)).Elem()
	imageRefType  = reflect.TypeOf(ImageRef{})
	hookType      = reflect.TypeOf(Hook{})
)

// dollarOutsideRefs reports whether s has a $ outside its run-time references.
func dollarOutsideRefs(s string, refs []Span) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			continue
		}
		in := false
		for _, r := range refs {
			in = in || i >= r.Start && i < r.End
		}
		if !in {
			return true
		}
	}
	return false
}

func isTextValue(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && reflect.PointerTo(t).Implements(textValueType)
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, keyed bool) {
	n = d.resolve(n, path)
	if d.halted || n == nil {
		return
	}
	d.pos[path] = Pos{n.Line, n.Column}
	t := v.Type()
	if t == envListType {
		d.decodeEnv(n, v, path)
		return
	}
	if t == entryHooksType && n.Kind == yaml.ScalarNode && !isNull(n) {
		// One entry as a string: the list of it, at the path its entry
		// would have ([0]), so later messages name it as in a list.
		one := reflect.MakeSlice(t, 1, 1)
		d.decode(n, one.Index(0), path+"[0]", false)
		v.Set(one)
		return
	}
	if isTextValue(t) {
		s, refs, ok := d.scalarRefs(n, path, "a string")
		if !ok {
			return
		}
		// An image name's ${VAR} is a run-time reference ({{VAR}}); a $
		// written as $$ would be taken for one, and no image name holds a $.
		if t == imageRefType && dollarOutsideRefs(s, refs) {
			d.errorf(n, path, "%q: an image name cannot hold a literal $ (write {{VAR}} for a variable resolved when the image is built or run, ${VAR} for one pei configure fills in)", s)
			return
		}
		// A hook entry goes into generated scripts, where no Compose
		// resolves a {{VAR}}, and once written as ${VAR} it could not be
		// told from a literal $${VAR}: PeiDocker refuses it too.
		if t == hookType && len(refs) > 0 {
			d.errorf(n, path, "%q: {{VAR}} cannot be used in a hook entry (it runs from a generated script, which Compose does not fill in); write $VAR for a variable the shell expands inside the container when the hook runs, or ${VAR} for one pei configure fills in", n.Value)
			return
		}
		v.Addr().Interface().(textValue).setRaw(s)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		nv := reflect.New(t.Elem())
		d.decode(n, nv.Elem(), path, keyed)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if keyed {
			d.decodeKeyed(n, v, path)
		} else {
			d.decodeList(n, v, path)
		}
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Int:
		s, ok := d.scalar(n, path, "an integer")
		if !ok {
			return
		}
		i, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			d.errorf(n, path, "expected an integer, got %q", s)
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.errorf(n, path, "expected true or false, got %q", s)
		}
	default:
		panic("config: unsupported field type " + t.String()) // a bug in types.go, not in input
	}
}

// scalar returns a scalar's value with configure-time variables expanded.
// Null counts as empty.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	s, _, ok := d.scalarRefs(n, path, want)
	return s, ok
}

// scalarRefs is scalar that also returns the run-time references ({{VAR}})
// of the value.
func (d *decoder) scalarRefs(n *yaml.Node, path, want string) (string, []Span, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, got %s", want, kindName(n))
		return "", nil, false
	}
	if isNull(n) {
		return "", nil, true
	}
	s, refs, err := interpolateRefs(n.Value, d.lookup)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return "", nil, false
	}
	return s, refs, true
}

// fields lists a struct type's YAML keys in declaration order.
func fields(t reflect.Type) (names []string, index []int, keyed []bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		index = append(index, i)
		keyed = append(keyed, f.Tag.Get("key") != "")
	}
	return
}

func (d *decoder) mappingPairs(n *yaml.Node, path string) [][2]*yaml.Node {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", kindName(n))
		return nil
	}
	var pairs [][2]*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := d.resolve(n.Content[i], path), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain strings, got %s", kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			d.errorf(k, path, "YAML merge keys (<<) are not supported; write the keys out")
			continue
		}
		if seen[k.Value] {
			d.errorf(k, join(path, k.Value), "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		pairs = append(pairs, [2]*yaml.Node{k, val})
	}
	return pairs
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	names, index, keyed := fields(v.Type())
	for _, p := range d.mappingPairs(n, path) {
		k, val := p[0], p[1]
		found := -1
		for i, name := range names {
			if name == k.Value {
				found = i
			}
		}
		if found < 0 {
			msg := fmt.Sprintf("unknown key %q", k.Value)
			if s := suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += fmt.Sprintf("; known keys: %s", strings.Join(names, ", "))
			}
			d.errorf(k, join(path, k.Value), "%s", msg)
			continue
		}
		if rv := v.Type().Field(index[found]).Tag.Get("runvar"); rv != "" && d.runVar(val, v.Field(index[found]), v.FieldByName(rv), join(path, k.Value)) {
			continue
		}
		d.decode(val, v.Field(index[found]), join(path, k.Value), keyed[found])
	}
}

// runVar decodes an integer field (a *int) that may also be written as a
// whole {{VAR}} or {{VAR:-default}}, as PeiDocker takes ssh.host_port: ref
// gets the ${VAR:-default} for Compose, the field its default. It reports
// whether the value held a run-time variable (and so was handled).
func (d *decoder) runVar(n *yaml.Node, field, ref reflect.Value, path string) bool {
	r := n
	for r != nil && r.Kind == yaml.AliasNode {
		r = r.Alias
	}
	if r == nil || r.Kind != yaml.ScalarNode || isNull(r) || !strings.Contains(r.Value, "{{") {
		return false
	}
	s, refs, err := interpolateRefs(r.Value, d.lookup)
	if err != nil || len(refs) == 0 {
		return false // decode reports the error, or the value is not a variable
	}
	r = d.resolve(n, path)
	d.pos[path] = Pos{r.Line, r.Column}
	if len(refs) != 1 || refs[0] != (Span{Start: 0, End: len(s)}) {
		d.errorf(r, path, "%q: a {{VAR}} here must be the whole value, as in {{SSH_HOST_PORT:-2222}}", r.Value)
		return true
	}
	ref.SetString(s)
	if g := RuntimeVarRe.FindStringSubmatch(s); g != nil && g[2] != "" {
		i, err := strconv.Atoi(strings.TrimSpace(g[2][2:]))
		if err != nil {
			d.errorf(r, path, "%q: the default of a {{VAR:-default}} here must be an integer", r.Value)
			return true
		}
		p := reflect.New(field.Type().Elem())
		p.Elem().SetInt(int64(i))
		field.Set(p)
	}
	return true
}

// decodeKeyed reads a mapping of name -> struct into a slice of structs whose
// Name field holds the key, keeping the order written.
func (d *decoder) decodeKeyed(n *yaml.Node, v reflect.Value, path string) {
	pairs := d.mappingPairs(n, path)
	out := reflect.MakeSlice(v.Type(), 0, len(pairs))
	for _, p := range pairs {
		elem := reflect.New(v.Type().Elem()).Elem()
		elem.FieldByName("Name").SetString(p[0].Value)
		sub := join(path, p[0].Value)
		d.pos[sub+".<key>"] = Pos{p[0].Line, p[0].Column}
		val := d.resolve(p[1], sub)
		if !isNull(val) {
			d.decode(val, elem, sub, false)
		} else {
			d.pos[sub] = Pos{val.Line, val.Column}
		}
		out = reflect.Append(out, elem)
	}
	v.Set(out)
}

func (d *decoder) decodeList(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.SetZero()
		return
	}
	if n.Kind != yaml.SequenceNode {
		want := "a list"
		if v.Type() == entryHooksType {
			want = "a list, or one entry as a string"
		}
		d.errorf(n, path, "expected %s, got %s", want, kindName(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i), false)
	}
	v.Set(out)
}

func (d *decoder) decodeEnv(n *yaml.Node, v reflect.Value, path string) {
	var env EnvList
	add := func(at *yaml.Node, p, name, value string, refs []Span) {
		if !validVarName(name) {
			d.errorf(at, p, "%q is not a valid environment variable name (letters, digits and _, not starting with a digit)", name)
			return
		}
		if i, r := controlAt(value); i >= 0 {
			// sshd_config is read line by line and SetEnv has no escape for
			// a newline, so such a value could not reach SSH sessions as the
			// image and Compose have it.
			d.errorf(at, p, "the value of %s has a control character (%U) at byte %d; environment values must be one line without control characters, since SSH sessions get them through sshd's SetEnv, which cannot hold them", name, r, i+1)
			return
		}
		for _, e := range env {
			if e.Name == name {
				d.errorf(at, p, "environment variable %s is set twice", name)
				return
			}
		}
		env = append(env, EnvVar{Name: name, Value: value, RunRefs: refs})
	}
	switch {
	case isNull(n):
	case n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			item = d.resolve(item, p)
			d.pos[p] = Pos{item.Line, item.Column}
			s, refs, ok := d.scalarRefs(item, p, "a K=V string")
			if !ok {
				continue
			}
			name, value, found := strings.Cut(s, "=")
			if !found {
				d.errorf(item, p, "expected K=V, got %q", s)
				continue
			}
			add(item, p, name, value, shiftSpans(refs, len(name)+1))
		}
	case n.Kind == yaml.MappingNode:
		for _, pair := range d.mappingPairs(n, path) {
			p := join(path, pair[0].Value)
			val := d.resolve(pair[1], p)
			d.pos[p] = Pos{val.Line, val.Column}
			s, refs, ok := d.scalarRefs(val, p, "a string")
			if ok {
				add(pair[0], p, pair[0].Value, s, refs)
			}
		}
	default:
		d.errorf(n, path, "expected a list of K=V strings or a mapping, got %s", kindName(n))
	}
	v.Set(reflect.ValueOf(env))
}

// shiftSpans moves spans of "K=V" onto V, which starts at off; a span in K
// (a {{VAR}} in the name, which the name check refuses) is dropped.
func shiftSpans(spans []Span, off int) []Span {
	var out []Span
	for _, sp := range spans {
		if sp.Start >= off {
			out = append(out, Span{Start: sp.Start - off, End: sp.End - off})
		}
	}
	return out
}

// controlAt returns the byte index and the first control character of s
// (newline, CR, tab, DEL, ...: one that can end a line or hide text in a
// generated file), or -1.
func controlAt(s string) (int, rune) {
	for i, r := range s {
		if unicode.IsControl(r) {
			return i, r
		}
	}
	return -1, 0
}
