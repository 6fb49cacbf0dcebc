package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// run runs pei with args and returns its stdout, stderr and error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := NewRootCmd()
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

// TestTokenCommands: pei token's flags, messages and output, through the
// libraries that now hold the rules (api.CheckGrant, service.Tokens,
// store.Token.Status).
func TestTokenCommands(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"unknown scope", []string{"--namespace", "team-a", "--scope", "push,root"}, `--scope "root": use pull, push, build, admin, worker`},
		{"bad namespace", []string{"--namespace", "team-a,Team-B"}, `--namespace: namespace "Team-B": use lower-case letters, digits and separators (., _, -), like a repository name's first component, or * for all`},
		{"no namespace", []string{"--scope", "build"}, "--namespace: name the namespaces the token may use (or * for all)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, append([]string{"token", "create", "--data", data, "--name", "x"}, tc.args...)...)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a refused token made the data directory (%v)", err)
			}
		})
	}
	secret, stderr, err := run(t, "token", "create", "--data", data, "--name", "alice", "--namespace", "team-a", "--scope", "push,build")
	if err != nil || !regexp.MustCompile(`^pei_[0-9a-f]{48}\n$`).MatchString(secret) ||
		!regexp.MustCompile(`^token t-[0-9a-f]{24} \(alice\): namespaces team-a, scopes push,build\n$`).MatchString(stderr) {
		t.Fatalf("create: %v\nstdout %q\nstderr %q", err, secret, stderr)
	}
	id := strings.Fields(stderr)[1]
	if _, _, err := run(t, "token", "create", "--data", data, "--name", "brief", "--namespace", "*", "--scope", "pull", "--expires", "1h"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "token", "revoke", "--data", data, id); err != nil {
		t.Fatal(err)
	}
	list, _, err := run(t, "token", "list", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	// A header, then the tokens (made in the same second: in either order).
	lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^ID +NAME +NAMESPACES +SCOPES +STATUS$`).MatchString(lines[0]) {
		t.Fatalf("list:\n%s", list)
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`^` + id + ` +alice +team-a +push,build +revoked$`),
		regexp.MustCompile(`^t-[0-9a-f]{24} +brief +\* +pull +expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`),
	} {
		if !re.MatchString(lines[1]) && !re.MatchString(lines[2]) {
			t.Errorf("list has no line like %s:\n%s", re, list)
		}
	}
}

// TestFlagErrors: flags refused before anything runs, with the messages
// pei has always given.
func TestFlagErrors(t *testing.T) {
	t.Setenv("PEI_TOKEN", "t")
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"worker secret without a file", []string{"worker", "--server", "http://127.0.0.1:1", "--secret", "id=npm,env=NPM"}, `--secret "id=npm,env=NPM": give id=ID,src=FILE`},
		{"worker secret without an id", []string{"worker", "--server", "http://127.0.0.1:1", "--secret", "src=/k"}, `--secret "src=/k": give id=ID,src=FILE`},
		{"worker allow-net", []string{"worker", "--server", "http://127.0.0.1:1", "--build-allow-net", "fd00::/8"}, `--build-allow-net "fd00::/8": build steps have IPv4 only: give an IPv4 address or CIDR`},
		{"submit without a repository", []string{"submit", "--server", "http://127.0.0.1:1", "--tag", ":v1"}, "--tag NAME:TAG: name the repository, e.g. team-a/app:1.0"},
		{"serve with a bad anonymous namespace", []string{"serve", "--data", t.TempDir(), "--anonymous-pull", "Public"}, `--anonymous-pull: namespace "Public": use lower-case letters, digits and separators (., _, -), like a repository name's first component, or * for all`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.args...)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}
