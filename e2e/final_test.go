package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/project"
	"github.com/pei-dev/pei/internal/testenv"
)

// TestFinalImage builds a project whose stage-2 compiles a program (with
// gcc and debug symbols) and keeps only its install tree in a final image:
// the program runs there, the SSH user exists, the compiler, headers,
// static archives and debug symbols do not, and the final image is at most
// 0.7x stage-2's size. Built both by pei build and by Compose from the generated
// files.
func TestFinalImage(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	dir, img := smallProject(t, `  ssh:
    users:
      dev: {password: 'final pass', uid: 1500}
  custom:
    on_build: ['stage-1/custom/tools.sh']
`, map[string]string{
		"stage-1/custom/tools.sh": "#!/bin/sh\nset -e\napt-get update\napt-get install -y --no-install-recommends gcc libc6-dev binutils\n",
		"stage-2/custom/compile.sh": "#!/bin/sh\nset -e\nmkdir -p /opt/app/bin /opt/app/include /opt/app/lib\n" +
			"printf '#include <stdio.h>\\nint main(void){puts(\"hello from final\");return 0;}\\n' > /tmp/hello.c\n" +
			"gcc -g -O1 -o /opt/app/bin/hello /tmp/hello.c\necho '/* api */' > /opt/app/include/hello.h\necho archive > /opt/app/lib/libhello.a\n",
	})
	b, err := os.ReadFile(dir + "/user_config.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	cfg = strings.Replace(cfg, "stage_2:\n", `stage_2:
  custom:
    on_build: ['stage-2/custom/compile.sh']
  final:
    keep: [/opt/app]
    exclude: [/opt/app/include, '*.a']
    strip: [docs, man, locales, debug]
`, 1)
	writeFile(t, dir+"/user_config.yml", cfg, 0o644)
	t.Cleanup(func() { runErr(dir, "docker", "rmi", "-f", img+":final") })

	check := func(t *testing.T) {
		t.Helper()
		out, err := runErr(dir, "docker", "run", "--rm", "--entrypoint", "sh", img+":final", "-c",
			"/opt/app/bin/hello; id -u dev; ls /opt/app; command -v gcc || echo no-gcc; ls /opt/app/lib | wc -l")
		if err != nil {
			t.Fatalf("run the final image: %v\n%s", err, out)
		}
		if want := "hello from final\n1500\nbin\nlib\nno-gcc\n0\n"; out != want {
			t.Errorf("final image:\n%s\nwant:\n%s", out, want)
		}
		// The program kept its code and lost its debug sections.
		stage2, final := fileFromImage(t, img+":stage-2", "opt/app/bin/hello"), fileFromImage(t, img+":final", "opt/app/bin/hello")
		if !bytes.Contains(stage2, []byte(".debug_info")) || bytes.Contains(final, []byte(".debug_info")) || len(final) >= len(stage2) {
			t.Errorf("debug symbols: stage-2 copy %d bytes (debug %v), final %d bytes (debug %v)",
				len(stage2), bytes.Contains(stage2, []byte(".debug_info")), len(final), bytes.Contains(final, []byte(".debug_info")))
		}
		s2, fs := imageSize(t, img+":stage-2"), imageSize(t, img+":final")
		t.Logf("stage-2 %d bytes, final %d bytes: %.2fx", s2, fs, float64(fs)/float64(s2))
		// docs/compact.md: at most 0.7x (docs/benchmarks.md has the figures).
		if fs*10 > s2*7 {
			t.Errorf("the final image (%d bytes) is %.2fx stage-2 (%d bytes), over 0.7x", fs, float64(fs)/float64(s2), s2)
		}
	}

	t.Run("pei build", func(t *testing.T) {
		refs := peiBuild(t, dir, t.TempDir(), io.Discard, func(o *build.Flags) { o.Stage = "final" })
		if len(refs) != 3 || !strings.HasPrefix(refs[2], img+":final@sha256:") {
			t.Fatalf("pei build --stage final printed %v", refs)
		}
		check(t)
	})
	t.Run("docker compose build", func(t *testing.T) {
		runErr(dir, "docker", "rmi", "-f", img+":final")
		if _, err := project.Configure(project.ConfigureOptions{Policy: project.Local, Dir: dir}); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"build", "stage-1"}, {"build", "stage-2"}, {"--profile", "final", "build", "final"}} {
			run(t, dir, "docker", append([]string{"compose"}, args...)...)
		}
		check(t)
	})
	t.Run("pei remove takes the final image too", func(t *testing.T) {
		var out bytes.Buffer
		if err := project.Remove(t.Context(), project.RemoveOptions{Dir: dir, Yes: true, Out: &out, Lookup: func(string) (string, bool) { return "", false }}); err != nil {
			t.Fatalf("pei remove: %v\n%s", err, out.String())
		}
		if _, err := runErr(dir, "docker", "image", "inspect", img+":final"); err == nil {
			t.Errorf("%s:final is still in the engine after pei remove:\n%s", img, out.String())
		}
	})
}

// fileFromImage reads one file out of an image (docker create + cp).
func fileFromImage(t *testing.T, image, path string) []byte {
	t.Helper()
	id := strings.TrimSpace(run(t, "", "docker", "create", image))
	defer runErr("", "docker", "rm", "-f", id)
	out, err := exec.Command("docker", "cp", id+":/"+path, "-").Output()
	if err != nil {
		t.Fatalf("docker cp %s:%s: %v", image, path, err)
	}
	var data []byte
	eachTarEntry(t, bytes.NewReader(out), func(h *tar.Header, b []byte) { data = b })
	return data
}

func imageSize(t *testing.T, image string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(run(t, "", "docker", "image", "inspect", "--format", "{{.Size}}", image)), 10, 64)
	if err != nil {
		t.Fatal(fmt.Errorf("size of %s: %w", image, err))
	}
	return n
}
