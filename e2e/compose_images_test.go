package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/testenv"
)

// TestComposedImage is the MetaCall builder case: a dev image compiles a
// small C shared library on a dev base; a runtime base has Python; the
// runtime image is merge(runtime-base, diff(dev-base, dev-lang) without
// /build). It runs the library from Python, has no compiler, and is at most
// 0.7x the dev image's size.
func TestComposedImage(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	name := fmt.Sprintf("pei-e2e-%d-compose", os.Getpid())
	devBase, devLang, rtBase, runtime := name+"-dev:base", name+"-dev:lang", name+"-rt:base", name+"-rt:runtime"
	t.Cleanup(func() { runErr("", "docker", "rmi", "-f", devBase, devLang, rtBase, runtime) })
	state := t.TempDir()

	dev := filepath.Join(t.TempDir(), "dev")
	writeFile(t, filepath.Join(dev, "installation/stage-1/custom/gcc.sh"), "#!/bin/sh\nset -e\napt-get update\napt-get install -y --no-install-recommends gcc libc6-dev\n", 0o755)
	writeFile(t, filepath.Join(dev, "installation/stage-2/custom/lib.sh"), "#!/bin/sh\nset -e\nmkdir -p /build\n"+
		"printf 'int hello_answer(void){return 42;}\\n' > /build/hello.c\n"+
		"gcc -shared -fPIC -o /usr/local/lib/libhello.so /build/hello.c\n", 0o755)
	writeFile(t, filepath.Join(dev, "user_config.yml"), fmt.Sprintf(`stage_1:
  image: {base: %s, output: '%s'}
  ssh: {enable: false}
  custom: {on_build: ['stage-1/custom/gcc.sh']}
stage_2:
  image: {output: '%s'}
  custom: {on_build: ['stage-2/custom/lib.sh']}
`, baseImage, devBase, devLang), 0o644)
	peiBuild(t, dev, state, io.Discard)

	rt := filepath.Join(t.TempDir(), "rt")
	writeFile(t, filepath.Join(rt, "installation/stage-1/custom/python.sh"), "#!/bin/sh\nset -e\napt-get update\napt-get install -y --no-install-recommends python3\n", 0o755)
	writeFile(t, filepath.Join(rt, "user_config.yml"), fmt.Sprintf(`stage_1:
  image: {base: %s, output: '%s'}
  ssh: {enable: false}
  custom: {on_build: ['stage-1/custom/python.sh']}
compose:
  runtime:
    output: '%s'
    layers:
      - image: '%s'
      - diff: {lower: '%s', upper: '%s'}
        exclude: [/build]
`, baseImage, rtBase, runtime, rtBase, devBase, devLang), 0o644)
	peiBuild(t, rt, state, io.Discard, func(o *build.Flags) { o.Stage = "1" })
	refs := peiBuild(t, rt, state, io.Discard, func(o *build.Flags) { o.Stage = "runtime" })
	if len(refs) != 1 || !strings.HasPrefix(refs[0], runtime+"@sha256:") {
		t.Fatalf("pei build --stage runtime printed %v", refs)
	}

	out, err := runErr("", "docker", "run", "--rm", "--entrypoint", "sh", runtime, "-c",
		`python3 -c "import ctypes; print(ctypes.CDLL('/usr/local/lib/libhello.so').hello_answer())"; command -v gcc || echo no-gcc; ls /build 2>/dev/null || echo no-build`)
	if err != nil {
		t.Fatalf("run %s: %v\n%s", runtime, err, out)
	}
	if want := "42\nno-gcc\nno-build\n"; out != want {
		t.Errorf("runtime image:\n%s\nwant:\n%s", out, want)
	}
	rs, ds := imageSize(t, runtime), imageSize(t, devLang)
	t.Logf("runtime %d bytes, dev %d bytes: %.2fx, %d bytes smaller", rs, ds, float64(rs)/float64(ds), ds-rs)
	// docs/compact.md: at most 0.7x (docs/benchmarks.md has the figures).
	if rs*10 > ds*7 {
		t.Errorf("the runtime image (%d bytes) is %.2fx the dev image (%d bytes), over 0.7x", rs, float64(rs)/float64(ds), ds)
	}

	t.Run("unknown name", func(t *testing.T) {
		_, err := runBuild(t.Context(), build.Flags{Dir: rt, StateDir: state, Stage: "runtim"}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `--stage "runtim"`) {
			t.Errorf("an unknown stage name: %v", err)
		}
	})
}
