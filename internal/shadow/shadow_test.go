package shadow

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/testenv"
)

// Vectors from the SHA-crypt specification (rounds=5000 cases).
func TestCryptSpecVectors(t *testing.T) {
	for _, tc := range []struct{ key, salt, want string }{
		{"Hello world!", "saltstring", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	} {
		if got := Crypt(tc.key, tc.salt); got != tc.want {
			t.Errorf("Crypt(%q, %q) = %q, want %q", tc.key, tc.salt, got, tc.want)
		}
	}
}

// Hashes must agree with OpenSSL's implementation for awkward passwords.
func TestCryptMatchesOpenSSL(t *testing.T) {
	testenv.Tools(t, "openssl")
	for _, pw := range []string{"123456", "pass word, with: colons", `quo"te's $HOME \n`, strings.Repeat("long", 40), "üñíçødé"} {
		out, err := exec.Command("openssl", "passwd", "-6", "-salt", "abcdefgh12345678", pw).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := Crypt(pw, "abcdefgh12345678"), strings.TrimSpace(string(out)); got != want {
			t.Errorf("Crypt(%q) = %q, openssl says %q", pw, got, want)
		}
	}
}

func TestHashDeterministicAndContextual(t *testing.T) {
	a, b := Hash("secret", "p/me"), Hash("secret", "p/me")
	if a != b {
		t.Fatalf("same input, different hashes: %s %s", a, b)
	}
	if a == Hash("secret", "p/you") {
		t.Fatal("different users share a hash")
	}
	if strings.Contains(a, "secret") || !strings.HasPrefix(a, "$6$") {
		t.Fatalf("bad hash %s", a)
	}
}
