package sysmerge

import (
	"errors"
	"strings"
	"testing"
)

// st is a small status stanza.
func st(pkg, ver string, extra ...string) string {
	s := "Package: " + pkg + "\nStatus: install ok installed\nArchitecture: amd64\nVersion: " + ver + "\n"
	for _, e := range extra {
		s += e + "\n"
	}
	return s + "Description: " + pkg + "\n long text\n .\n more\n"
}

// status joins stanzas as dpkg does.
func status(stanzas ...string) []byte { return []byte(strings.Join(stanzas, "\n")) }

func ch(layer string, lower, upper []byte) Change {
	return Change{Layer: layer, Lower: lower, Upper: upper}
}

// wantErr checks err is a *ConflictError (or, with parse, any error) whose
// message holds every substring.
func checkErr(t *testing.T, err error, conflict bool, subs ...string) {
	t.Helper()
	if len(subs) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", subs)
	}
	var ce *ConflictError
	if conflict != errors.As(err, &ce) {
		t.Errorf("error %v: conflict error %v, want %v", err, !conflict, conflict)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestMergeStatus(t *testing.T) {
	libc := st("libc6", "2.36-9")
	libcNew := st("libc6", "2.36-9+deb12u4")
	libcOther := st("libc6", "2.36-9+deb12u7")
	gcc := st("gcc", "4:12.2.0-3", "Depends: libc6")
	py := st("python3", "3.11.2-1", "Depends: libc6 (>= 2.34)")
	node := st("nodejs", "18.19.0", "Depends: libc6")
	dev := status(gcc, libc)
	for _, tc := range []struct {
		name     string
		base     []byte
		diffs    []Change
		want     []byte
		missing  bool
		conflict bool
		errs     []string
	}{
		{name: "no diffs", base: status(libc), want: status(libc)},
		{name: "no-op diffs keep base byte for byte", base: []byte(py + "\n\n" + strings.TrimSuffix(libc, "\n")),
			diffs: []Change{ch("same", dev, dev), {Layer: "absent", LowerMissing: true, UpperMissing: true}},
			want:  []byte(py + "\n\n" + strings.TrimSuffix(libc, "\n"))},
		{name: "add one", base: status(libc), diffs: []Change{ch("py", dev, status(gcc, libc, py))}, want: status(libc, py)},
		{name: "add two sorted", base: status(libc), diffs: []Change{
			ch("py", dev, status(gcc, libc, py)), ch("node", dev, status(gcc, libc, node))},
			want: status(libc, node, py)},
		{name: "upgrade applies over base", base: status(libc), diffs: []Change{ch("up", dev, status(gcc, libcNew))}, want: status(libcNew)},
		{name: "same upgrade by two", base: status(libc), diffs: []Change{
			ch("a", dev, status(gcc, libcNew)), ch("b", dev, status(gcc, libcNew))}, want: status(libcNew)},
		{name: "removal", base: status(libc, py), diffs: []Change{ch("rm", status(libc, py), status(libc))}, want: status(libc)},
		{name: "two upgrades differ", base: status(libc), diffs: []Change{
			ch("a", dev, status(gcc, libcNew)), ch("b", dev, status(gcc, libcOther))},
			conflict: true, errs: []string{"package libc6:amd64 changed differently by layers a (", "and b (", "version 2.36-9+deb12u4, install ok installed", "version 2.36-9+deb12u7"}},
		{name: "removed and changed", base: status(libc, py), diffs: []Change{
			ch("a", status(libc, py), status(libc)), ch("b", status(libc, py), status(libc, st("python3", "3.11.4")))},
			conflict: true, errs: []string{"package python3:amd64", "layers a (removed) and b"}},
		{name: "every conflict at once", base: status(libc), diffs: []Change{
			ch("a", status(libc), status(libcNew, py)), ch("b", status(libc), status(libcOther, st("python3", "3.12")))},
			conflict: true, errs: []string{"libc6:amd64", "python3:amd64"}},
		{name: "file created", base: nil, diffs: []Change{{Layer: "a", LowerMissing: true, Upper: status(py)}}, want: status(py)},
		{name: "no base, no diffs", base: nil, missing: true},
		{name: "file deleted", base: status(py), diffs: []Change{{Layer: "a", Lower: status(py), UpperMissing: true}}, missing: true},
		{name: "stanza without Package", base: status(libc), diffs: []Change{ch("bad", dev, []byte("Status: install ok installed\n"))},
			errs: []string{"/var/lib/dpkg/status of layer bad (upper), line 1", "no Package field"}},
		{name: "not a field", base: []byte("Package: a\nnot a field\n"), diffs: []Change{ch("x", dev, status(libc))},
			errs: []string{"of the runtime base, line 2", `expected a field (Name: value), found "not a field"`}},
		{name: "continuation first", base: status(libc), diffs: []Change{ch("x", []byte(" cont\n"), status(libc))},
			errs: []string{"layer x (lower), line 1", "continuation line"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Merge("/var/lib/dpkg/status", tc.base, tc.diffs)
			checkErr(t, err, tc.conflict, tc.errs...)
			if err != nil {
				return
			}
			if res.Missing != tc.missing || string(res.Data) != string(tc.want) {
				t.Errorf("got missing=%v\n%s\nwant missing=%v\n%s", res.Missing, res.Data, tc.missing, tc.want)
			}
		})
	}
}

// dpkg writes a package's native or arch-less stanza before its foreign
// ones, and Multi-Arch: same stanzas by architecture.
func TestStatusOrder(t *testing.T) {
	stanza := func(pkg, arch string, extra ...string) string {
		s := "Package: " + pkg + "\nStatus: install ok installed\nArchitecture: " + arch + "\n"
		for _, e := range extra {
			s += e + "\n"
		}
		return s
	}
	dpkgSt := stanza("dpkg", "amd64")
	in := status(stanza("zlib1g", "i386", "Multi-Arch: same"), stanza("zlib1g", "amd64", "Multi-Arch: same"),
		stanza("wine", "i386"), stanza("wine", "amd64"), stanza("a-tool", "all"), dpkgSt)
	res, err := Merge("/var/lib/dpkg/status", []byte{}, []Change{{Layer: "x", LowerMissing: true, Upper: in}})
	if err != nil {
		t.Fatal(err)
	}
	want := status(stanza("a-tool", "all"), dpkgSt, stanza("wine", "amd64"), stanza("wine", "i386"),
		stanza("zlib1g", "amd64", "Multi-Arch: same"), stanza("zlib1g", "i386", "Multi-Arch: same"))
	if string(res.Data) != string(want) {
		t.Errorf("got\n%s\nwant\n%s", res.Data, want)
	}
}

func TestMergeStatusUpgradeWithoutBase(t *testing.T) {
	lib := st("libssl3", "3.0.11-1")
	res, err := Merge("/var/lib/dpkg/status", status(st("libc6", "2.36")), []Change{
		ch("py", status(lib), status(st("libssl3", "3.0.13-1")))})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].Kind != Dependency || res.Findings[0].Entry != "libssl3:amd64" ||
		!strings.Contains(res.Findings[0].Msg, "upgraded by layer py") {
		t.Errorf("findings %+v, want the upgrade of libssl3 without the package in the runtime base", res.Findings)
	}
}

