package sysmerge

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

// stanzaOf returns the stanza of package pkg in a status file.
func stanzaOf(t *testing.T, status []byte, pkg string) string {
	t.Helper()
	for _, s := range strings.Split(string(status), "\n\n") {
		if strings.HasPrefix(s, "Package: "+pkg+"\n") {
			return strings.TrimSuffix(s, "\n")
		}
	}
	return ""
}

// The case: runtime = merge(debian, diff(dev, dev+python), diff(dev,
// dev+node)); the dev base's gcc is in both diffs' lowers and uppers.
func TestStatusFixture(t *testing.T) {
	base, dev := readFixture(t, "status/base"), readFixture(t, "status/devbase")
	py, node := readFixture(t, "status/py"), readFixture(t, "status/node")
	const path = "/var/lib/dpkg/status"
	diffs := []Change{{Layer: "py", Lower: dev, Upper: py}, {Layer: "node", Lower: dev, Upper: node}}
	res, err := Merge(path, base, diffs)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status/merged.golden", res.Data)
	for _, pkg := range []string{"python3", "python3.11", "libpython3.11-stdlib", "nodejs", "libnode108", "libc6", "dpkg"} {
		if got, want := stanzaOf(t, res.Data, pkg), stanzaOf(t, append(append(base, py...), node...), pkg); got != want || got == "" {
			t.Errorf("package %s: got stanza %q, want the diff's or base's bytes %q", pkg, got, want)
		}
	}
	for _, pkg := range []string{"gcc", "gcc-12", "cpp", "cpp-12", "libexpat1"} {
		if stanzaOf(t, res.Data, pkg) != "" {
			t.Errorf("package %s of the dev base leaked into the composed status", pkg)
		}
	}
	// libexpat1 was the dev base's: python's libraries need it.
	var deps []string
	for _, f := range res.Findings {
		if f.Kind != Dependency {
			t.Errorf("unexpected finding %+v", f)
			continue
		}
		deps = append(deps, f.Entry)
		if !strings.Contains(f.Msg, "libexpat1 (>= 2.1~beta3)") || !strings.Contains(f.Msg, "only the dev base (the lower of layer py)") ||
			len(f.Layers) != 1 || f.Layers[0] != "py" || f.Path != path {
			t.Errorf("finding %+v: want libexpat1 named, the dev base blamed, layer py", f)
		}
	}
	if strings.Join(deps, " ") != "libpython3.11-stdlib:amd64 python3.11-minimal:amd64" {
		t.Errorf("dependency findings for %v, want libpython3.11-stdlib:amd64 and python3.11-minimal:amd64", deps)
	}

	// With libexpat1 in the runtime base nothing is missing.
	withExpat := append(append(bytes.Clone(base), '\n'), stanzaOf(t, dev, "libexpat1")+"\n"...)
	res2, err := Merge(path, withExpat, diffs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Findings) != 0 {
		t.Errorf("findings with libexpat1 in the runtime base: %+v", res2.Findings)
	}
	// The other order writes the same bytes: the status is sorted.
	res3, err := Merge(path, base, []Change{diffs[1], diffs[0]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res3.Data, res.Data) {
		t.Error("swapping the diffs changed the merged status")
	}
}

func TestPasswdFixture(t *testing.T) {
	for _, tc := range []struct{ path, file, golden string }{
		{"/etc/passwd", "", "passwd/merged.golden"},
		{"/etc/group", "group.", "passwd/group.merged.golden"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			dev := readFixture(t, "passwd/"+tc.file+"devbase")
			res, err := Merge(tc.path, readFixture(t, "passwd/"+tc.file+"base"), []Change{
				{Layer: "py", Lower: dev, Upper: readFixture(t, "passwd/"+tc.file+"py")},
				{Layer: "node", Lower: dev, Upper: readFixture(t, "passwd/"+tc.file+"node")},
			})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, res.Data)
			if bytes.Contains(res.Data, []byte("builder")) || bytes.Contains(res.Data, []byte("_apt")) {
				t.Error("the dev base's own entries leaked into the result")
			}
		})
	}
}

func TestAlternativesFixture(t *testing.T) {
	dev := readFixture(t, "alternatives/devbase")
	const path = "/var/lib/dpkg/alternatives/editor"
	diffs := []Change{
		{Layer: "vim", Lower: dev, Upper: readFixture(t, "alternatives/vim")},
		{Layer: "ed", Lower: dev, Upper: readFixture(t, "alternatives/ed")},
	}
	res, err := Merge(path, readFixture(t, "alternatives/base"), diffs)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "alternatives/merged.golden", res.Data)
	if len(res.Findings) != 1 || res.Findings[0].Step != "update-alternatives --auto editor" {
		t.Errorf("findings %+v, want one asking for update-alternatives --auto editor", res.Findings)
	}
	swapped, err := Merge(path, readFixture(t, "alternatives/base"), []Change{diffs[1], diffs[0]})
	if err != nil || !bytes.Equal(swapped.Data, res.Data) {
		t.Errorf("swapping the diffs: %v, %q", err, swapped.Data)
	}
}
