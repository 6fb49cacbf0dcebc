package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildPei builds the pei binary once per test run.
func buildPei(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pei")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestCLI(t *testing.T) {
	pei := buildPei(t)
	dir := filepath.Join(t.TempDir(), "proj")

	out, err := exec.Command(pei, "create", "-p", dir, "--quick", "ssh").CombinedOutput()
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if out, err := exec.Command(pei, "create", "-p", dir).CombinedOutput(); err == nil || !strings.Contains(string(out), "--force") {
		t.Errorf("second create should refuse and mention --force: %v %s", err, out)
	}
	if out, err := exec.Command(pei, "configure", "-p", dir).CombinedOutput(); err != nil {
		t.Fatalf("configure: %v\n%s", err, out)
	}

	cfg := filepath.Join(dir, "user_config.yml")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "    type: cpu", "    type: cpuu", 1)+"extra_key: 1\n"), 0o644)
	cmd := exec.Command(pei, "configure", "-p", dir)
	cmd.Dir = dir
	out, err = cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("a bad config must exit with status 2, got %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "user_config.yml:") || !strings.Contains(lines[0], `stage_1.device.type: "cpuu" is not one of cpu, gpu (did you mean "cpu"?)`) ||
		!strings.Contains(lines[1], `extra_key: unknown key "extra_key"`) ||
		lines[2] != "pei: 2 problem(s) in the config; nothing was written" {
		t.Errorf("unexpected report:\n%s", out)
	}

	out, err = exec.Command(pei, "schema").Output()
	if err != nil || !strings.Contains(string(out), `"stage_1"`) {
		t.Errorf("schema: %v", err)
	}
	for _, sub := range []string{"create", "configure", "build", "base", "builder", "remove", "schema"} {
		out, err := exec.Command(pei, sub, "--help").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Examples:") {
			t.Errorf("%s --help: %v\n%s", sub, err, out)
		}
	}
}