// A package one layer upgraded and another installed whole at the same
// version is in the image with all its files: nothing to report, whichever
// layer comes first.
func TestMergeStatusUpgradedAndInstalled(t *testing.T) {
	old, cur := st("libssl3", "3.0.11-1"), st("libssl3", "3.0.13-1")
	base := status(st("libc6", "2.36"))
	upgraded := ch("up", status(old), status(cur))
	installed := ch("fresh", status(), status(cur))
	for _, order := range [][]Change{{upgraded, installed}, {installed, upgraded}} {
		res, err := Merge("/var/lib/dpkg/status", base, order)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Findings) != 0 || !strings.Contains(string(res.Data), "Version: 3.0.13-1") {
			t.Errorf("layers %s, %s: findings %+v\n%s\nwant libssl3 3.0.13-1 and nothing reported", order[0].Layer, order[1].Layer, res.Findings, res.Data)
		}
	}
}

// A layer that removes what a package of the runtime base depends on (one no
// layer changed) leaves a dependency finding for that package.
func TestMergeStatusBaseDependencyRemoved(t *testing.T) {
	py := st("python3.11", "3.11.2-6", "Depends: libsqlite3-0 (>= 3.7.15)")
	sqlite := st("libsqlite3-0", "3.40.1-2")
	res, err := Merge("/var/lib/dpkg/status", status(sqlite, py), []Change{ch("slim", status(sqlite), status())})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Data) != py || len(res.Findings) != 1 || res.Findings[0].Kind != Dependency ||
		res.Findings[0].Entry != "python3.11:amd64" || !strings.Contains(res.Findings[0].Msg, "depends on libsqlite3-0 (>= 3.7.15)") {
		t.Errorf("got\n%s\nfindings %+v; want python3.11 alone and its dependency on libsqlite3-0 reported", res.Data, res.Findings)
	}
}

