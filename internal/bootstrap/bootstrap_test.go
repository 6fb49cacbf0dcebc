package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestDebianArch(t *testing.T) {
	for spec, want := range map[string]string{"linux/amd64": "amd64", "linux/arm64": "arm64", "linux/arm/v7": "armhf", "linux/arm/v6": "armel", "linux/386": "i386", "linux/ppc64le": "ppc64el"} {
		p, err := v1.ParsePlatform(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DebianArch(*p); err != nil || got != want {
			t.Errorf("DebianArch(%s) = %q, %v; want %q", spec, got, err, want)
		}
	}
	if _, err := DebianArch(v1.Platform{OS: "linux", Architecture: "wasm"}); err == nil {
		t.Errorf("wasm: no error")
	}
}

// fakeMmdebstrap puts a shell script named mmdebstrap first on PATH. Its
// last three arguments are, as for the real one, suite, target and mirror.
func fakeMmdebstrap(t *testing.T, script string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "mmdebstrap"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
}

// entries lists what is left in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// Every way mmdebstrap can fail gives an error that says why and what to
// do, a done that can be called, and no temporary file left behind.
func TestDebianErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string // "" = no mmdebstrap on PATH
		want   []string
	}{
		{"missing", "", []string{"mmdebstrap is not installed", "apt-get install mmdebstrap"}},
		{"arch-test", `echo "I: automatically chosen mode: root" >&2
echo "E: install arch-test for foreign architecture support" >&2
exit 1`, []string{"exit status 1", "apt-get install arch-test", "E: install arch-test for foreign architecture support"}},
		{"fails", `echo "E: cannot reach the mirror" >&2; exit 25`, []string{"exit status 25", "E: cannot reach the mirror"}},
		{"killed", `kill -9 $$`, []string{"killed by signal SIGKILL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.script == "" {
				t.Setenv("PATH", t.TempDir())
			} else {
				// A half-written root file system must go too.
				fakeMmdebstrap(t, `for a; do target=$q; q=$a; done; echo half > "$target"
`+tc.script)
			}
			tmp := t.TempDir()
			img, done, err := Debian(context.Background(), Options{Suite: "bookworm", TmpDir: tmp})
			if err == nil || img != nil {
				t.Fatalf("Debian = %v, %v; want an error", img, err)
			}
			done() // must not panic
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if left := entries(t, tmp); len(left) != 0 {
				t.Errorf("left behind in the temporary directory: %v", left)
			}
		})
	}
}

// A canceled bootstrap stops mmdebstrap and what it started (apt, dpkg), and
// removes its files.
func TestDebianCanceled(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "child.pid")
	fakeMmdebstrap(t, `sleep 600 &
echo $! > `+pids+`
echo started >&2
wait`)
	ctx, cancel := context.WithCancelCause(context.Background())
	started := make(chan struct{})
	w := &signalWriter{first: started}
	go func() {
		<-started
		cancel(errors.New("the user pressed ^C"))
	}()
	tmp := t.TempDir()
	_, done, err := Debian(ctx, Options{Suite: "bookworm", TmpDir: tmp, Stderr: w})
	done()
	if err == nil || !strings.Contains(err.Error(), "was stopped: the user pressed ^C") {
		t.Fatalf("error %v does not say it was stopped and why", err)
	}
	if left := entries(t, tmp); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	b, rerr := os.ReadFile(pids)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 {
		t.Fatalf("no child pid in %q", b)
	}
	// The child was killed with its group; a zombie left to init would
	// still answer kill 0, so look at its state too.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(st), ") Z") {
		t.Errorf("mmdebstrap's child %d is still running: %s", pid, st)
	}
}

type signalWriter struct {
	once  sync.Once
	first chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.first) })
	return len(p), nil
}

// On success done removes the root file system tarball, and the image
// reads from it until then.
func TestDebianDone(t *testing.T) {
	fakeMmdebstrap(t, `for a; do target=$q; q=$a; done
root=$(mktemp -d) && mkdir -p "$root/etc" && echo bookworm > "$root/etc/debian_version"
tar -C "$root" -cf "$target" . && rm -rf "$root"`)
	tmp := t.TempDir()
	img, done, err := Debian(context.Background(), Options{Suite: "bookworm", TmpDir: tmp, Epoch: 1700000000})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers %v, %v", ls, err)
	}
	if _, err := img.Digest(); err != nil {
		t.Fatal(err)
	}
	if left := entries(t, tmp); len(left) != 1 {
		t.Fatalf("want the one work directory while the image is in use, have %v", left)
	}
	done()
	if left := entries(t, tmp); len(left) != 0 {
		t.Errorf("done left %v", left)
	}
}
