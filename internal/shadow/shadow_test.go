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

// The system crypt (libxcrypt, through perl's crypt) is what a login checks
// a password with: it matches Crypt up to MaxPasswordBytes and refuses one
// byte more, so config refuses such passwords.
func TestCryptSystemLimit(t *testing.T) {
	testenv.Tools(t, "perl")
	const salt = "abcdefgh12345678"
	for _, tc := range []struct {
		n     int
		works bool
	}{{MaxPasswordBytes, true}, {MaxPasswordBytes + 1, false}} {
		pw := strings.Repeat("x", tc.n)
		out, err := exec.Command("perl", "-e", `print crypt($ARGV[0], $ARGV[1])`, pw, "$6$"+salt+"$").Output()
		if err != nil {
			t.Fatal(err)
		}
		got := string(out)
		switch {
		case tc.works && got != Crypt(pw, salt):
			t.Errorf("%d bytes: system crypt %q, Crypt %q", tc.n, got, Crypt(pw, salt))
		case !tc.works && strings.HasPrefix(got, "$6$"):
			t.Errorf("%d bytes: the system crypt hashed it (%q); MaxPasswordBytes is too low", tc.n, got)
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
