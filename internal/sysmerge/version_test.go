package sysmerge

import (
	"strings"
	"testing"
)

// Results as `dpkg --compare-versions a lt|eq|gt b` gives them (several
// from dpkg's own t-version tests and Debian Policy §5.6.12's examples).
func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.2.3", "1.2.10", -1},
		{"1.0.0", "1.0", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0~~a", "1.0~", -1},
		{"1.0~~", "1.0~~a", -1},
		{"1.0", "1.0a", -1},
		{"1.0a", "1.0+", -1},
		{"1.0+dfsg", "1.0", 1},
		{"1.0", "1.0+b1", -1},
		{"1:0.9", "1.0", 1},
		{"0:1.0", "1.0", 0},
		{"2:1.0", "1:9.9", 1},
		{"1.0-1", "1.0-2", -1},
		{"1.0-1", "1.0.1-1", -1},
		{"1.0-0", "1.0", 0},
		{"1.0-1~bpo12+1", "1.0-1", -1},
		{"2.30-1", "2.4-1", 1},
		{"7.6p2-4", "7.6-0", 1},
		{"3.11.2-6+deb12u1", "3.11.2-6", 1},
		{"1.0-a-1", "1.0-a-2", -1},
		{"1.0-a-1", "1.0-1", 1},
		{"18.19.0+dfsg-6~deb12u2", "18.19.0+dfsg-6", -1},
		{"1:1.2.13.dfsg-1", "1:1.2.0", 1},
		{"0001.0", "1.0", 0},
		{"1.001", "1.1", 0},
		{"a", "b", -1},
		{"1.0.", "1.0", 1},
		{"", "0", 0},
		{"12.2.0-14", "12.2.0-1~", 1},
		{"4:12.2.0-3", "12.2.0-14", 1},
		{"1.9", "1.10", -1},
		{"1.0-9", "1.0-10", -1},
		// A non-digit part longer than the other's meets the start of its
		// digits: that counts as the part's end, whatever the digit.
		{"1.0+dfsg", "1.0+0.1", 1},
		{"1.0+dfsg", "1.0+9", 1},
		// Letters, to the ends of both ranges, before other characters.
		{"1.0.2z", "1.0.2.1", -1},
		{"1.0A", "1.0.1", -1},
		{"1.0Z", "1.0.1", -1},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestCheckDepends(t *testing.T) {
	pkg := func(name, ver string, extra ...string) string {
		s := "Package: " + name + "\nStatus: install ok installed\nArchitecture: amd64\nVersion: " + ver + "\n"
		for _, e := range extra {
			s += e + "\n"
		}
		return s
	}
	for _, tc := range []struct {
		name string
		pkgs []string
		want []string
	}{
		{name: "plain", pkgs: []string{pkg("a", "1", "Depends: b"), pkg("b", "1")}},
		{name: "missing", pkgs: []string{pkg("a", "1", "Depends: b, c"), pkg("b", "1")},
			want: []string{"package a:amd64 depends on c, which no installed package provides"}},
		{name: "pre-depends", pkgs: []string{pkg("a", "1", "Pre-Depends: c (>= 2)")},
			want: []string{"package a:amd64 pre-depends on c (>= 2)"}},
		{name: "version too old", pkgs: []string{pkg("a", "1", "Depends: b (>= 2.0~)"), pkg("b", "1.9")},
			want: []string{"depends on b (>= 2.0~)"}},
		{name: "version tilde", pkgs: []string{pkg("a", "1", "Depends: b (>= 2.0~)"), pkg("b", "2.0~rc1")}},
		{name: "strict relations", pkgs: []string{pkg("a", "1", "Depends: b (<< 2), c (>> 1), d (= 1:1.0-1), e (<= 3)"),
			pkg("b", "1.9"), pkg("c", "1.0+b1"), pkg("d", "1:1.0-1"), pkg("e", "3")}},
		{name: "equal versions", pkgs: []string{pkg("a", "1", "Depends: b (>= 2), c (>> 2)"), pkg("b", "2"), pkg("c", "2")},
			want: []string{"depends on c (>> 2)"}},
		{name: "alternatives", pkgs: []string{pkg("a", "1", "Depends: x | y (>= 1) | b"), pkg("b", "1")}},
		{name: "no alternative", pkgs: []string{pkg("a", "1", "Depends: x | y")}, want: []string{"depends on x | y"}},
		{name: "provides", pkgs: []string{pkg("a", "1", "Depends: mail-transport-agent"), pkg("exim", "4", "Provides: mail-transport-agent")}},
		{name: "unversioned provides, versioned dep", pkgs: []string{pkg("a", "1", "Depends: v (>= 1)"), pkg("p", "4", "Provides: v")},
			want: []string{"depends on v (>= 1)"}},
		{name: "versioned provides", pkgs: []string{pkg("a", "1", "Depends: v (>= 1)"), pkg("p", "4", "Provides: v (= 1.5)")}},
		{name: "versioned provides too old", pkgs: []string{pkg("a", "1", "Depends: v (>= 2)"), pkg("p", "4", "Provides: v (= 1.5)")},
			want: []string{"depends on v (>= 2)"}},
		{name: "arch qualifier", pkgs: []string{pkg("a", "1", "Depends: python3:any (>= 3.9), libc6:native"), pkg("python3", "3.11"), pkg("libc6", "2.36")}},
		{name: "continuation line", pkgs: []string{pkg("a", "1", "Depends: b,\n c"), pkg("b", "1")}, want: []string{"depends on c"}},
		{name: "config-files only does not satisfy",
			pkgs: []string{pkg("a", "1", "Depends: b"), "Package: b\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n"},
			want: []string{"depends on b"}},
		{name: "not-installed is not checked", pkgs: []string{"Package: a\nStatus: purge ok not-installed\nDepends: gone\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := CheckDepends(status(tc.pkgs...))
			if len(fs) != len(tc.want) {
				t.Fatalf("findings %+v, want %d", fs, len(tc.want))
			}
			for i, f := range fs {
				if f.Kind != Dependency || !strings.Contains(f.Msg, tc.want[i]) {
					t.Errorf("finding %+v, want a dependency finding saying %q", f, tc.want[i])
				}
			}
		})
	}
}
