package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// run runs a command and returns its combined output, failing t on error.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COMPOSE_BAKE=false", "DOCKER_BUILDKIT=1")
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sshArgs are the options every test login uses: no host key prompts, no
// agent, no stray config.
func sshArgs(port int, extra ...string) []string {
	return append([]string{
		"-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-p", fmt.Sprint(port),
	}, extra...)
}

// waitSSH waits (bounded) until sshd answers with its banner on port.
func waitSSH(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4)
			n, _ := io.ReadFull(c, buf)
			c.Close()
			if n == 4 && string(buf) == "SSH-" {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("sshd did not answer on 127.0.0.1:%d within 60s", port)
}

// secretHit is one place a secret was found.
type secretHit struct{ secret, where string }

// scanImage saves an image and searches every file of every layer, the
// image config (env, history) and the manifest for each secret.
func scanImage(t *testing.T, image string, secrets map[string]string) []secretHit {
	t.Helper()
	cmd := exec.Command("docker", "save", image)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var hits []secretHit
	scan := func(where string, data []byte) {
		for name, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				hits = append(hits, secretHit{name, where})
			}
		}
	}
	outer := tar.NewReader(out)
	layers := 0
	for {
		h, err := outer.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("docker save %s: %v", image, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if strings.HasSuffix(h.Name, "layer.tar") {
			layers++
			eachTarEntry(t, outer, func(ih *tar.Header, data []byte) { scan(h.Name+":"+ih.Name, data) })
			continue
		}
		data, err := io.ReadAll(outer)
		if err != nil {
			t.Fatal(err)
		}
		scan(h.Name, data)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("docker save %s: %v", image, err)
	}
	if layers == 0 {
		t.Fatalf("docker save %s gave no layers: the scan saw nothing", image)
	}
	return hits
}

// scanDir searches every file under dir, except the skipped relative paths.
func scanDir(t *testing.T, dir string, secrets map[string]string, skip ...string) []secretHit {
	t.Helper()
	var hits []secretHit
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+string(filepath.Separator)) {
				return nil
			}
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for name, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				hits = append(hits, secretHit{name, rel})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// buildStep is one step of a BuildKit plain progress log.
type buildStep struct {
	name   string
	cached bool
}

var stepHeader = regexp.MustCompile(`^#(\d+) \[[^\]]*\] (.*)$`)

// buildSteps reads which steps a plain progress log ran and which it took
// from the cache.
func buildSteps(log string) map[string]*buildStep {
	steps := map[string]*buildStep{}
	for _, line := range strings.Split(log, "\n") {
		if m := stepHeader.FindStringSubmatch(line); m != nil {
			if _, ok := steps[m[1]]; !ok {
				steps[m[1]] = &buildStep{name: m[2]}
			}
			continue
		}
		if f := strings.Fields(line); len(f) == 2 && f[1] == "CACHED" {
			if st, ok := steps[strings.TrimPrefix(f[0], "#")]; ok {
				st.cached = true
			}
		}
	}
	return steps
}

func findStep(steps map[string]*buildStep, substr string) (*buildStep, bool) {
	for _, st := range steps {
		if strings.Contains(st.name, substr) {
			return st, true
		}
	}
	return nil, false
}

// eachTarEntry calls fn for every entry of the tar stream r, with its content.
func eachTarEntry(t *testing.T, r io.Reader, fn func(h *tar.Header, data []byte)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", h.Name, err)
		}
		fn(h, data)
	}
}

var (
	peiOnce sync.Once
	peiPath string
	peiErr  error
)

// peiBinary builds the pei command once per test process and returns its
// path. scripts/test.sh, which runs each test in a process of its own,
// builds it once for all of them and names it in PEI_E2E_PEI; without that
// it is built from the current source.
func peiBinary(t *testing.T) string {
	t.Helper()
	peiOnce.Do(func() {
		if peiPath = os.Getenv("PEI_E2E_PEI"); peiPath != "" {
			if _, peiErr = os.Stat(peiPath); peiErr != nil {
				peiErr = fmt.Errorf("PEI_E2E_PEI: %w", peiErr)
			}
			return
		}
		dir, err := os.MkdirTemp("", "pei-e2e-bin-")
		if err != nil {
			peiErr = err
			return
		}
		peiPath = filepath.Join(dir, "pei")
		if out, err := runErr("..", "go", "build", "-o", peiPath, "./cmd/pei"); err != nil {
			peiErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if peiErr != nil {
		t.Fatal(peiErr)
	}
	return peiPath
}

// composeBuild builds a configured project's stage-1 and stage-2 with
// Docker Compose and returns the build log; when the test ends, the
// project's containers and volumes (in every profile) and images go.
func composeBuild(t *testing.T, dir string, images ...string) string {
	t.Helper()
	t.Cleanup(func() {
		runErr(dir, "docker", "compose", "--profile", "*", "down", "-v", "--remove-orphans")
		runErr(dir, "docker", append([]string{"rmi", "-f"}, images...)...)
	})
	log := run(t, dir, "docker", "compose", "--progress", "plain", "build", "stage-1")
	return log + run(t, dir, "docker", "compose", "--progress", "plain", "build", "stage-2")
}
