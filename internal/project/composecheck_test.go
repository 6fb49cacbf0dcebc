package project

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pei-dev/pei/internal/testenv"
)

// findCompose looks for Docker Compose once per test binary.
var findCompose = sync.OnceValues(testenv.FindCompose)

// composeConfig runs Docker Compose's own 'config' on the project in dir,
// with every profile, and returns its complaint if it refuses the file.
// Its environment sets no project variable (only what the docker CLI
// needs to find its plugins), so every ${VAR:-default} takes its default
// as on a user's first 'docker compose up'.
func composeConfig(ctx context.Context, compose []string, dir string) error {
	args := append(append([]string{}, compose[1:]...), "--profile", "*", "config", "--quiet")
	cmd := exec.CommandContext(ctx, compose[0], args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for _, k := range []string{"HOME", "DOCKER_CONFIG"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s in %s: %w\n%s", compose[0], strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// composeAccepts runs composeConfig on each configured project (keyed by
// name) in parallel subtests of one "docker compose config" subtest, which
// Docker Compose v2 missing skips outside CI and fails in CI.
func composeAccepts(t *testing.T, dirs map[string]string) {
	t.Helper()
	t.Run("docker compose config", func(t *testing.T) {
		compose, missing := findCompose()
		if compose == nil {
			testenv.Missing(t, missing)
		}
		for name, dir := range dirs {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				if err := composeConfig(t.Context(), compose, dir); err != nil {
					t.Errorf("Docker Compose refuses the docker-compose.yml pei wrote: %v", err)
				}
			})
		}
	})
}

// composeConfig passes what Compose takes and returns Compose's own words
// on what it refuses, so a refusal in the corpora shows its reason.
func TestComposeConfigRefuses(t *testing.T) {
	compose := testenv.Compose(t)
	for _, tc := range []struct {
		name, file, err string
	}{
		{"valid", "services:\n  s:\n    image: ${TAG_IMAGE:-debian:bookworm}\n    profiles: [stage-1]\n", ""},
		{"bad port", "services:\n  s:\n    image: debian\n    ports: ['${P:-x}:80']\n", "invalid"},
		{"unknown key in a profile's service", "services:\n  s:\n    image: debian\n    profiles: [stage-1]\n    bogus: 1\n", "bogus"},
		{"required variable", "services:\n  s:\n    image: ${NEEDED:?set it}\n", "set it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "proj")
			writeFile(t, filepath.Join(dir, "docker-compose.yml"), tc.file)
			testenv.WantErr(t, composeConfig(t.Context(), compose, dir), tc.err)
		})
	}
}
