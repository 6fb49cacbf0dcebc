package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/project"
	"github.com/pei-dev/pei/internal/testenv"
)

// smallProject writes a project with the given stage_1 body (after image)
// and files, configures it (with the merged build scripts) and returns its
// directory and image name.
func smallProject(t *testing.T, stage1 string, files map[string]string) (dir, img string) {
	t.Helper()
	img = fmt.Sprintf("pei-e2e-%d-%s", os.Getpid(), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	dir = filepath.Join(t.TempDir(), img)
	for name, content := range files {
		writeFile(t, filepath.Join(dir, "installation", name), content, 0o755)
	}
	cfg := fmt.Sprintf("stage_1:\n  image: {base: %s, output: '%s:stage-1'}\n%sstage_2:\n  image: {output: '%s:stage-2'}\n", baseImage, img, stage1, img)
	writeFile(t, filepath.Join(dir, "user_config.yml"), cfg, 0o644)
	if _, err := project.Configure(project.ConfigureOptions{Policy: project.Local, Dir: dir, WithMerged: true}); err != nil {
		t.Fatalf("configure: %v", err)
	}
	t.Cleanup(func() { runErr(dir, "docker", "rmi", "-f", img+":stage-1", img+":stage-2") })
	return dir, img
}

// A failing build names the config line, the script and its exit status;
// a uid the base image already uses is refused with a clear message.
func TestBuildFailures(t *testing.T) {
	testenv.Docker(t)
	testenv.Image(t, baseImage)

	t.Run("on_build failure", func(t *testing.T) {
		dir, _ := smallProject(t, "  custom:\n    on_build:\n      - 'stage-1/custom/ok.sh'\n      - 'stage-1/custom/fail.sh arg'\n", map[string]string{
			"stage-1/custom/ok.sh":   "#!/bin/sh\ntrue\n",
			"stage-1/custom/fail.sh": "#!/bin/sh\necho 'about to fail with' \"$1\"\nexit 3\n",
		})
		out, err := runErr(dir, "docker", "compose", "--progress", "plain", "build", "stage-1")
		if err == nil {
			t.Fatalf("the build succeeded:\n%s", out)
		}
		for _, want := range []string{"about to fail with arg", "pei: user_config.yml:6: /pei-init/stage-1/custom/fail.sh failed with exit status 3"} {
			if !strings.Contains(out, want) {
				t.Errorf("build log lacks %q:\n%s", want, out)
			}
		}

		// pei build says the same in its error, with the end of the output.
		testenv.BuildKit(t)
		_, err = runBuild(t.Context(), build.Flags{Dir: dir, StateDir: t.TempDir(), Stage: "1", Progress: "quiet"}, nil)
		if err == nil {
			t.Fatal("pei build succeeded")
		}
		for _, want := range []string{`step "[stage-1] on_build: stage-1/custom/fail.sh arg" failed with exit code: 3`, "about to fail with arg", "user_config.yml:6"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("pei build's error lacks %q:\n%v", want, err)
			}
		}
	})

	t.Run("uid taken in the base image", func(t *testing.T) {
		dir, _ := smallProject(t, "  ssh:\n    users:\n      me: {password: x, uid: 2}\n", nil)
		out, err := runErr(dir, "docker", "compose", "--progress", "plain", "build", "stage-1")
		if err == nil {
			t.Fatalf("the build succeeded:\n%s", out)
		}
		if want := "uid 2 of user 'me' is taken by user 'bin' of the base image; choose another uid, or remove uid to pick a free one"; !strings.Contains(out, want) {
			t.Errorf("build log lacks %q:\n%s", want, out)
		}
	})
}

// build-merged.sh and run-merged.sh build and run the project without
// Compose; the entry hook gets the container's command as arguments.
func TestMergedScripts(t *testing.T) {
	testenv.Docker(t)
	testenv.Image(t, baseImage)
	dir, img := smallProject(t, "  environment: ['GREETING=hello there']\n  custom:\n    on_build: ['stage-1/custom/b.sh']\n    on_entry: ['stage-1/custom/entry.sh --from-entry']\n", map[string]string{
		"stage-1/custom/b.sh":     "#!/bin/sh\necho built > /opt/b\n",
		"stage-1/custom/entry.sh": "#!/bin/bash\necho \"entry: $GREETING $(cat /opt/b) args: $*\"\n",
	})
	run(t, dir, "./build-merged.sh", "--progress", "plain")
	name := img + "-stage-2"
	t.Cleanup(func() { runErr(dir, "docker", "rm", "-f", name) })
	run(t, dir, "./run-merged.sh", "one", "two")
	run(t, dir, "docker", "wait", name)
	logs := run(t, dir, "docker", "logs", name)
	if !strings.Contains(logs, "entry: hello there built args: --from-entry one two") {
		t.Errorf("on_entry did not run with the command's arguments:\n%s", logs)
	}
}

// With a terminal and no command the container runs a login shell, and
// docker stop still ends it promptly (not killed after the timeout).
func TestTTYShellStops(t *testing.T) {
	testenv.Docker(t)
	testenv.Image(t, baseImage)
	dir, img := smallProject(t, "", nil)
	run(t, dir, "./build-merged.sh")
	name := img + "-tty"
	t.Cleanup(func() { runErr(dir, "docker", "rm", "-f", name) })
	run(t, dir, "docker", "run", "-d", "-t", "-i", "--name", name, img+":stage-2")
	// The children of PID 1, from /proc (minbase has no ps).
	children := `for p in /proc/[0-9]*; do [ "$(awk '/^PPid/{print $2}' $p/status 2>/dev/null)" = 1 ] && tr '\0' ' ' <$p/cmdline && echo; done`
	var ps string
	for i := 0; i < 40 && !strings.Contains(ps, "bash -l"); i++ {
		time.Sleep(250 * time.Millisecond)
		ps, _ = runErr(dir, "docker", "exec", name, "bash", "-c", children)
	}
	if !strings.Contains(ps, "bash -l") {
		t.Errorf("no login shell under PID 1: %s", ps)
	}
	run(t, dir, "docker", "stop", "-t", "10", name)
	if code := strings.TrimSpace(run(t, dir, "docker", "inspect", "-f", "{{.State.ExitCode}}", name)); code == "137" {
		t.Errorf("the container was killed (137): the shell ignored the stop")
	}
}