func TestMergePasswd(t *testing.T) {
	const root = "root:x:0:0:root:/root:/bin/bash"
	const dev = root + "\nbuilder:x:1000:1000::/home/builder:/bin/bash\n"
	for _, tc := range []struct {
		name, path, base string
		diffs            []Change
		want             string
		conflict         bool
		errs             []string
	}{
		{name: "users of two layers appended in layer order", path: "/etc/passwd", base: root + "\n",
			diffs: []Change{
				ch("node", []byte(dev), []byte(dev+"node:x:1001:1001::/home/node:/bin/sh\n")),
				ch("py", []byte(dev), []byte(dev+"py:x:1002:1002::/srv/py:/bin/sh\n"))},
			want: root + "\nnode:x:1001:1001::/home/node:/bin/sh\npy:x:1002:1002::/srv/py:/bin/sh\n"},
		{name: "same user added by two", path: "/etc/passwd", base: root + "\n",
			diffs: []Change{
				ch("a", []byte(dev), []byte(dev+"app:x:999:999::/srv:/bin/sh\n")),
				ch("b", []byte(dev), []byte(dev+"app:x:999:999::/srv:/bin/sh\n"))},
			want: root + "\napp:x:999:999::/srv:/bin/sh\n"},
		{name: "same name, different entries", path: "/etc/passwd", base: root + "\n",
			diffs: []Change{
				ch("a", []byte(dev), []byte(dev+"app:x:999:999::/srv:/bin/sh\n")),
				ch("b", []byte(dev), []byte(dev+"app:x:998:998::/srv:/bin/sh\n"))},
			conflict: true, errs: []string{"user app changed differently by layers a", "and b"}},
		{name: "same uid, different names", path: "/etc/passwd", base: root + "\n",
			diffs: []Change{
				ch("a", []byte(dev), []byte(dev+"app:x:999:999::/srv:/bin/sh\n")),
				ch("b", []byte(dev), []byte(dev+"web:x:999:999::/srv:/bin/sh\n"))},
			conflict: true, errs: []string{"uid 999 is claimed by user app (a) and user web (b)"}},
		{name: "uid of the runtime base", path: "/etc/passwd", base: root + "\nsvc:x:999:999::/:/bin/false\n",
			diffs:    []Change{ch("a", []byte(dev), []byte(dev+"app:x:999:999::/srv:/bin/sh\n"))},
			conflict: true, errs: []string{"uid 999 is claimed by user svc (runtime base) and user app (a)"}},
		{name: "name of the runtime base", path: "/etc/passwd", base: root + "\napp:x:500:500::/:/bin/false\n",
			diffs:    []Change{ch("a", []byte(dev), []byte(dev+"app:x:999:999::/srv:/bin/sh\n"))},
			conflict: true, errs: []string{"user app added by layer a", "differs from the runtime base's"}},
		// One layer adds the user, another had it and changed it to the
		// same line: still an addition the runtime base contradicts, said
		// of the layer that added it.
		{name: "name of the runtime base, added by the second layer", path: "/etc/passwd", base: root + "\napp:x:500:500::/:/bin/false\n",
			diffs: []Change{
				ch("a", []byte(dev+"app:x:400:400::/:/bin/false\n"), []byte(dev+"app:x:999:999::/srv:/bin/sh\n")),
				ch("b", []byte(dev), []byte(dev+"app:x:999:999::/srv:/bin/sh\n"))},
			conflict: true, errs: []string{"user app added by layer b", "differs from the runtime base's"}},
		{name: "removed user", path: "/etc/passwd", base: root + "\nold:x:5:5::/:/bin/false\n",
			diffs: []Change{ch("a", []byte(root+"\nold:x:5:5::/:/bin/false\n"), []byte(root+"\n"))},
			want:  root + "\n"},
		{name: "malformed line", path: "/etc/passwd", base: root + "\n",
			diffs: []Change{ch("a", []byte(dev), []byte(dev+"broken:x:1\n"))},
			errs:  []string{"/etc/passwd of layer a (upper), line 3", "7 colon-separated fields", "this one 3"}},
		{name: "members added by two layers", path: "/etc/group", base: "users:x:100:alice\n",
			diffs: []Change{
				ch("a", []byte("users:x:100:\n"), []byte("users:x:100:app\n")),
				ch("b", []byte("users:x:100:\n"), []byte("users:x:100:web,app\n"))},
			want: "users:x:100:alice,app,web\n"},
		{name: "members added and gid changed", path: "/etc/group", base: "users:x:100:\n",
			diffs: []Change{
				ch("a", []byte("users:x:100:\n"), []byte("users:x:100:app\n")),
				ch("b", []byte("users:x:100:\n"), []byte("users:x:101:\n"))},
			conflict: true, errs: []string{"group users changed differently by layers a (added members app) and b"}},
		{name: "gid clash", path: "/etc/group", base: "users:x:100:\n",
			diffs: []Change{
				ch("a", []byte("users:x:100:\n"), []byte("users:x:100:\napp:x:101:\n")),
				ch("b", []byte("users:x:100:\n"), []byte("users:x:100:\nweb:x:101:\n"))},
			conflict: true, errs: []string{"gid 101 is claimed by group app (a) and group web (b)"}},
		{name: "members added by two layers to a group only the dev base has", path: "/etc/group", base: "root:x:0:\n",
			diffs: []Change{
				ch("a", []byte("root:x:0:\nssl-cert:x:101:\n"), []byte("root:x:0:\nssl-cert:x:101:app\n")),
				ch("b", []byte("root:x:0:\nssl-cert:x:101:\n"), []byte("root:x:0:\nssl-cert:x:101:web\n"))},
			want: "root:x:0:\nssl-cert:x:101:app,web\n"},
		{name: "gshadow: admins set and a member added (gpasswd -A, -a)", path: "/etc/gshadow", base: "docker:!::\n",
			diffs: []Change{ch("a", []byte("docker:!::\n"), []byte("docker:!:app:app\n"))},
			want:  "docker:!:app:app\n"},
		{name: "the runtime base's own users sharing a uid (useradd -o)", path: "/etc/passwd", base: root + "\ntoor:x:0:0:root:/root:/bin/sh\n",
			diffs: []Change{ch("a", []byte(dev), []byte(dev+"app:x:999:999::/srv:/bin/sh\n"))},
			want:  root + "\ntoor:x:0:0:root:/root:/bin/sh\napp:x:999:999::/srv:/bin/sh\n"},
		{name: "gshadow members", path: "/etc/gshadow", base: "users:*::\n",
			diffs: []Change{
				ch("a", []byte("users:*::\n"), []byte("users:*::app\n")),
				ch("b", []byte("users:*::\n"), []byte("users:*::web\n"))},
			want: "users:*::app,web\n"},
		{name: "shadow entries a day apart", path: "/etc/shadow", base: "root:*:19700:0:99999:7:::\n",
			diffs: []Change{
				ch("a", []byte("root:*:19700:0:99999:7:::\n"), []byte("root:*:19700:0:99999:7:::\nsvc:!:19701:::::: \n")),
				ch("b", []byte("root:*:19700:0:99999:7:::\n"), []byte("root:*:19700:0:99999:7:::\nsvc:!:19705:::::: \n"))},
			want: "root:*:19700:0:99999:7:::\nsvc:!:19705:::::: \n"},
		{name: "shadow: two users locked alike are no clash", path: "/etc/shadow", base: "root:*:19700:0:99999:7:::\n",
			diffs: []Change{
				ch("a", []byte("root:*:19700:0:99999:7:::\n"), []byte("root:*:19700:0:99999:7:::\nnode:!:19701::::::\n")),
				ch("b", []byte("root:*:19700:0:99999:7:::\n"), []byte("root:*:19700:0:99999:7:::\npy:!:19701::::::\n"))},
			want: "root:*:19700:0:99999:7:::\nnode:!:19701::::::\npy:!:19701::::::\n"},
		{name: "NIS entries and comments claim no id", path: "/etc/passwd", base: root + "\n+::::::\n",
			diffs: []Change{ch("a", []byte(dev), []byte(dev+"+@admins::::::\n-guest::::::\n#x:x:0:0::/:/bin/sh\n"))},
			want:  root + "\n+::::::\n+@admins::::::\n-guest::::::\n#x:x:0:0::/:/bin/sh\n"},
		{name: "shadow passwords differ", path: "/etc/shadow", base: "",
			diffs: []Change{
				ch("a", []byte(""), []byte("svc:!:19701::::::\n")),
				ch("b", []byte(""), []byte("svc:$6$x:19701::::::\n"))},
			conflict: true, errs: []string{"user svc changed differently by layers a", "and b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Merge(tc.path, []byte(tc.base), tc.diffs)
			checkErr(t, err, tc.conflict, tc.errs...)
			if err == nil && string(res.Data) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", res.Data, tc.want)
			}
		})
	}
}

