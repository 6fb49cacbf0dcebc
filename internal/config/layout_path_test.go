package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayoutBaseStaysInProject: an oci-layout:// base is a layout
// directory inside the project; one reached through a symbolic link that
// leads out of the project is refused like one named with "..".
func TestLayoutBaseStaysInProject(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{filepath.Join(dir, "bases", "debian"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "bases", "elsewhere")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("debian", filepath.Join(dir, "bases", "alias")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref  string
		want string // "" is valid
	}{
		{"oci-layout://bases/debian:bookworm", ""},
		{"oci-layout://bases/alias", ""},
		{"oci-layout://bases/elsewhere", `"bases/elsewhere" is a link to ` + outside + `, outside the project`},
		{"oci-layout://../x", `"../x" leaves the project directory`},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			_, err := parse(t, dir, "stage_1:\n  image: {base: '"+tc.ref+"'}\n", nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("layout in the project refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
