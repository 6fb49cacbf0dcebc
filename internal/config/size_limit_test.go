package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigSizeLimit: a config of exactly MaxFileSize bytes loads; one
// byte more is refused before it is parsed.
func TestConfigSizeLimit(t *testing.T) {
	// padded returns a valid config of n bytes: comment lines, then the
	// config proper, whose last byte closes a flow mapping, so a reader
	// that drops the last byte gets a YAML error instead of a config.
	const body = "stage_1:\n  image: {base: debian:bookworm}"
	padded := func(n int) []byte {
		var b strings.Builder
		for b.Len() < n-len(body) {
			room := n - len(body) - b.Len()
			if room == 1 {
				b.WriteString("\n")
				continue
			}
			b.WriteString("#" + strings.Repeat("x", min(99, room-2)) + "\n")
		}
		b.WriteString(body)
		if b.Len() != n {
			t.Fatalf("padded config is %d bytes, want %d", b.Len(), n)
		}
		return []byte(b.String())
	}
	for _, tc := range []struct {
		name string
		size int
		ok   bool
	}{
		{"at the limit", MaxFileSize, true},
		{"one byte over", MaxFileSize + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, DefaultFile), padded(tc.size), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(LoadOptions{ProjectDir: dir})
			if tc.ok {
				if err != nil || c.Stage1.Image.Base == nil || c.Stage1.Image.Base.Raw != "debian:bookworm" {
					t.Fatalf("config of %d bytes: %+v, %v", tc.size, c.Stage1.Image, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "a config may be at most 1048576 bytes") {
				t.Fatalf("config of %d bytes: error %v, want the size limit", tc.size, err)
			}
		})
	}
}
