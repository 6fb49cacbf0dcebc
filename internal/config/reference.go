package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Reference returns the Markdown reference of every config key, generated
// from the same struct tags as the decoder and the schema.
func Reference() string {
	var b strings.Builder
	b.WriteString("# user_config.yml reference\n\n")
	b.WriteString("Generated from pei's Go types (`go test ./internal/config -run TestReferenceCheckedIn -update`); do not edit.\n")
	b.WriteString("Paths of scripts and key files are relative to the project's `installation/` folder.\n")
	b.WriteString("`${VAR}`, `${VAR:-default}`, `${VAR-default}` and `${VAR:?message}` are replaced by `pei configure` from its environment;\n")
	b.WriteString("`{{VAR}}` becomes `${VAR}` in docker-compose.yml, for Compose to resolve when the container runs; `$$` is a literal `$`.\n\n")
	b.WriteString("| key | type | default | meaning |\n|---|---|---|---|\n")
	refRows(&b, reflect.TypeOf(Config{}), "")
	return b.String()
}

func refRows(b *strings.Builder, t reflect.Type, prefix string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("yaml")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		typ := typeName(ft, f.Tag.Get("key") != "")
		if e := f.Tag.Get("enum"); e != "" {
			typ = "`" + strings.ReplaceAll(e, "|", "` \\| `") + "`"
		}
		def := f.Tag.Get("default")
		if def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", path, typ, def, f.Tag.Get("doc"))
		switch {
		case ft.Kind() == reflect.Struct && !isTextValue(ft):
			refRows(b, ft, path+".")
		case ft.Kind() == reflect.Slice && f.Tag.Get("key") != "":
			refRows(b, ft.Elem(), path+".<"+f.Tag.Get("key")+">.")
		}
	}
}

func typeName(t reflect.Type, keyed bool) string {
	switch {
	case t == envListType:
		return "list of `K=V` or mapping"
	case t == entryHooksType:
		return "list of strings, or a string"
	case isTextValue(t):
		return "string"
	case keyed:
		return "mapping of name → section"
	case t.Kind() == reflect.Struct:
		return "section"
	case t.Kind() == reflect.Slice:
		return "list of strings"
	case t.Kind() == reflect.Int:
		return "integer"
	case t.Kind() == reflect.Bool:
		return "boolean"
	}
	return "string"
}
