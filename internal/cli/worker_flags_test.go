package cli

import "testing"

// --build-allow-net takes a CIDR or a single address, nothing else.
func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"10.1.2.3", "10.1.2.3/32", true},
		{"10.1.2.0/24", "10.1.2.0/24", true},
		{"10.1.2.7/24", "10.1.2.0/24", true},
		{"fd00::1", "fd00::1/128", true},
		{"proxy.example.org", "", false},
		{"10.1.2.0/33", "", false},
		{"", "", false},
	} {
		p, err := parsePrefix(tc.in)
		if (err == nil) != tc.ok || tc.ok && p.String() != tc.want {
			t.Errorf("parsePrefix(%q) = %v, %v; want %s (ok %v)", tc.in, p, err, tc.want, tc.ok)
		}
	}
}
