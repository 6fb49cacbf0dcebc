package config

import (
	"encoding/json"
	"reflect"
	"strings"
)

// Schema returns the JSON Schema (draft 2020-12) of user_config.yml,
// generated from the same struct tags the decoder reads.
func Schema() ([]byte, error) {
	s := schemaOf(reflect.TypeOf(Config{}), "", false)
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://github.com/pei-dev/pei/schema/user_config.schema.json"
	s["title"] = "pei user_config.yml"
	s["required"] = []string{"stage_1"}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

type obj = map[string]any

func schemaOf(t reflect.Type, doc string, keyed bool) obj {
	var s obj
	switch {
	case t == envListType:
		s = obj{"oneOf": []any{
			obj{"type": "array", "items": obj{"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*="}},
			obj{"type": "object", "additionalProperties": obj{"type": []string{"string", "number", "boolean", "null"}}},
			obj{"type": "null"},
		}}
	case t == entryHooksType:
		s = obj{"type": []string{"array", "string", "null"}, "items": schemaOf(t.Elem(), "", false)}
	case t.Kind() == reflect.String || isTextValue(t):
		s = obj{"type": []string{"string", "number", "null"}}
	case t.Kind() == reflect.Pointer:
		inner := schemaOf(t.Elem(), "", keyed)
		s = obj{"anyOf": []any{inner, obj{"type": "null"}}}
	case t.Kind() == reflect.Struct:
		props := obj{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := f.Tag.Get("yaml")
			if name == "" || name == "-" {
				continue
			}
			fs := schemaOf(f.Type, f.Tag.Get("doc"), f.Tag.Get("key") != "")
			if f.Tag.Get("runvar") != "" {
				// An integer that may also be a {{VAR}} (see decoder.runVar).
				fs = obj{"anyOf": []any{obj{"type": "integer"}, obj{"type": "string", "pattern": `^(\$\{|\{\{)`}, obj{"type": "null"}}, "description": f.Tag.Get("doc")}
			}
			if enum := f.Tag.Get("enum"); enum != "" {
				if f.Type.Kind() == reflect.Slice {
					fs["items"] = obj{"enum": strings.Split(enum, "|")} // a list of them
				} else {
					fs["enum"] = strings.Split(enum, "|")
				}
			}
			props[name] = fs
		}
		s = obj{"type": []string{"object", "null"}, "properties": props, "additionalProperties": false}
	case t.Kind() == reflect.Slice && keyed:
		s = obj{"type": []string{"object", "null"}, "additionalProperties": schemaOf(t.Elem(), "", false)}
	case t.Kind() == reflect.Slice:
		s = obj{"type": []string{"array", "null"}, "items": schemaOf(t.Elem(), "", false)}
	case t.Kind() == reflect.Int:
		s = obj{"anyOf": []any{obj{"type": "integer"}, obj{"type": "string", "pattern": `^\$\{`}}}
	case t.Kind() == reflect.Bool:
		s = obj{"type": "boolean"}
	}
	if doc != "" {
		s["description"] = doc
	}
	return s
}
