package project

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
	"github.com/pei-dev/pei/internal/testenv"
)

// The private key of TestInlinePrivateKey, and a public key.
const (
	hostPriv = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBhgDnbjp2OAOhxtgnnBXhdLIapyxDOJyBm4kdaY7ZkywAAAJjZDQTS2Q0E\n0gAAAAtzc2gtZWQyNTUxOQAAACBhgDnbjp2OAOhxtgnnBXhdLIapyxDOJyBm4kdaY7Zkyw\nAAAEBb8dvs5VsVQKeX4bJ0Ai8Mr7aLQSlgKKYX3Fm5OW3x+GGAOduOnY4A6HG2CecFeF0s\nhqnLEM4nIGbiR1pjtmTLAAAAEHRlc3RAZXhhbXBsZS5jb20BAgMEBQ==\n-----END OPENSSH PRIVATE KEY-----\n"
	hostPub  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGGAOduOnY4A6HG2CecFeF0shqnLEM4nIGbiR1pjtmTL me@host\n"
)

// SSH key files on this machine, as PeiDocker takes them (absolute, ~/...,
// and ~ for the user's own key in ~/.ssh, public for pubkey_file and
// private for privkey_file, in PeiDocker's order), in a local project only:
// the public key goes into the generated users script, the private key
// only into .pei/secrets (mode 600), the build's secret.
func TestHostKeyFiles(t *testing.T) {
	home := t.TempDir()
	ssh := filepath.Join(home, ".ssh")
	writeFile(t, filepath.Join(ssh, "id_ecdsa"), hostPriv)        // private: ~ takes it for privkey_file (before id_ed25519)
	writeFile(t, filepath.Join(ssh, "id_ed25519.pub"), hostPub)   // the only public one
	writeFile(t, filepath.Join(ssh, "id_ed25519"), "not a key\n") // after id_ecdsa: never read
	writeFile(t, filepath.Join(home, "keys", "work.pub"), hostPub)
	emptyHome := t.TempDir()
	withHome := func(h string) config.LookupFunc {
		return func(k string) (string, bool) {
			if k == "HOME" {
				return h, true
			}
			return "", false
		}
	}
	for _, tc := range []struct {
		name, pub, priv string
		lookup          config.LookupFunc
		policy          Policy
		err             string // substring of the config error; "" for valid
		privName        string
	}{
		{name: "tilde", pub: "~", priv: "~", lookup: withHome(home), policy: Local, privName: "id_ecdsa"},
		{name: "tilde path", pub: "~/keys/work.pub", priv: "~/.ssh/id_ecdsa", lookup: withHome(home), policy: Local, privName: "id_ecdsa"},
		{name: "absolute", pub: filepath.Join(home, "keys/work.pub"), priv: filepath.Join(ssh, "id_ecdsa"), lookup: noEnv, policy: Local, privName: "id_ecdsa"},
		{name: "absolute missing", pub: filepath.Join(home, "nope.pub"), lookup: noEnv, policy: Local,
			err: "stage_1.ssh.users.me.pubkey_file: " + filepath.Join(home, "nope.pub") + " does not exist"},
		{name: "tilde without keys", pub: "~", lookup: withHome(emptyHome), policy: Local,
			err: "~ means your own key, but none of " + filepath.Join(emptyHome, ".ssh", "id_rsa.pub") + ", "},
		{name: "tilde without HOME", priv: "~", lookup: noEnv, policy: Local, err: "stage_1.ssh.users.me.privkey_file: \"~\" is in your home directory, but HOME is not set"},
		{name: "recipe", pub: filepath.Join(home, "keys/work.pub"), priv: "~", lookup: withHome(home), policy: Recipe,
			err: "is a file on this machine, which a recipe cannot name: copy the key into installation/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "proj")
			cfg := "stage_1:\n  image: {base: debian:bookworm}\n  ssh:\n    users:\n      me:\n"
			if tc.pub != "" {
				cfg += "        pubkey_file: '" + tc.pub + "'\n"
			}
			if tc.priv != "" {
				cfg += "        privkey_file: '" + tc.priv + "'\n"
			}
			writeFile(t, filepath.Join(dir, config.DefaultFile), cfg)
			res, err := Configure(ConfigureOptions{Policy: tc.policy, Dir: dir, Lookup: tc.lookup})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := res.Plan.Stages[0].Script.Users[0]
			if len(u.PubKeys) != 1 || u.PubKeys[0] != strings.TrimSpace(hostPub) || u.PubKeyFile != "" {
				t.Errorf("public keys %q (file %q), want the host's key", u.PubKeys, u.PubKeyFile)
			}
			if u.PrivKeyName != tc.privName {
				t.Errorf("private key installed as ~/.ssh/%s, want %s", u.PrivKeyName, tc.privName)
			}
			secret := filepath.Join(dir, plan.SecretDir, "privkey_me")
			if st, err := os.Stat(secret); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("secret file: %v %v", st, err)
			}
			if b, _ := os.ReadFile(secret); string(b) != hostPriv {
				t.Errorf("secret file content differs")
			}
			if s := res.Plan.Stages[0].Build.Secrets; len(s) != 1 || s[0].File != plan.SecretDir+"/privkey_me" {
				t.Errorf("build secrets %+v", s)
			}
			for name, content := range testenv.Snapshot(t, dir) {
				if strings.Contains(content, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ") && !strings.HasPrefix(name, ".pei") {
					t.Errorf("the private key is in %s", name)
				}
				if name == ".dockerignore" && strings.Contains(content, "id_ecdsa") {
					t.Errorf(".dockerignore names the host's key path: %s", content)
				}
			}
		})
	}
}