// A password hash is a secret: no message shows one (messages reach build
// logs), while the markers for no password and a locked one stay.
func TestNoPasswordInMessages(t *testing.T) {
	const hash = "$6$salt$c2VjcmV0aGFzaA"
	for _, tc := range []struct {
		name, path, base string
		diffs            []Change
	}{
		{"two layers, one user", "/etc/shadow", "root:*:19700:0:99999:7:::\n", []Change{
			ch("a", []byte("root:*:19700:0:99999:7:::\n"), []byte("root:*:19700:0:99999:7:::\nsvc:"+hash+":19701::::::\n")),
			ch("b", []byte("root:*:19700:0:99999:7:::\n"), []byte("root:*:19700:0:99999:7:::\nsvc:!:19701::::::\n"))}},
		{"a user the runtime base has", "/etc/shadow", "svc:" + hash + "x:19700::::::\n", []Change{
			{Layer: "a", LowerMissing: true, Upper: []byte("svc:" + hash + ":19701::::::\n")}}},
		{"a malformed line", "/etc/shadow", "", []Change{
			{Layer: "a", LowerMissing: true, Upper: []byte("svc:" + hash + ":19701\n")}}},
		{"gshadow", "/etc/gshadow", "", []Change{
			{Layer: "a", LowerMissing: true, Upper: []byte("g:" + hash + "::\n")},
			{Layer: "b", LowerMissing: true, Upper: []byte("g:!::\n")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Merge(tc.path, []byte(tc.base), tc.diffs)
			if err == nil {
				t.Fatal("no conflict")
			}
			if strings.Contains(err.Error(), "c2VjcmV0aGFzaA") || !strings.Contains(err.Error(), "<password hidden>") {
				t.Errorf("message %q: want the hash hidden", err)
			}
			if strings.Contains(tc.name, "layers") && !strings.Contains(err.Error(), `"svc:!:19701::::::"`) {
				t.Errorf("message %q: want the locked marker shown", err)
			}
		})
	}
}

func TestMergeAlternatives(t *testing.T) {
	head := "auto\n/usr/bin/editor\neditor.1.gz\n/usr/share/man/man1/editor.1.gz\n\n"
	nano := "/bin/nano\n40\n/usr/share/man/man1/nano.1.gz\n"
	vim := "/usr/bin/vim.basic\n30\n/usr/share/man/man1/vim.1.gz\n"
	vim50 := "/usr/bin/vim.basic\n50\n/usr/share/man/man1/vim.1.gz\n"
	vimNoMan := "/usr/bin/vim.basic\n30\n\n"
	const path = "/var/lib/dpkg/alternatives/editor"
	f := func(choices ...string) []byte { return []byte(head + strings.Join(choices, "") + "\n") }
	for _, tc := range []struct {
		name     string
		base     []byte
		diffs    []Change
		want     []byte
		missing  bool
		conflict bool
		errs     []string
	}{
		{name: "choice added", base: f(nano), diffs: []Change{ch("vim", f(nano), f(nano, vim))}, want: f(nano, vim)},
		{name: "group created", diffs: []Change{{Layer: "vim", LowerMissing: true, Upper: f(vim)}}, want: f(vim)},
		{name: "choice removed", base: f(nano, vim), diffs: []Change{ch("rm", f(nano, vim), f(nano))}, want: f(nano)},
		{name: "last choice removed", base: f(vim), diffs: []Change{{Layer: "rm", Lower: f(vim), UpperMissing: true}}, missing: true},
		{name: "slave file empty", base: f(nano), diffs: []Change{ch("vim", f(nano), f(nano, vimNoMan))}, want: f(nano, vimNoMan)},
		{name: "priorities differ", base: f(nano), diffs: []Change{ch("a", f(nano), f(nano, vim)), ch("b", f(nano), f(nano, vim50))},
			conflict: true, errs: []string{"alternative /usr/bin/vim.basic changed differently by layers a", "and b"}},
		{name: "slaves differ", base: f(nano), diffs: []Change{ch("a", f(nano), f(nano, vim)), ch("b", f(nano), f(nano, vimNoMan))},
			conflict: true, errs: []string{"alternative /usr/bin/vim.basic", "layers a", "and b"}},
		{name: "mode set by one layer", base: f(nano), diffs: []Change{ch("a", f(nano), []byte(strings.Replace(string(f(nano)), "auto", "manual", 1)))},
			want: []byte(strings.Replace(string(f(nano)), "auto", "manual", 1))},
		{name: "bad mode", base: f(nano), diffs: []Change{ch("a", f(nano), []byte("sometimes\n/usr/bin/editor\n\n"))},
			errs: []string{"layer a (upper), line 1", `auto or manual, not "sometimes"`}},
		{name: "truncated", base: f(nano), diffs: []Change{ch("a", f(nano), []byte(head+"/bin/nano\n"))},
			errs: []string{"layer a (upper), line 7", `the priority of /bin/nano must be an integer, not ""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Merge(path, tc.base, tc.diffs)
			checkErr(t, err, tc.conflict, tc.errs...)
			if err == nil && (res.Missing != tc.missing || string(res.Data) != string(tc.want)) {
				t.Errorf("got missing=%v\n%q\nwant missing=%v\n%q", res.Missing, res.Data, tc.missing, tc.want)
			}
		})
	}
}

// A link group merged from several layers asks for update-alternatives
// --auto, so its link points at the best choice; one layer's does not.
func TestAlternativesRebuild(t *testing.T) {
	head := "auto\n/usr/bin/editor\neditor.1.gz\n/usr/share/man/man1/editor.1.gz\n\n"
	nano := "/bin/nano\n40\n/usr/share/man/man1/nano.1.gz\n"
	vim := "/usr/bin/vim.basic\n30\n/usr/share/man/man1/vim.1.gz\n"
	ed := "/bin/ed\n-100\n/usr/share/man/man1/ed.1.gz\n"
	f := func(choices ...string) []byte { return []byte(head + strings.Join(choices, "") + "\n") }
	const path = "/var/lib/dpkg/alternatives/editor"
	one, err := Merge(path, f(nano), []Change{ch("vim", f(nano), f(nano, vim))})
	if err != nil || len(one.Findings) != 0 {
		t.Errorf("one layer: %+v, %v; want no finding", one.Findings, err)
	}
	two, err := Merge(path, f(nano), []Change{ch("vim", f(nano), f(nano, vim)), ch("ed", f(nano), f(nano, ed))})
	if err != nil || len(two.Findings) != 1 || two.Findings[0].Kind != Rebuild || two.Findings[0].Step != "update-alternatives --auto editor" ||
		two.Findings[0].Entry != "editor" {
		t.Errorf("two layers: %+v, %v; want one rebuild finding: update-alternatives --auto editor", two.Findings, err)
	}
	manual := []byte(strings.Replace(string(f(nano)), "auto", "manual", 1))
	m, err := Merge(path, manual, []Change{ch("vim", manual, []byte(strings.Replace(string(f(nano, vim)), "auto", "manual", 1))),
		ch("ed", manual, []byte(strings.Replace(string(f(nano, ed)), "auto", "manual", 1)))})
	if err != nil || len(m.Findings) != 0 {
		t.Errorf("a manual group: %+v, %v; want no finding (the admin's choice stands)", m.Findings, err)
	}
}

func TestMergeLineSet(t *testing.T) {
	for _, tc := range []struct {
		name, path, base string
		diffs            []Change
		want             string
	}{
		{name: "shells union", path: "/etc/shells", base: "# /etc/shells\n/bin/sh\n/bin/bash\n",
			diffs: []Change{
				ch("zsh", []byte("/bin/sh\n/bin/bash\n"), []byte("/bin/sh\n/bin/bash\n/bin/zsh\n/usr/bin/zsh\n")),
				ch("fish", []byte("/bin/sh\n/bin/bash\n"), []byte("/bin/sh\n/bin/bash\n/usr/bin/fish\n/bin/zsh\n"))},
			want: "# /etc/shells\n/bin/sh\n/bin/bash\n/bin/zsh\n/usr/bin/zsh\n/usr/bin/fish\n"},
		{name: "line removed", path: "/etc/shells", base: "/bin/sh\n/bin/rbash\n",
			diffs: []Change{ch("a", []byte("/bin/sh\n/bin/rbash\n"), []byte("/bin/sh\n"))},
			want:  "/bin/sh\n"},
		{name: "pth", path: "/usr/lib/python3/dist-packages/distutils-precedence.pth", base: "",
			diffs: []Change{ch("a", nil, []byte("import os\n")), ch("b", nil, []byte("/opt/b\n"))},
			want:  "import os\n/opt/b\n"},
		{name: "ld.so.conf.d", path: "/etc/ld.so.conf.d/x86_64-linux-gnu.conf", base: "/usr/lib/x86_64-linux-gnu\n",
			diffs: []Change{ch("a", []byte("/usr/lib/x86_64-linux-gnu\n"), []byte("/usr/lib/x86_64-linux-gnu\n/usr/local/lib/a\n"))},
			want:  "/usr/lib/x86_64-linux-gnu\n/usr/local/lib/a\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Merge(tc.path, []byte(tc.base), tc.diffs)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Data) != tc.want {
				t.Errorf("got %q, want %q", res.Data, tc.want)
			}
		})
	}
}

func TestMergeCaches(t *testing.T) {
	for _, tc := range []struct{ path, step string }{
		{"/etc/ld.so.cache", "ldconfig"},
		{"/etc/ssl/certs/ca-certificates.crt", "update-ca-certificates"},
		{"/etc/ssl/certs/ISRG_Root_X1.pem", "update-ca-certificates"},
		{"/etc/ssl/certs/4042bcee.0", "update-ca-certificates"},
		{"/var/cache/fontconfig/3830d5c3ddfd5cd38a049b759396e72e-le64.cache-8", "fc-cache"},
		{"/usr/share/icons/hicolor/icon-theme.cache", "gtk-update-icon-cache"},
		{"/var/cache/man/index.db", "mandb"},
		{"/usr/share/mime/mime.cache", "update-mime-database"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			base := []byte("base")
			one, err := Merge(tc.path, base, []Change{ch("a", []byte("dev"), []byte("a"))})
			if err != nil {
				t.Fatal(err)
			}
			if string(one.Data) != "a" || len(one.Findings) != 1 || one.Findings[0].Kind != Rebuild || one.Findings[0].Step != tc.step ||
				!strings.Contains(one.Findings[0].Msg, "run "+tc.step) {
				t.Errorf("one layer: %q %+v, want its upper and a %s finding", one.Data, one.Findings, tc.step)
			}
			two, err := Merge(tc.path, base, []Change{ch("a", []byte("dev"), []byte("a")), ch("b", []byte("dev"), []byte("b"))})
			if err != nil {
				t.Fatal(err)
			}
			if string(two.Data) != "base" || two.Missing || len(two.Findings) != 1 || strings.Join(two.Findings[0].Layers, ",") != "a,b" {
				t.Errorf("two layers: %q missing=%v %+v, want base's bytes and one finding naming a and b", two.Data, two.Missing, two.Findings)
			}
			none, err := Merge(tc.path, nil, []Change{{Layer: "a", LowerMissing: true, Upper: []byte("a")}, {Layer: "b", LowerMissing: true, Upper: []byte("b")}})
			if err != nil {
				t.Fatal(err)
			}
			if !none.Missing || none.Data != nil || len(none.Findings) != 1 {
				t.Errorf("two layers, no base: %q missing=%v %+v, want no file (the runtime base has none) and one finding", none.Data, none.Missing, none.Findings)
			}
		})
	}
}

func TestMergeTriggers(t *testing.T) {
	res, err := Merge("/var/lib/dpkg/triggers/Unincorp", []byte(""), []Change{
		ch("py", []byte(""), []byte("ldconfig libpython3.11:amd64\n")),
		ch("fonts", []byte(""), []byte("/usr/share/fonts fontconfig\n"))})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Data) != "ldconfig libpython3.11:amd64\n/usr/share/fonts fontconfig\n" {
		t.Errorf("data %q", res.Data)
	}
	if len(res.Findings) != 1 || res.Findings[0].Entry != "ldconfig /usr/share/fonts" || res.Findings[0].Step != triggersStep ||
		!strings.Contains(res.Findings[0].Msg, "pending dpkg triggers: ldconfig, /usr/share/fonts") {
		t.Errorf("findings %+v", res.Findings)
	}
	file, err := Merge("/var/lib/dpkg/triggers/File", []byte("/usr/share/icons/hicolor hicolor-icon-theme\n"), []Change{
		ch("gtk", []byte(""), []byte("/usr/lib/x86_64-linux-gnu/gdk-pixbuf-2.0/2.10.0/loaders libgdk-pixbuf-2.0-0:amd64/noawait\n"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(file.Findings) != 1 || !strings.Contains(file.Findings[0].Msg, "file triggers added") ||
		!strings.Contains(file.Findings[0].Msg, "gdk-pixbuf-2.0/2.10.0/loaders") {
		t.Errorf("findings %+v", file.Findings)
	}

	// dpkg removes File when its last interest goes (purging man-db here);
	// the interest another layer added stays, and so does the file.
	const man, pixbuf = "/usr/share/man man-db/noawait\n", "/usr/lib/x86_64-linux-gnu/gdk-pixbuf-2.0/2.10.0/loaders libgdk-pixbuf-2.0-0:amd64/noawait\n"
	emptied, err := Merge("/var/lib/dpkg/triggers/File", nil, []Change{
		{Layer: "slim", Lower: []byte(man), UpperMissing: true},
		ch("gtk", []byte(man), []byte(man+pixbuf))})
	if err != nil {
		t.Fatal(err)
	}
	if emptied.Missing || string(emptied.Data) != pixbuf {
		t.Errorf("one layer emptied File, another added to it: %q missing=%v, want %q", emptied.Data, emptied.Missing, pixbuf)
	}
}

func TestMergeWhole(t *testing.T) {
	const info = "/var/lib/dpkg/info/python3.11:amd64.list"
	for _, tc := range []struct {
		name, path string
		base       []byte
		diffs      []Change
		want       string
		missing    bool
		findings   []string
		conflict   bool
		errs       []string
	}{
		{name: "info file of one layer", path: info, diffs: []Change{{Layer: "py", LowerMissing: true, Upper: []byte("/.\n/usr\n")}},
			want: "/.\n/usr\n"},
		{name: "info file same in two", path: info, diffs: []Change{
			{Layer: "a", LowerMissing: true, Upper: []byte("/usr\n")}, {Layer: "b", LowerMissing: true, Upper: []byte("/usr\n")}},
			want: "/usr\n"},
		{name: "info file differs", path: info, diffs: []Change{
			{Layer: "a", LowerMissing: true, Upper: []byte("/usr\n")}, {Layer: "b", LowerMissing: true, Upper: []byte("/usr/bin\n")}},
			conflict: true, errs: []string{"package python3.11:amd64 changed differently by layers a and b"}},
		{name: "info file removed", path: info, base: []byte("/usr\n"), diffs: []Change{{Layer: "rm", Lower: []byte("/usr\n"), UpperMissing: true}},
			missing: true},
		{name: "unknown by one layer", path: "/etc/os-release", base: []byte("base"), diffs: []Change{ch("a", []byte("dev"), []byte("a"))},
			want: "a"},
		{name: "unknown by two", path: "/etc/os-release", base: []byte("base"),
			diffs: []Change{ch("a", []byte("dev"), []byte("a")), ch("b", []byte("dev"), []byte("b"))},
			want:  "b", findings: []string{"/etc/os-release has no known format", "layers a, b", "the last one (b) wins"}},
		{name: "unknown: the last layer wins even when an earlier one agrees", path: "/etc/os-release", base: []byte("base"),
			diffs: []Change{ch("a", []byte("dev"), []byte("x")), ch("b", []byte("dev"), []byte("y")), ch("c", []byte("dev"), []byte("x"))},
			want:  "x", findings: []string{"layers a, b, c", "the last one (c) wins"}},
		{name: "unknown untouched layer ignored", path: "/etc/os-release", base: []byte("base"),
			diffs: []Change{ch("a", []byte("dev"), []byte("a")), ch("b", []byte("dev"), []byte("dev"))}, want: "a"},
		{name: "a backup: the last layer's, not reported", path: "/var/lib/dpkg/status-old", base: []byte("base"),
			diffs: []Change{ch("a", []byte("dev"), []byte("a")), ch("b", []byte("dev"), []byte("b"))}, want: "b"},
		{name: "a backup the last layer removed", path: "/etc/passwd-", base: []byte("base"),
			diffs: []Change{ch("a", []byte("dev"), []byte("a")), {Layer: "b", Lower: []byte("dev"), UpperMissing: true}}, missing: true},
		{name: "empty file is not missing", path: "/etc/hostname", base: nil,
			diffs: []Change{{Layer: "a", LowerMissing: true, Upper: []byte{}}}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Merge(tc.path, tc.base, tc.diffs)
			checkErr(t, err, tc.conflict, tc.errs...)
			if err != nil {
				return
			}
			if res.Missing != tc.missing || string(res.Data) != tc.want {
				t.Errorf("got missing=%v %q, want missing=%v %q", res.Missing, res.Data, tc.missing, tc.want)
			}
			if (len(tc.findings) > 0) != (len(res.Findings) == 1) || len(res.Findings) > 1 {
				t.Fatalf("findings %+v, want %d", res.Findings, len(tc.findings))
			}
			for _, s := range tc.findings {
				if res.Findings[0].Kind != Unmerged || !strings.Contains(res.Findings[0].Msg, s) {
					t.Errorf("finding %+v does not say %q", res.Findings[0], s)
				}
			}
		})
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		path string
		want Format
	}{
		{"/var/lib/dpkg/status", DpkgStatus},
		{"var/lib/dpkg/status", DpkgStatus},
		{"/var/lib/dpkg/status-old", Backup},
		{"/var/lib/dpkg/status-new", Unknown},
		{"/etc/passwd", Passwd},
		{"/etc/group", Group},
		{"/etc/shadow", Shadow},
		{"/etc/gshadow", GShadow},
		{"/etc/passwd-", Backup},
		{"/etc/gshadow-", Backup},
		{"/var/cache/debconf/config.dat-old", Backup},
		{"/etc/passwd.lock", Unknown},
		{"/var/lib/apt/extended_states", Paragraphs},
		{"/var/cache/debconf/config.dat", Paragraphs},
		{"/var/cache/debconf/templates.dat", Paragraphs},
		{"/var/cache/debconf/config.dat.lock", Unknown},
		{"/var/log/dpkg.log", Log},
		{"/var/log/apt/history.log", Log},
		{"/var/lib/dpkg/statoverride", LineSet},
		{"/var/cache/ldconfig/aux-cache", Cache},
		{"/var/cache/apt/pkgcache.bin", Cache},
		{"/var/cache/apt/archives/lock", Unknown},
		{"/var/lib/dpkg/info/python3.11.list", DpkgInfo},
		{"/var/lib/dpkg/info/libc6:amd64.md5sums", DpkgInfo},
		{"/var/lib/dpkg/info/dash.postinst", DpkgInfo},
		{"/var/lib/dpkg/info/format", Unknown},
		{"/var/lib/dpkg/alternatives/editor", Alternatives},
		{"/etc/shells", LineSet},
		{"/etc/ld.so.conf", LineSet},
		{"/etc/ld.so.conf.d/libc.conf", LineSet},
		{"/usr/lib/python3/dist-packages/x.pth", LineSet},
		{"/usr/lib/python3.11/site-packages/x.pth", LineSet},
		{"/usr/local/lib/python3.11/dist-packages/easy-install.pth", LineSet},
		{"/usr/lib/python3/dist-packages/x.py", Unknown},
		{"/etc/ld.so.cache", Cache},
		{"/etc/ssl/certs/ca-certificates.crt", Cache},
		{"/etc/ssl/certs/ISRG_Root_X1.pem", Cache},
		{"/etc/ssl/certs/4042bcee.0", Cache},
		{"/etc/ssl/certs/4042bcee.9", Cache},
		{"/etc/ssl/certs/notahash.0", Unknown},
		{"/var/cache/fontconfig/CACHEDIR.TAG", Cache},
		{"/usr/share/icons/hicolor/icon-theme.cache", Cache},
		{"/var/cache/man/index.db", Cache},
		{"/usr/share/mime/globs2", Cache},
		{"/usr/share/mime/packages/freedesktop.org.xml", Unknown},
		{"/var/lib/dpkg/triggers/File", Triggers},
		{"/var/lib/dpkg/triggers/Unincorp", Triggers},
		{"/var/lib/dpkg/triggers/ldconfig", Triggers},
		{"/var/lib/dpkg/triggers/Lock", Unknown},
		{"/usr/bin/python3", Unknown},
	} {
		if got := Kind(tc.path); got != tc.want {
			t.Errorf("Kind(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestMergeParagraphs(t *testing.T) {
	const path = "/var/lib/apt/extended_states"
	auto := func(pkg string) string {
		return "Package: " + pkg + "\nArchitecture: amd64\nAuto-Installed: 1\n\n"
	}
	base := []byte(auto("libbase"))
	py := Change{Layer: "py", Lower: []byte(auto("gcc")), Upper: []byte(auto("gcc") + auto("libpython3.11"))}
	node := Change{Layer: "node", Lower: []byte(auto("gcc")), Upper: []byte(auto("gcc") + auto("libnode108"))}
	res, err := Merge(path, base, []Change{py, node})
	if err != nil {
		t.Fatal(err)
	}
	// gcc is the dev base's: it stays out; both diffs' packages are in.
	if want := auto("libbase") + auto("libpython3.11") + auto("libnode108"); string(res.Data) != want {
		t.Errorf("merged:\n%s\nwant:\n%s", res.Data, want)
	}

	// debconf's databases key by Name; two layers answering one question
	// differently is a conflict naming both.
	const conf = "/var/cache/debconf/config.dat"
	q := func(v string) string {
		return "Name: tzdata/Areas\nTemplate: tzdata/Areas\nValue: " + v + "\nOwners: tzdata\n\n"
	}
	_, err = Merge(conf, nil, []Change{
		{Layer: "a", LowerMissing: true, Upper: []byte(q("Europe"))},
		{Layer: "b", LowerMissing: true, Upper: []byte(q("Asia"))},
	})
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "tzdata/Areas") || !strings.Contains(err.Error(), "layers a") {
		t.Errorf("two answers to one question: got %v, want a conflict naming tzdata/Areas and both layers", err)
	}
	if _, err := Merge(conf, nil, []Change{{Layer: "a", LowerMissing: true, Upper: []byte("Template: x\n\n")}}); err == nil ||
		!strings.Contains(err.Error(), "no Package or Name field") || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a paragraph without its key: got %v, want an error naming the missing field and line", err)
	}
}

func TestMergeLog(t *testing.T) {
	const path = "/var/log/dpkg.log"
	for _, tc := range []struct {
		name  string
		base  []byte
		diffs []Change
		want  string
		gone  bool
	}{
		{"appends in layer order", []byte("b\n"), []Change{
			{Layer: "py", Lower: []byte("dev\n"), Upper: []byte("dev\npy\n")},
			{Layer: "node", Lower: []byte("dev\n"), Upper: []byte("dev\nnode\n")},
		}, "b\npy\nnode\n", false},
		{"a new log", nil, []Change{{Layer: "py", LowerMissing: true, Upper: []byte("py\n")}}, "py\n", false},
		{"an empty new log exists", nil, []Change{{Layer: "py", LowerMissing: true, Upper: []byte{}}}, "", false},
		{"a rotated log: the last rewrite wins", []byte("b\n"), []Change{
			{Layer: "py", Lower: []byte("dev\n"), Upper: []byte("rotated\n")},
			{Layer: "node", Lower: []byte("dev\n"), Upper: []byte("dev\nnode\n")},
		}, "rotated\n", false},
		{"a rotated log a later layer removed: the rewrite stays", []byte("b\n"), []Change{
			{Layer: "py", Lower: []byte("dev\n"), Upper: []byte("rotated\n")},
			{Layer: "clean", Lower: []byte("dev\n"), UpperMissing: true},
		}, "rotated\n", false},
		{"removed everywhere", nil, []Change{{Layer: "py", Lower: []byte("dev\n"), UpperMissing: true}}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Merge(path, tc.base, tc.diffs)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Data) != tc.want || res.Missing != tc.gone || (!tc.gone && res.Data == nil) || len(res.Findings) != 0 {
				t.Errorf("got %q missing=%v findings=%v, want %q missing=%v and no findings", res.Data, res.Missing, res.Findings, tc.want, tc.gone)
			}
		})
	}
}
