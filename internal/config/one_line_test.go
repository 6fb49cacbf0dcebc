package config

import (
	"strings"
	"testing"
)

// TestOneLineValues: a control character (a newline above all) in a value
// written into a line of a generated file is refused at its place, also in
// a value holding ${ that other checks leave to Compose.
func TestOneLineValues(t *testing.T) {
	for _, tc := range []struct{ yml, want string }{
		{"stage_1:\n  image: {base: \"x\\nRUN id\"}\n",
			`user_config.yml:2:17: stage_1.image.base: "x\nRUN id" has a control character (U+000A) at byte 2`},
		{"stage_1:\n  image: {base: \"x{{V}}\\nRUN id\"}\n",
			`user_config.yml:2:17: stage_1.image.base: "x${V}\nRUN id" has a control character (U+000A)`},
		{"stage_1:\n  image: {base: x}\n  custom:\n    on_build: [\"a.sh x\\nRUN id\"]\n",
			`user_config.yml:4:16: stage_1.custom.on_build[0]: the entry has a control character (U+000A) at byte 7`},
		{"stage_1:\n  image: {base: x}\n  environment: {A: \"1\\n2\"}\n",
			`user_config.yml:3:17: stage_1.environment.A: the value of A has a control character (U+000A) at byte 2; environment values must be one line without control characters, since SSH sessions get them through sshd's SetEnv, which cannot hold them`},
		{"stage_1:\n  image: {base: x}\n  environment: [\"A=1\\r2\"]\n",
			`user_config.yml:3:17: stage_1.environment[0]: the value of A has a control character (U+000D) at byte 2`},
		{"stage_1:\n  image: {base: x}\n  proxy: {address: \"h\\nRUN id\", port: 1}\n",
			`user_config.yml:3:20: stage_1.proxy.address: "h\nRUN id" has a control character (U+000A)`},
	} {
		_, err := Parse([]byte(tc.yml), "user_config.yml", "", nil)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s...", tc.yml, err, tc.want)
		}
	}
}
