package buildkit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	fstypes "github.com/tonistiigi/fsutil/types"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/sysmerge"
)

// fakeRef is a solved state's files for the unit tests: path → content;
// a value of nil is a directory, one starting with "->" a symlink.
type fakeRef struct {
	files map[string][]byte
	reads int
}

func (f *fakeRef) ToState() (llb.State, error)    { return llb.Scratch(), nil }
func (f *fakeRef) Evaluate(context.Context) error { return nil }

func (f *fakeRef) stat(p string) (*fstypes.Stat, bool) {
	if p == "/" {
		return &fstypes.Stat{Path: "/", Mode: uint32(os.ModeDir | 0o755)}, true
	}
	d, ok := f.files[p]
	if !ok {
		// A parent of a listed path is a directory too.
		for q := range f.files {
			if strings.HasPrefix(q, p+"/") {
				return &fstypes.Stat{Path: path.Base(p), Mode: uint32(os.ModeDir | 0o755)}, true
			}
		}
		return nil, false
	}
	switch {
	case d == nil:
		return &fstypes.Stat{Path: path.Base(p), Mode: uint32(os.ModeDir | 0o755)}, true
	case string(d) == "whiteout":
		return &fstypes.Stat{Path: path.Base(p), Mode: uint32(os.ModeDevice | os.ModeCharDevice)}, true
	case bytes.HasPrefix(d, []byte("->")):
		return &fstypes.Stat{Path: path.Base(p), Mode: uint32(os.ModeSymlink | 0o777), Linkname: string(d[2:])}, true
	}
	return &fstypes.Stat{Path: path.Base(p), Mode: 0o640, Uid: 7, Gid: 42, Size: int64(len(d)), ModTime: 1e9}, true
}

func (f *fakeRef) ReadFile(_ context.Context, req gateway.ReadRequest) ([]byte, error) {
	f.reads++
	d, ok := f.files[req.Filename]
	if !ok || d == nil {
		return nil, fmt.Errorf("open %s: no such file or directory", req.Filename)
	}
	if r := req.Range; r != nil {
		d = d[min(r.Offset, len(d)):min(r.Offset+r.Length, len(d))]
	}
	return slices.Clone(d), nil
}

func (f *fakeRef) StatFile(_ context.Context, req gateway.StatRequest) (*fstypes.Stat, error) {
	st, ok := f.stat(req.Path)
	if !ok {
		return nil, fmt.Errorf("stat %s: no such file or directory", req.Path)
	}
	return st, nil
}

// ReadDir fails on a missing directory, as BuildKit's does.
func (f *fakeRef) ReadDir(_ context.Context, req gateway.ReadDirRequest) ([]*fstypes.Stat, error) {
	if st, ok := f.stat(req.Path); !ok || !os.FileMode(st.Mode).IsDir() {
		return nil, fmt.Errorf("walking %q: no such file or directory", req.Path)
	}
	seen := map[string]bool{}
	var out []*fstypes.Stat
	prefix := strings.TrimSuffix(req.Path, "/") + "/"
	for p := range f.files {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		name, _, _ := strings.Cut(p[len(prefix):], "/")
		if !seen[name] {
			seen[name] = true
			st, _ := f.stat(prefix + name)
			out = append(out, st)
		}
	}
	return out, nil
}

func fsOf(files map[string]string) *refFS {
	m := map[string][]byte{}
	for p, d := range files {
		if d == "/" {
			m[p] = nil
		} else {
			m[p] = []byte(d)
		}
	}
	return newRefFS(&fakeRef{files: m})
}

