package plan

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/pei-dev/pei/internal/config"
)

// A private key is installed under the name ssh looks for by default
// (~/.ssh/id_rsa, id_ecdsa, id_ed25519, id_dsa), as PeiDocker installs it,
// so ssh and git in the container use it: a file already named so keeps
// its name, any other key (privkey_text, a file named erin_ed25519) is
// named by its type, read from the key, encrypted or not.
func TestPrivateKeyName(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	openssh := func(k any) string {
		b, err := ssh.MarshalPrivateKey(k, "test")
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(b))
	}
	encrypted, err := ssh.MarshalPrivateKeyWithPassphrase(edKey, "test", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	keys := map[string]string{
		"ed25519":           openssh(edKey),
		"ecdsa":             openssh(ecKey),
		"rsa":               openssh(rsaKey),
		"ed25519 encrypted": string(pem.EncodeToMemory(encrypted)),
		"rsa pem":           string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})),
		"ecdsa pem":         string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})),
		// Legacy encrypted PEM: only the block's type says what it is.
		"ecdsa pem encrypted": string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
			Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: ecDER})),
		"pkcs8 pem encrypted": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY",
			Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: ecDER})),
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, key, file, want string
	}{
		{"text ed25519", "ed25519", "", "id_ed25519"},
		{"text ecdsa", "ecdsa", "", "id_ecdsa"},
		{"text rsa", "rsa", "", "id_rsa"},
		{"text encrypted ed25519", "ed25519 encrypted", "", "id_ed25519"},
		{"text PEM rsa", "rsa pem", "", "id_rsa"},
		{"text PEM ecdsa", "ecdsa pem", "", "id_ecdsa"},
		{"text encrypted PEM ecdsa", "ecdsa pem encrypted", "", "id_ecdsa"},
		{"text of a type it does not say", "pkcs8 pem encrypted", "", "id_rsa"}, // PeiDocker's default
		{"file named by the user", "ed25519", "stage-1/system/ssh/keys/erin_ed25519", "id_ed25519"},
		{"file with a .key suffix", "rsa", "stage-1/system/ssh/keys/id_rsa.key", "id_rsa"},
		{"file with ssh's name", "ed25519", "stage-1/system/ssh/keys/id_ecdsa", "id_ecdsa"},
		{"file with an id_ name ssh does not try", "ecdsa", "stage-1/system/ssh/keys/id_work", "id_ecdsa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var user string
			if tc.file == "" {
				user = "privkey_text: |\n" + indent(keys[tc.key], "          ")
			} else {
				p := filepath.Join(dir, config.InstallDir, tc.file)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(keys[tc.key]), 0o600); err != nil {
					t.Fatal(err)
				}
				user = "privkey_file: '" + tc.file + "'\n"
			}
			yml := "stage_1:\n  image: {base: debian:bookworm}\n  ssh:\n    users:\n      erin:\n        " + user
			cfg, err := config.Parse([]byte(yml), "user_config.yml", dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(config.WithDefaults(cfg), "proj")
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Stages[0].Script.Users[0].PrivKeyName; got != tc.want {
				t.Errorf("installed as ~/.ssh/%s, want %s", got, tc.want)
			}
		})
	}
}

func indent(s, by string) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	return by + strings.Join(lines, by) + "\n"
}
