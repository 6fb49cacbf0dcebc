package config

import (
	"strings"
	"testing"
)

// TestRuntimeVars: {{VAR}} and {{VAR:-default}} go where PeiDocker takes
// them (bases, output tags, ports, environment), checked with their
// defaults; an output's name is needed when pei configures (names derived
// from it), so only its tag may be a variable; in
// a port, a variable can only be the whole host port, since Compose reads
// the mapping's shape after resolving it.
func TestRuntimeVars(t *testing.T) {
	for _, tc := range []struct {
		name, stage2, want string // want: substring of the error, "" for valid
	}{
		{"tag with a default", "  image: {output: 'app:{{TAG:-dev}}'}\n", ""},
		{"tag without a default", "  image: {output: 'app:{{TAG}}'}\n", ""},
		{"whole name", "  image: {output: '{{IMAGE}}'}\n", `stage_2.image.output: "${IMAGE}" has a run-time variable in the image name; only the tag may be one`},
		{"base", "  image: {base: '{{BASE:-debian:bookworm}}'}\n", ""},
		{"a literal $ in a base", "  image: {base: 'x:$${X}'}\n", `stage_2.image.base: "x:${X}": an image name cannot hold a literal $`},
		{"bad default tag", "  image: {output: 'app:{{TAG:-Not A Tag}}'}\n", `stage_2.image.output: "app:Not A Tag" with its variables at their defaults is not a valid image reference`},
		{"bad literal part", "  image: {output: 'App:{{TAG}}'}\n", `"App:x" with its variables at their defaults is not a valid image reference`},
		{"host port", "  ports: ['{{WEB:-18080}}:80', '127.0.0.1:{{ADMIN}}:81/udp']\n", ""},
		{"host port default out of range", "  ports: ['{{WEB:-99999}}:80']\n", `stage_2.ports[0]: 99999 in "99999:80" is not a port number`},
		{"host port default clashes", "  ports: ['{{WEB:-2222}}:80', '2222:81']\n", "2222"},
		{"container port", "  ports: ['8080:{{PORT:-80}}']\n", `stage_2.ports[0]: "8080:${PORT:-80}": a {{VAR}} in a port mapping can only be the whole host port`},
		{"range default", "  ports: ['{{WEB:-8080-8081}}:80-81']\n", "can only be the whole host port"},
		{"environment", "  environment: {TAG: '{{TAG:-dev}}'}\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, "", "stage_1:\n  image: {base: debian:bookworm}\nstage_2:\n"+tc.stage2, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q (config %+v)", err, tc.want, c.Stage2)
			}
		})
	}
}

func TestResolveRuntime(t *testing.T) {
	env := map[string]string{"SET": "v2", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		in     string
		lookup LookupFunc
		want   string
	}{
		{"app:${SET:-dev}", lookup, "app:v2"},
		{"app:${EMPTY:-dev}", lookup, "app:dev"},
		{"app:${UNSET:-dev}", lookup, "app:dev"},
		{"app:${UNSET}", lookup, "app:"},
		{"app:${SET}", nil, "app:"},
		{"app:${SET:-dev}", nil, "app:dev"},
		{"$$x ${1A}", lookup, "$$x ${1A}"},
	} {
		if got := ResolveRuntime(tc.in, tc.lookup); got != tc.want {
			t.Errorf("ResolveRuntime(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSSHHostPortVar: stage_1.ssh.host_port takes a whole {{VAR}} or
// {{VAR:-default}} as PeiDocker takes ${SSH_HOST_PORT:-2230}: kept for
// Compose, checked (range, clashes) at its default.
func TestSSHHostPortVar(t *testing.T) {
	for _, tc := range []struct {
		name, hostPort, ports string
		env                   map[string]string
		wantPort              int // 0: nil
		wantVar, wantErr      string
	}{
		{name: "default", hostPort: "'{{SSH_HOST_PORT:-2230}}'", wantPort: 2230, wantVar: "${SSH_HOST_PORT:-2230}"},
		{name: "spaces", hostPort: "'{{ SSH_HOST_PORT:-2230 }}'", wantPort: 2230, wantVar: "${SSH_HOST_PORT:-2230}"},
		{name: "no default", hostPort: "'{{SSH_HOST_PORT}}'", wantVar: "${SSH_HOST_PORT}"},
		{name: "configure time", hostPort: "'${SSH_HOST_PORT:-2230}'", env: map[string]string{"SSH_HOST_PORT": "2300"}, wantPort: 2300},
		{name: "integer", hostPort: "2222", wantPort: 2222},
		{name: "default out of range", hostPort: "'{{P:-99999}}'", wantErr: "user_config.yml:4:16: stage_1.ssh.host_port: 99999 is not a port number (1-65535)"},
		{name: "default not a number", hostPort: "'{{P:-ssh}}'", wantErr: `user_config.yml:4:16: stage_1.ssh.host_port: "{{P:-ssh}}": the default of a {{VAR:-default}} here must be an integer`},
		{name: "part of the value", hostPort: "'2{{P}}'", wantErr: `user_config.yml:4:16: stage_1.ssh.host_port: "2{{P}}": a {{VAR}} here must be the whole value, as in {{SSH_HOST_PORT:-2222}}`},
		{name: "default clashes", hostPort: "'{{P:-8080}}'", ports: "  ports: ['8080:80']\n", wantErr: "8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, "", "stage_1:\n  image: {base: debian:bookworm}\n  ssh:\n    host_port: "+tc.hostPort+"\n"+tc.ports, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			got := 0
			if c.Stage1.SSH.HostPort != nil {
				got = *c.Stage1.SSH.HostPort
			}
			if got != tc.wantPort || c.Stage1.SSH.HostPortVar != tc.wantVar {
				t.Errorf("host_port %d, variable %q; want %d, %q", got, c.Stage1.SSH.HostPortVar, tc.wantPort, tc.wantVar)
			}
		})
	}
}