func TestRefFS(t *testing.T) {
	ctx := context.Background()
	big := strings.Repeat("x", readChunk*2+5)
	f := fsOf(map[string]string{"/etc/passwd": "root\n", "/etc/empty": "", "/etc/ssl/certs/a.pem": "->../a",
		"/var/lib/dpkg/status": "s", "/usr/big": big, "/opt/dir": "/"})
	var walked []string
	if err := f.walk(ctx, "/", func(p string) { walked = append(walked, p) }); err != nil {
		t.Fatal(err)
	}
	want := []string{"/etc/empty", "/etc/passwd", "/etc/ssl/certs/a.pem", "/usr/big", "/var/lib/dpkg/status"}
	if !slices.Equal(walked, want) {
		t.Errorf("walk: %v, want %v (files and links in order, no directories)", walked, want)
	}
	for _, tc := range []struct {
		path, want string
		regular    bool
	}{
		{"/etc/passwd", "root\n", true},
		{"/etc/empty", "", true},
		{"/usr/big", big, true},
		{"/etc/ssl/certs/a.pem", "", false}, // a link is not read
		{"/etc/missing", "", false},
		{"/no/such/dir/file", "", false},
		{"/opt/dir", "", false},
	} {
		d, st, err := f.file(ctx, tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if (st != nil) != tc.regular || (d != nil) != tc.regular || string(d) != tc.want {
			t.Errorf("%s: %d bytes, stat %v; want %d bytes, regular %v", tc.path, len(d), st, len(tc.want), tc.regular)
		}
	}
	if n := f.ref.(*fakeRef).reads; n != 1+3 {
		t.Errorf("%d reads, want 4: one for the small file, three chunks for the big one, none for the empty one", n)
	}
	// A nil reference (an empty diff) is an empty file system.
	var none []string
	if err := newRefFS(nil).walk(ctx, "/", func(p string) { none = append(none, p) }); err != nil || len(none) != 0 {
		t.Errorf("empty reference: %v, %v", none, err)
	}
}

func stanza(pkg string) string {
	return "Package: " + pkg + "\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n"
}

func TestMergeFile(t *testing.T) {
	ctx := context.Background()
	const status = "/var/lib/dpkg/status"
	dev := stanza("gcc")
	base := fsOf(map[string]string{status: stanza("base"), "/etc/os-release": "base", "/var/lib/dpkg/info/old.list": "/old\n"})
	layer := func(name string, lower, upper map[string]string) *layerFS {
		return &layerFS{layer: composeLayer{name: name, diff: true}, lower: fsOf(lower), upper: fsOf(upper), part: fsOf(upper)}
	}
	py := layer("[1] py", map[string]string{status: dev, "/etc/os-release": "dev", "/var/lib/dpkg/info/old.list": "/old\n"},
		map[string]string{status: dev + "\n" + stanza("python3"), "/etc/os-release": "py"})
	node := layer("[2] node", map[string]string{status: dev, "/etc/os-release": "dev"},
		map[string]string{status: dev + "\n" + stanza("nodejs"), "/etc/os-release": "node"})
	fss := []*layerFS{py, node}
	touched := []map[string]bool{{}, {}}
	for i, f := range fss {
		if err := f.part.walk(ctx, "/", func(p string) { touched[i][p] = true }); err != nil {
			t.Fatal(err)
		}
		if err := deletedShared(ctx, f, touched[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !touched[0]["/var/lib/dpkg/info/old.list"] || touched[1]["/var/lib/dpkg/info/old.list"] {
		t.Errorf("deletions: %v, want the info file py's upper deleted, for py only", touched)
	}

	a, findings, err := mergeFile(ctx, status, base, fss, touched)
	if err != nil {
		t.Fatal(err)
	}
	if a == nil || a.remove || string(a.data) != stanza("base")+"\n"+stanza("nodejs")+"\n"+stanza("python3") {
		t.Fatalf("status: %+v, want base, nodejs and python3 (not gcc) in dpkg's order", a)
	}
	if a.stat.Uid != 7 || a.stat.Gid != 42 || a.stat.Mode != 0o640 {
		t.Errorf("the merged file's owner and mode: %+v, want the top layer's", a.stat)
	}
	if len(findings) != 0 {
		t.Errorf("findings: %+v", findings)
	}

	// Changed differently by two layers, of no known format: reported,
	// and the plain merge (the last layer's) stands.
	a, findings, err = mergeFile(ctx, "/etc/os-release", base, fss, touched)
	if err != nil || a != nil || len(findings) != 1 || findings[0].Kind != sysmerge.Unmerged ||
		!strings.Contains(withPath(findings[0]), "/etc/os-release") || !strings.Contains(findings[0].Msg, "[1] py, [2] node") {
		t.Errorf("os-release: action %+v, findings %+v, err %v; want no action and one unmerged finding naming both layers", a, findings, err)
	}

	// Deleted by the layer, present in the runtime base: the plain merge
	// applies the diff's deletion, so nothing is left to do, whether the
	// diff shows it as a whiteout or not at all.
	for _, whiteout := range []bool{false, true} {
		if whiteout {
			py.part.ref.(*fakeRef).files["/var/lib/dpkg/info/old.list"] = []byte("whiteout")
		}
		a, _, err = mergeFile(ctx, "/var/lib/dpkg/info/old.list", base, fss, touched)
		if err != nil || a != nil {
			t.Errorf("a deleted info file (whiteout %v): %+v, %v; want no action", whiteout, a, err)
		}
	}

	// Two layers installing one package differently: a conflict.
	other := layer("[3] other", map[string]string{status: dev}, map[string]string{status: dev + "\n" + strings.Replace(stanza("python3"), "Version: 1", "Version: 2", 1)})
	fss = append(fss, other)
	touched = append(touched, map[string]bool{status: true})
	_, _, err = mergeFile(ctx, status, base, fss, touched)
	var ce *sysmerge.ConflictError
	if !asConflict(err, &ce) || !strings.Contains(err.Error(), "python3") || !strings.Contains(err.Error(), "[1] py") || !strings.Contains(err.Error(), "[3] other") {
		t.Errorf("two versions of python3: %v, want a conflict naming the package and both layers", err)
	}
}

func asConflict(err error, ce **sysmerge.ConflictError) bool {
	c, ok := err.(*sysmerge.ConflictError)
	*ce = c
	return ok
}

func TestFinalScript(t *testing.T) {
	if s := finalScript(map[string]bool{}, false); s != "" {
		t.Errorf("no steps: %q", s)
	}
	if s := finalScript(map[string]bool{}, true); !strings.Contains(s, `for g in "$@"; do update-alternatives --auto "$g"; done`) {
		t.Errorf("link groups: %q, want them read from the arguments", s)
	}
	s := finalScript(map[string]bool{"fc-cache": true, "ldconfig": true, "gtk-update-icon-cache": true}, false)
	if !strings.HasPrefix(s, "set -e\n") || !strings.Contains(s, "ldconfig; fi\nrm -f /var/cache/ldconfig/aux-cache\n") ||
		strings.Index(s, "ldconfig") > strings.Index(s, "fc-cache") || strings.Contains(s, "gtk") || strings.Contains(s, "update-ca") {
		t.Errorf("script:\n%s\nwant ldconfig (then its aux-cache removed), then fc-cache, and no step pei does not run", s)
	}
}

func TestBuiltOn(t *testing.T) {
	img := func(ids ...string) ocispecs.Image {
		var c ocispecs.Image
		for _, id := range ids {
			c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, digest.FromString(id))
		}
		return c
	}
	for _, tc := range []struct {
		name         string
		upper, lower ocispecs.Image
		want         bool
	}{
		{"built on it", img("a", "b", "c"), img("a", "b"), true},
		{"the same image", img("a", "b"), img("a", "b"), true},
		{"a moved base", img("a", "b", "c"), img("a", "x"), false},
		{"the lower is bigger", img("a"), img("a", "b"), false},
		{"unrelated", img("x", "y"), img("a"), false},
		{"no layer ids", img(), img("a"), true},
	} {
		if got := builtOn(tc.upper, tc.lower); got != tc.want {
			t.Errorf("%s: builtOn = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A runner's install takes the config's values as arguments and working
// directories, never as shell text, with the package manager's cache a
// mount of the tenant's own.
func TestRunnerInstall(t *testing.T) {
	run := llb.Image("docker.io/library/runner:1")
	hostile := `x.txt; touch /pwned $(id)`
	for _, tc := range []struct {
		name   string
		r      config.Runner
		args   []string
		cache  string
		script bool
	}{
		{"pip", config.Runner{Dir: "deps", Pip: hostile},
			[]string{"python3", "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location",
				"--root-user-action=ignore", "--break-system-packages", "--requirement", hostile}, "/root/.cache/pip", false},
		{"npm", config.Runner{Dir: ".", Npm: "package.json", Target: "/srv/$(id)"}, nil, "/root/.npm", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := runnerInstall(run, tc.r, Context("t", nil), Options{CacheNamespace: "alice", SourceDateEpoch: 5, TrustedCAs: []byte("PEM")}, "[x]")
			es := execs(t, st)
			if len(es) != 1 {
				t.Fatalf("%d execs, want 1", len(es))
			}
			e := es[0]
			if tc.script {
				if len(e.args) != 3 || e.args[0] != "/bin/sh" || strings.Contains(e.args[2], "$(id)") || !strings.Contains(e.args[2], "npm ci --omit=dev") {
					t.Errorf("npm args %q: want a constant script", e.args)
				}
			} else if !slices.Equal(e.args, tc.args) {
				t.Errorf("args %q, want %q", e.args, tc.args)
			}
			var cache string
			for _, m := range e.mounts {
				if m.CacheOpt != nil && m.Dest == tc.cache {
					cache = m.CacheOpt.ID
				}
			}
			var ca bool
			for _, m := range e.mounts {
				ca = ca || (m.Dest == "/pei-ca" && m.Readonly)
			}
			if !ca {
				t.Errorf("no read-only mount of the trusted certificates at /pei-ca")
			}
			if cache != CacheID("alice", tc.cache) || cache == CacheID("bob", tc.cache) {
				t.Errorf("cache mount %q at %s, want alice's own %q", cache, tc.cache, CacheID("alice", tc.cache))
			}
		})
	}
}
