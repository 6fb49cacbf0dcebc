package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// PrivateKeyYAML returns a new ed25519 private key in OpenSSH's format with
// its newlines written as \n, for a double-quoted YAML string
// (privkey_text) in a test config.
func PrivateKeyYAML(t testing.TB) string {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(strings.TrimSpace(string(pem.EncodeToMemory(block))), "\n", `\n`)
}
