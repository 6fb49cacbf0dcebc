package config

import (
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/testenv"
)

// TestSSHUsers: a password is at most 511 bytes (longer ones no login
// can match), user ids are 1-65533 for ordinary users (0 would be a
// second root), root's are 0 or unset, no two users share a uid, and each
// key is given once, as a file or as text.
func TestSSHUsers(t *testing.T) {
	priv := testenv.PrivateKeyYAML(t)
	dir := project(t, "stage-1/keys/me")
	for _, tc := range []struct {
		name, users string
		want        string // "" is valid
	}{
		{"longest password a login can match", "me: {password: '" + strings.Repeat("p", 511) + "'}", ""},
		{"password of 511 bytes in multibyte characters", "me: {password: '" + strings.Repeat("é", 255) + "x'}", ""},
		{"password past the system crypt's limit", "me: {password: '" + strings.Repeat("p", 512) + "'}", "user_config.yml:5:22: stage_1.ssh.users.me.password: the password is 512 bytes; a login can match at most 511 (the system's crypt refuses longer ones), so shorten it"},
		{"multibyte password past the limit", "me: {password: '" + strings.Repeat("é", 256) + "'}", "user_config.yml:5:22: stage_1.ssh.users.me.password: the password is 512 bytes; a login can match at most 511"},
		{"ids at the ends of the range", "me: {uid: 1, gid: 1}\n      you: {uid: 65533, gid: 65533}", ""},
		{"root with ids 0", "root: {uid: 0, gid: 0}", ""},
		{"uid 0 for a user", "me: {uid: 0}", "stage_1.ssh.users.me.uid: 0 is not a usable uid (1-65533; 0 is root)"},
		{"uid over the range", "me: {uid: 65534}", "stage_1.ssh.users.me.uid: 65534 is not a usable uid"},
		{"gid 0 for a user", "me: {gid: 0}", "stage_1.ssh.users.me.gid: 0 is not a usable gid (1-65533; 0 is root)"},
		{"gid over the range", "me: {gid: 65534}", "stage_1.ssh.users.me.gid: 65534 is not a usable gid"},
		{"root with another uid", "root: {uid: 1000}", "stage_1.ssh.users.root.uid: root's uid is always 0; remove uid"},
		{"root with another gid", "root: {gid: 1000}", "stage_1.ssh.users.root.gid: root's gid is always 0; remove gid"},
		{"a shared uid", "me: {uid: 1200}\n      you: {uid: 1200}", `stage_1.ssh.users.you.uid: uid 1200 is already given to user "me"`},
		{"private key as text", `me: {privkey_text: "` + priv + `"}`, ""},
		{"private key twice", `me: {privkey_file: stage-1/keys/me, privkey_text: "` + priv + `"}`, "stage_1.ssh.users.me.privkey_text: give privkey_file or privkey_text, not both"},
		{"public key as text", "me: {pubkey_text: '" + pubkey + "'}", ""},
		{"public key twice", "me: {pubkey_file: stage-1/keys/me, pubkey_text: '" + pubkey + "'}", "stage_1.ssh.users.me.pubkey_text: give pubkey_file or pubkey_text, not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, dir, "stage_1:\n  image: {base: debian:bookworm}\n  ssh:\n    users:\n      "+tc.users+"\n", nil)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid users refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
