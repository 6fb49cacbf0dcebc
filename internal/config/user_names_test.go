package config

import (
	"strings"
	"testing"
)

// TestUserNames: a user name is what shadow's useradd accepts by its own
// rule (Debian 12 accepts all of these): letters of either case, digits,
// '.', '_' and '-', not starting with '-', not all digits, not '.' or '..',
// at most 32. Names only Debian's relaxed useradd takes ("a/b", "..") stay
// refused, with the rule in the message.
func TestUserNames(t *testing.T) {
	long := strings.Repeat("a", 32)
	for _, tc := range []struct {
		user string
		want string // "" is valid
	}{
		{user: "me"},
		{user: "u.dot"},
		{user: "1abc"},
		{user: "0x"},
		{user: "1."},
		{user: "_x"},
		{user: ".hidden"},
		{user: "Upper"},
		{user: "a-b_c.d"},
		{user: long},
		{user: "'123'", want: `user_config.yml:5:7: stage_1.ssh.users.123.<key>: "123" is not a valid user name: all digits would read as a uid; add a letter (letters, digits, '.', '_' and '-', not starting with '-', at most 32)`},
		{user: "'.'", want: `user_config.yml:5:7: stage_1.ssh.users...<key>: "." is not a valid user name: it names a directory`},
		{user: "'..'", want: `".." is not a valid user name: it names a directory`},
		{user: "-ab", want: `user_config.yml:5:7: stage_1.ssh.users.-ab.<key>: "-ab" is not a valid user name (letters, digits, '.', '_' and '-', not starting with '-', at most 32)`},
		{user: long + "a", want: `"` + long + `a" is not a valid user name (letters, digits, '.', '_' and '-', not starting with '-', at most 32)`},
		{user: "a/b", want: `"a/b" is not a valid user name (`},
		{user: "'a b'", want: `"a b" is not a valid user name (`},
		{user: "'a$'", want: `"a$" is not a valid user name (`},
		{user: "'a:b'", want: `"a:b" is not a valid user name (`},
		{user: "é", want: `"é" is not a valid user name (`},
	} {
		t.Run(tc.user, func(t *testing.T) {
			_, err := parse(t, "", "stage_1:\n  image: {base: debian:bookworm}\n  ssh:\n    users:\n      "+tc.user+": {password: x}\n", nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid user name refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
