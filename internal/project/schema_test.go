package project

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/pei-dev/pei/internal/config"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("user_config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("user_config.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

func yamlToJSON(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Editors that use the schema accept every config pei accepts (the
// scaffolds, PeiDocker's README example) and flag a typo.
func TestSchemaAcceptsWhatPeiAccepts(t *testing.T) {
	s := compileSchema(t)
	var configs [][]byte
	for _, q := range QuickModes {
		dir := t.TempDir()
		if _, err := Create(CreateOptions{Dir: dir, Quick: q}); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, config.DefaultFile))
		configs = append(configs, b)
	}
	for _, name := range []string{"peidocker-readme", "full-example"} {
		b, err := os.ReadFile(filepath.Join("..", "render", "testdata", name, "user_config.yml"))
		if err != nil {
			t.Fatal(err)
		}
		configs = append(configs, b)
	}
	for i, c := range configs {
		if err := s.Validate(yamlToJSON(t, c)); err != nil {
			t.Errorf("config %d fails the schema: %v", i, err)
		}
	}
	bad := strings.Replace(string(configs[1]), "  ssh:", "  shh:", 1)
	if err := s.Validate(yamlToJSON(t, []byte(bad))); err == nil {
		t.Error("the schema accepts an unknown key")
	}
	bad = strings.Replace(string(configs[1]), "type: cpu", "type: tpu", 1)
	if err := s.Validate(yamlToJSON(t, []byte(bad))); err == nil {
		t.Error("the schema accepts a bad device type")
	}
}
