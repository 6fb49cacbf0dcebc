package e2e

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/testenv"
)

// TestHookEditRerunsNoBuildStep: editing a run-time hook of either stage
// and building again with pei build re-runs no on_build step of stage 1
// or stage 2. Each on_build step writes random bytes into the image, so a
// step that ran again leaves different bytes whatever the log says; the
// control edits an on_build script and sees its bytes change.
func TestHookEditRerunsNoBuildStep(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	nonce := func(name string) string {
		return "#!/bin/sh\nset -e\nhead -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /opt/nonce-" + name + "\n"
	}
	dir, _ := smallProject(t, `  custom:
    on_build: ['stage-1/custom/s1a.sh', 'stage-1/custom/s1b.sh']
    on_every_run: ['stage-1/custom/every.sh']
`, map[string]string{
		"stage-1/custom/s1a.sh":    nonce("s1a"),
		"stage-1/custom/s1b.sh":    nonce("s1b"),
		"stage-1/custom/every.sh":  "#!/bin/sh\necho every-1\n",
		"stage-2/custom/s2a.sh":    nonce("s2a"),
		"stage-2/custom/every2.sh": "#!/bin/sh\necho every-2\n",
	})
	cfgPath := filepath.Join(dir, "user_config.yml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgPath, strings.Replace(string(cfg), "stage_2:\n", `stage_2:
  custom:
    on_build: ['stage-2/custom/s2a.sh']
    on_every_run: ['stage-2/custom/every2.sh']
`, 1), 0o644)
	state := t.TempDir()
	steps := []string{"on_build: stage-1/custom/s1a.sh", "on_build: stage-1/custom/s1b.sh", "on_build: stage-2/custom/s2a.sh"}

	// build builds both stages into an OCI tarball and returns the log and
	// the files of the stage-2 image that the test looks at.
	build := func() (string, map[string]string) {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "image.tar")
		var log strings.Builder
		peiBuild(t, dir, state, &log, func(o *build.Flags) { o.Output = "type=oci,dest=" + dest })
		files := map[string]string{}
		rc := mutate.Extract(ociImage(t, dest))
		defer rc.Close()
		eachTarEntry(t, rc, func(h *tar.Header, b []byte) {
			name := strings.TrimPrefix(h.Name, "./")
			if strings.HasPrefix(name, "opt/nonce-") || strings.HasSuffix(name, "custom/every.sh") || strings.HasSuffix(name, "custom/every2.sh") {
				files[name] = string(b)
			}
		})
		for _, n := range []string{"s1a", "s1b", "s2a"} {
			if len(files["opt/nonce-"+n]) != 32 {
				t.Fatalf("on_build step %s left no random bytes: %q\n%s", n, files["opt/nonce-"+n], log.String())
			}
		}
		return log.String(), files
	}
	_, first := build()

	writeFile(t, filepath.Join(dir, "installation/stage-1/custom/every.sh"), "#!/bin/sh\necho every-1 edited\n", 0o755)
	writeFile(t, filepath.Join(dir, "installation/stage-2/custom/every2.sh"), "#!/bin/sh\necho every-2 edited\n", 0o755)
	log, edited := build()
	// The edits are in the new image: it was built again.
	for _, want := range []string{"every-1 edited", "every-2 edited"} {
		found := false
		for name, content := range edited {
			found = found || (strings.Contains(name, "custom/every") && strings.Contains(content, want))
		}
		if !found {
			t.Errorf("the edited run-time hook (%q) is not in the new image: %v", want, edited)
		}
	}
	for _, n := range []string{"s1a", "s1b", "s2a"} {
		if a, b := first["opt/nonce-"+n], edited["opt/nonce-"+n]; a != b {
			t.Errorf("on_build step %s ran again after a run-time hook edit (random bytes %s, then %s)", n, a, b)
		}
	}
	parsed := buildSteps(log)
	for _, want := range steps {
		if st, ok := findStep(parsed, want); !ok || !st.cached {
			t.Errorf("step %q was not taken from the cache (found %v)\n%s", want, ok, log)
		}
	}

	// Control: editing stage-2's on_build script runs it again (new
	// bytes) and nothing of stage 1.
	writeFile(t, filepath.Join(dir, "installation/stage-2/custom/s2a.sh"), nonce("s2a")+"# edited\n", 0o755)
	_, rebuilt := build()
	if rebuilt["opt/nonce-s2a"] == edited["opt/nonce-s2a"] {
		t.Errorf("the edited on_build script of stage 2 did not run again: the signal cannot see a re-run")
	}
	for _, n := range []string{"s1a", "s1b"} {
		if edited["opt/nonce-"+n] != rebuilt["opt/nonce-"+n] {
			t.Errorf("stage-1 step %s ran again after an edit of stage 2's on_build", n)
		}
	}
}
