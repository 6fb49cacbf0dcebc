package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the checked-in schema")

// The checked-in schema is what the Go types say; regenerate it with
// go test ./internal/config -run TestSchemaCheckedIn -update.
func TestSchemaCheckedIn(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	checkedIn(t, filepath.Join("..", "..", "schema", "user_config.schema.json"), got)
	props := v["properties"].(map[string]any)
	s1 := props["stage_1"].(map[string]any)["properties"].(map[string]any)
	if _, ok := s1["ssh"]; !ok {
		t.Error("stage_1.ssh missing from the schema")
	}
}

// docs/config.md is what the Go types say.
func TestReferenceCheckedIn(t *testing.T) {
	checkedIn(t, filepath.Join("..", "..", "docs", "config.md"), []byte(Reference()))
}

// checkedIn fails t unless the file at path holds got; -update writes it.
func checkedIn(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go test ./internal/config -run %s -update", path, t.Name())
	}
}
