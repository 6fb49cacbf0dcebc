package config

import "testing"

// TestSyntaxErrorPlace: a YAML syntax error names the line a user would
// call the real place. yaml.v3 gives the line of the construct it was in,
// 0-based for parser errors (one line too early) and 1-based for scanner
// errors; an unclosed bracket or quote is reported where it was opened,
// with the line the parser stopped at.
func TestSyntaxErrorPlace(t *testing.T) {
	const head = "stage_1:\n  image: {base: debian:bookworm}\n  ssh:\n    users:\n      me: {password: x}\n  device: {type: cpu}\n"
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"unclosed [ on line 7", head + "  ports: ['8080:80', '9090:90'\nstage_2:\n  ports: []\n",
			`user_config.yml:7:10: YAML syntax error: unclosed '[' opened here; the parser stopped at line 8 without finding ',' or ']'; close the list with ']', or quote a value that holds '['`},
		{"unclosed [ of plain values", head + "  environment: [A=1, B=2\nstage_2:\n  ports: []\n",
			`user_config.yml:7:16: YAML syntax error: unclosed '[' opened here; the parser stopped at line 8 without finding ',' or ']'; close the list with ']', or quote a value that holds '['`},
		{"unclosed [ at the end of the file", head + "  ports: ['8080:80'\n",
			`user_config.yml:7:10: YAML syntax error: unclosed '[' opened here; the parser reached the end of the file without finding ',' or ']'; close the list with ']', or quote a value that holds '['`},
		{"unclosed { after a closed one", head + "  proxy: {address: x, port: 1}\n  apt: {use_proxy: true\n  ports: []\n",
			`user_config.yml:8:8: YAML syntax error: unclosed '{' opened here; the parser stopped at line 9 without finding ',' or '}'; close the mapping with '}', or quote a value that holds '{'`},
		{"unclosed [ on the first line", "[a, b\n",
			`user_config.yml:1:1: YAML syntax error: unclosed '[' opened here; the parser reached the end of the file without finding ',' or ']'; close the list with ']', or quote a value that holds '['`},
		{"key indented less than its siblings", "stage_1:\n  image:\n    base: debian\n   output: x\n",
			`user_config.yml:4:4: YAML syntax error: did not find expected key: this does not fit the mapping that starts at line 2:3; check the indentation (spaces only) and look for an unbalanced bracket or quote`},
		{"key less indented under the first line's mapping", "stage_1:\n  image: {base: x}\n stage_2: 1\n",
			`user_config.yml:3:2: YAML syntax error: did not find expected key: this does not fit the mapping that starts at line 1:1; check the indentation (spaces only) and look for an unbalanced bracket or quote`},
		{"key after a list item", "stage_1:\n  ports:\n    - '1:1'\n    x: 1\n",
			`user_config.yml:4:5: YAML syntax error: did not find expected '-' indicator: this does not fit the list that starts at line 3:5; check the indentation (spaces only) and look for an unbalanced bracket or quote`},
		{"key indented more than its siblings", "stage_1:\n  image:\n    base: debian\n      output: x\n",
			`user_config.yml:4:1: YAML syntax error: mapping values are not allowed in this context; quote a value that holds ': ', or check the indentation of this line and the one above`},
		{"unterminated double quote", "stage_1:\n  image:\n    base: \"debian\n  ports: []\n",
			`user_config.yml:3:11: YAML syntax error: unclosed quote opened here; the parser reached the end of the file looking for the closing one`},
		{"unterminated single quote after a closed one", "stage_1:\n  image:\n    base: 'it''s'\n    output: 'x\n",
			`user_config.yml:4:13: YAML syntax error: unclosed quote opened here; the parser reached the end of the file looking for the closing one`},
		{"tab indentation", "stage_1:\n  image:\n\tbase: x\n",
			`user_config.yml:3:1: YAML syntax error: found character that cannot start any token (a tab: YAML indents with spaces only)`},
		{"tab after spaces", "stage_1:\n  image:\n  \tbase: x\n",
			`user_config.yml:3:3: YAML syntax error: found character that cannot start any token (a tab: YAML indents with spaces only)`},
		{"tab indenting a continuation", "stage_1:\n  image:\n    base: x\n\toutput: y\n",
			`user_config.yml:4:1: YAML syntax error: a tab in the indentation; YAML indents with spaces only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, "", tc.yml, nil)
			if err == nil {
				t.Fatalf("no error for\n%s", tc.yml)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
	// A valid config is still read.
	if _, err := parse(t, "", "stage_1:\n  image: {base: debian:bookworm}\n  ports: ['8080:80']\n", nil); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}
