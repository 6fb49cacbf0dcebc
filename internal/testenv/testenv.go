// Package testenv finds what tests need (a Docker engine, Docker Compose v2,
// the ssh client, sshpass, a local base image, other tools) and is the only
// way a test may skip. Outside CI a missing part, or -short, skips the test
// with a loud reason; in CI (CI set) it fails the test, so nothing is
// silently left untested there.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// Missing skips t outside CI and fails it in CI.
func Missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI is set but %s; scripts/setup.sh should have provided it", what)
	}
	t.Skipf("SKIPPED TEST: %s (run scripts/setup.sh as root, or scripts/test.sh)", what)
}

// Short skips t under -short outside CI and fails it in CI; why says what
// the test needs that -short leaves out.
func Short(t testing.TB, why string) {
	t.Helper()
	if !testing.Short() {
		return
	}
	if InCI() {
		t.Fatalf("-short is not allowed in CI: this test (%s) must run", why)
	}
	t.Skipf("SKIPPED TEST: -short (%s)", why)
}

// Docker requires a running Docker engine, Compose v2, ssh and sshpass.
func Docker(t testing.TB) {
	t.Helper()
	Short(t, "end-to-end")
	for _, tool := range []string{"docker", "ssh", "sshpass", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, tool+" is not on PATH")
		}
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		Missing(t, "no Docker engine answers: "+strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		Missing(t, "Docker Compose v2 is not installed: "+strings.TrimSpace(string(out)))
	}
}

// FindCompose finds Docker Compose v2 and returns the command that runs
// it: the docker CLI's plugin ("docker compose"), else a docker-compose
// binary of version 2; or, when there is none, why. It needs no engine:
// 'config' runs without one.
func FindCompose() (cmd []string, missing string) {
	for _, cmd := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		out, err := exec.Command(cmd[0], append(cmd[1:], "version", "--short")...).Output()
		if err == nil && strings.HasPrefix(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), "2.") {
			return cmd, ""
		}
	}
	return nil, "Docker Compose v2 is not installed (neither 'docker compose' nor a docker-compose v2 answers 'version')"
}

// Compose requires Docker Compose v2 and returns FindCompose's command.
func Compose(t testing.TB) []string {
	t.Helper()
	cmd, missing := FindCompose()
	if cmd == nil {
		Missing(t, missing)
	}
	return cmd
}

// Image requires an image in the local engine.
func Image(t testing.TB, ref string) {
	t.Helper()
	if err := exec.Command("docker", "image", "inspect", ref).Run(); err != nil {
		Missing(t, "image "+ref+" is not in the local engine (scripts/setup.sh bootstraps debian:bookworm)")
	}
}

// BuildKit requires buildkitd and runc on PATH.
func BuildKit(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"buildkitd", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, tool+" is not on PATH")
		}
	}
}

// Root requires running as root (to create test users); CI runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "the test must run as root (it creates an unprivileged user)")
	}
}

// Tools requires commands on PATH.
func Tools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, tool+" is not on PATH")
		}
	}
}

// Emulation requires QEMU registered with the kernel for arch (binfmt_misc
// name, e.g. aarch64) and mmdebstrap to bootstrap a base for it.
func Emulation(t testing.TB, arch string) {
	t.Helper()
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-" + arch); err != nil {
		Missing(t, "no QEMU emulation of "+arch+" is registered")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		Missing(t, "mmdebstrap is not installed")
	}
}
