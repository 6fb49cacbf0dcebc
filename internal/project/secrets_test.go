package project

import (
	"os"
	"strings"
	"testing"
)

// TestEnvSecretsStayInMemory: --secret id=X,env=VAR hands the value to
// BuildKit from memory; nothing is written under TMPDIR (a file there
// outlived every build before).
func TestEnvSecretsStayInMemory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	getenv := func(k string) string {
		if k == "NPM_TOKEN" {
			return "npm-value"
		}
		return ""
	}
	for _, tc := range []struct {
		name   string
		specs  []string
		files  map[string]string
		values map[string]string
		err    string
	}{
		{"env secret", []string{"id=npm,env=NPM_TOKEN"}, map[string]string{}, map[string]string{"npm": "npm-value"}, ""},
		{"file secret", []string{"id=key,src=/etc/key"}, map[string]string{"key": "/etc/key"}, map[string]string{}, ""},
		{"both", []string{"id=npm,env=NPM_TOKEN", "id=key,src=/k"}, map[string]string{"key": "/k"}, map[string]string{"npm": "npm-value"}, ""},
		{"unset variable", []string{"id=npm,env=UNSET"}, nil, nil, "UNSET is not set"},
		{"no id", []string{"env=NPM_TOKEN"}, nil, nil, "give id=ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, values, err := parseSecrets(tc.specs, getenv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != len(tc.files) || len(values) != len(tc.values) {
				t.Fatalf("files %v values %v, want %v %v", files, values, tc.files, tc.values)
			}
			for id, f := range tc.files {
				if files[id] != f {
					t.Errorf("file of %s = %q, want %q", id, files[id], f)
				}
			}
			for id, v := range tc.values {
				if string(values[id]) != v {
					t.Errorf("value of %s = %q, want %q", id, values[id], v)
				}
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Fatalf("secrets touched the disk: %v in TMPDIR", left)
			}
		})
	}
}
