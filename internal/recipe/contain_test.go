//go:build linux

package recipe

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The containment oracle. A sandbox is a directory full of canaries (files,
// directories, links to them, a FIFO) with the unpack directory two levels
// down, so that "..", absolute targets and names of canaries all lead
// somewhere that exists. After any archive has been unpacked (or refused):
//
//   - nothing outside the unpack directory changed: the same names, and for
//     each the same type, mode, size, mtime, link count, inode, link target
//     and content (directories' mtimes catch entries made and removed);
//   - nothing outside was read: the FIFO holds the canary secret, and reading
//     a FIFO consumes it, so any read through a link to it shows as missing
//     bytes afterwards (the test holds it open read-write, so an open for
//     reading does not block). No error text carries the secret, which is
//     also the content of every canary file;
//   - what was unpacked stays inside: for every symbolic link unpacked, the
//     kernel resolving it with RESOLVE_BENEATH does not report an escape
//     (EXDEV), whatever exists outside; no unpacked file shares an inode
//     with a canary; and every entry reported is on disk with its type.
type sandbox struct {
	parent, dir string
	secret      []byte
	fifo        *os.File
	before      map[string]state
}

type state struct {
	mode   fs.FileMode
	size   int64
	mtime  time.Time
	nlink  uint64
	ino    uint64
	link   string
	digest [32]byte
}

var past = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	parent := t.TempDir()
	s := &sandbox{parent: parent, dir: filepath.Join(parent, "sandbox", "d"), secret: []byte(fmt.Sprintf("canary-%x", rand.Uint64()))}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(rel string) string { return filepath.Join(parent, rel) }
	must(os.MkdirAll(p("cdir/sub"), 0o755))
	must(os.MkdirAll(s.dir, 0o755))
	for _, f := range []string{"secret", "cdir/f", "sandbox/near"} {
		must(os.WriteFile(p(f), s.secret, 0o640))
	}
	must(os.Symlink("cdir", p("clink")))
	must(os.Symlink(p("secret"), p("cabs")))
	must(os.Symlink("../cdir", p("sandbox/nearlink")))
	must(os.Symlink("../fifo", p("sandbox/fifolink")))
	must(unix.Mkfifo(p("fifo"), 0o644))
	fifo, err := os.OpenFile(p("fifo"), os.O_RDWR|unix.O_NONBLOCK, 0)
	must(err)
	// A reader that drained the FIFO would then block, as the test holds a
	// writer: closing it after a generous minute ends that read (and
	// shows as a drained FIFO) instead of hanging the test.
	watchdog := time.AfterFunc(time.Minute, func() { fifo.Close() })
	t.Cleanup(func() { watchdog.Stop(); fifo.Close() })
	_, err = fifo.Write(s.secret)
	must(err)
	s.fifo = fifo
	// Old times everywhere, so that any write or chmod shows.
	for _, rel := range []string{"secret", "cdir/f", "sandbox/near", "fifo", "cdir/sub", "cdir", "sandbox/d", "sandbox", "."} {
		must(os.Chtimes(p(rel), past, past))
	}
	for _, rel := range []string{"clink", "cabs", "sandbox/nearlink", "sandbox/fifolink"} {
		ts := []unix.Timespec{unix.NsecToTimespec(past.UnixNano()), unix.NsecToTimespec(past.UnixNano())}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p(rel), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	// The unpack directory's own times change; the directory above must not.
	must(os.Chtimes(s.dir, past, past))
	s.before = s.snapshot(t)
	return s
}

// snapshot records everything under parent except the unpack directory's
// contents, following no link.
func (s *sandbox) snapshot(t testing.TB) map[string]state {
	t.Helper()
	out := map[string]state{}
	err := filepath.WalkDir(s.parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rec := state{mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime(), nlink: uint64(st.Nlink), ino: st.Ino}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			rec.link, err = os.Readlink(p)
			if err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rec.digest = sha256.Sum256(data)
		}
		rel, _ := filepath.Rel(s.parent, p)
		if p == s.dir {
			// Its mode and link count may not change; its times and
			// contents are what unpacking makes.
			rec.mtime, rec.size = time.Time{}, 0
			rec.nlink = 0
			out[rel] = rec
			return filepath.SkipDir
		}
		out[rel] = rec
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// check asserts the oracle after one operation that returned err.
func (s *sandbox) check(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil && bytes.Contains([]byte(err.Error()), s.secret) {
		t.Fatalf("%s: the error carries the canary secret: %v", what, err)
	}
	after := s.snapshot(t)
	for rel, b := range s.before {
		a, ok := after[rel]
		switch {
		case !ok:
			t.Errorf("%s: %s outside the unpack directory is gone", what, rel)
		case a != b:
			t.Errorf("%s: %s outside the unpack directory changed: %+v, was %+v", what, rel, a, b)
		}
	}
	for rel := range after {
		if _, ok := s.before[rel]; !ok {
			t.Errorf("%s: %s was made outside the unpack directory", what, rel)
		}
	}
	buf := make([]byte, len(s.secret)+1)
	n, _ := s.fifo.Read(buf)
	if !bytes.Equal(buf[:n], s.secret) {
		t.Errorf("%s: the canary FIFO outside was read (%d of %d bytes left)", what, n, len(s.secret))
	}
	// Put back what was there, and the times that checking changed, for
	// the next operation on this sandbox.
	if _, err := s.fifo.Write(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(s.parent, "fifo"), past, past); err != nil {
		t.Fatal(err)
	}
}

// contained asserts that what was unpacked into dir stays inside it, and
// matches the entries Walk reported.
func (s *sandbox) contained(t testing.TB, what string, es Entries) {
	t.Helper()
	root, err := unix.Open(s.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	canaries := map[uint64]string{}
	for rel, st := range s.before {
		if !st.mode.IsDir() {
			canaries[st.ino] = rel
		}
	}
	seen := map[string]bool{}
	filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == s.dir {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		rel = filepath.ToSlash(rel)
		seen[rel] = true
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Errorf("%s: lstat %s: %v", what, rel, err)
			return nil
		}
		if c, ok := canaries[st.Ino]; ok && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			t.Errorf("%s: unpacked %s is the canary %s outside (a hard link out)", what, rel, c)
		}
		e, ok := es[rel]
		if !ok {
			t.Errorf("%s: %s is on disk but not among the entries", what, rel)
			return nil
		}
		want := map[byte]uint32{tar.TypeReg: unix.S_IFREG, tar.TypeLink: unix.S_IFREG, tar.TypeDir: unix.S_IFDIR, tar.TypeSymlink: unix.S_IFLNK}[e.Type]
		if st.Mode&unix.S_IFMT != want {
			t.Errorf("%s: %s is of type %o on disk, entry type %q", what, rel, st.Mode&unix.S_IFMT, e.Type)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			fd, err := unix.Openat2(root, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
			if errors.Is(err, unix.EXDEV) {
				t.Errorf("%s: the unpacked link %s -> %s resolves outside the unpack directory", what, rel, e.Linkname)
			}
			if err == nil {
				unix.Close(fd)
			}
		}
		return nil
	})
	for name := range es {
		if !seen[name] {
			t.Errorf("%s: entry %s is not on disk", what, name)
		}
	}
}

// spec builds an archive from lines "TYPE NAME [TARGET|MODE]": F file
// (content = the name), D directory, L symbolic link, H hard link, C a
// character device; $P in a target is the sandbox's top. Malformed lines
// are skipped, so any text is an archive (for the fuzzer).
func specArchive(spec, parent string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, line := range strings.Split(spec, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		hdr := &tar.Header{Name: strings.ReplaceAll(f[1], "$P", parent), Mode: 0o644, ModTime: past, Format: tar.FormatPAX}
		arg := ""
		if len(f) > 2 {
			arg = strings.ReplaceAll(f[2], "$P", parent)
		}
		body := ""
		switch f[0] {
		case "F":
			hdr.Typeflag, body = tar.TypeReg, f[1]
		case "D":
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		case "L":
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, arg
		case "H":
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, arg
		case "C":
			hdr.Typeflag = tar.TypeChar
		default:
			continue
		}
		if (f[0] == "F" || f[0] == "D") && arg != "" {
			if m, err := strconv.ParseUint(arg, 8, 32); err == nil {
				hdr.Mode = int64(m)
			}
		}
		hdr.Size = int64(len(body))
		if tw.WriteHeader(hdr) != nil {
			continue
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// containment runs the worker's unpacking (Extract) and the server's
// (Unpack for a pei project, Scan for a Dockerfile) on one archive, each
// unpacking in a fresh sandbox, and asserts the oracle. It returns whether the archive was accepted.
func containment(t testing.TB, spec []byte) bool {
	lim := Limits{MaxBytes: 1 << 20, MaxFiles: 1000}
	archiveFor := func(s *sandbox) []byte {
		if bytes.HasPrefix(spec, []byte{0x1f, 0x8b}) {
			return spec
		}
		return specArchive(string(spec), s.parent)
	}
	s := newSandbox(t)
	err := Extract(bytes.NewReader(archiveFor(s)), s.dir, lim)
	s.check(t, "Extract", err)
	if err == nil {
		es, serr := Scan(bytes.NewReader(archiveFor(s)), lim)
		if serr != nil {
			t.Fatalf("Extract accepted what Scan refuses: %v", serr)
		}
		s.contained(t, "Extract", es)
	}
	s2 := newSandbox(t)
	es, err2 := Unpack(bytes.NewReader(archiveFor(s2)), s2.dir, lim)
	s2.check(t, "Unpack", err2)
	if (err == nil) != (err2 == nil) {
		t.Fatalf("Extract and Unpack disagree: %v / %v", err, err2)
	}
	if err2 == nil {
		s2.contained(t, "Unpack", es)
	}
	// Scan touches no file system: the first sandbox's oracle covers it.
	_, err3 := Scan(bytes.NewReader(archiveFor(s)), lim)
	s.check(t, "Scan", err3)
	if (err == nil) != (err3 == nil) {
		t.Fatalf("Extract and Scan disagree: %v / %v", err, err3)
	}
	return err == nil
}

// attacks are the archives that broke out of the old unpacker, and the
// honest shapes next to them.
var attacks = []struct {
	name, spec string
	ok         bool
}{
	{"chained links lead out", "L a .\nL b a/..", false},
	{"write through a chained link", "L a .\nL b a/..\nF b/pwned", false},
	{"chain to a canary beside", "L a .\nL b a/../near", false},
	{"chain through a directory", "D x\nL x/l ../a/..\nL a .", false},
	{"hard link to a symbolic link, written through", "L a .\nL s a/..\nH h s\nF h/pwned", false},
	{"hard link to a symbolic link", "L s sub\nH h s", false},
	{"directory entry reusing a link's name (chmod through)", "L a .\nL s a/..\nD s 0777", false},
	{"directory entry reusing a link's name inside", "D sub\nL s sub\nD s 0777", false},
	{"file under a symlinked dir, depth 1", "L a .\nL s a/..\nF s/x", false},
	{"file under a symlinked dir, depth 2", "L a .\nD x\nL x/s ../a/..\nF x/s/x", false},
	{"file under a symlinked dir, depth 3", "L a .\nD x\nD x/y\nL x/y/s ../../a/..\nF x/y/s/x", false},
	{"file under an inside link", "D sub\nL s sub\nF s/x", false},
	{"duplicate file", "F a\nF a", false},
	{"file then link of one name", "F a\nL a b", false},
	{"link then file of one name", "L a b\nF a", false},
	{"duplicate directory", "D a\nD a", false},
	{"link then directory of one name", "L a b\nD a", false},
	{"file under a file", "F a\nF a/b", false},
	{"hard link outside", "H h ../near", false},
	{"hard link absolute", "H h $P/secret", false},
	{"hard link to what comes later", "H h f\nF f", false},
	{"hard link to a directory", "D d\nH h d", false},
	{"hard link to nothing", "H h nothing", false},
	{"absolute link to a canary", "L user_config.yml $P/secret", false},
	{"relative link to a canary", "L user_config.yml ../../secret", false},
	{"link to the FIFO", "L f ../../fifo", false},
	{"link loop", "L a b\nL b a", false},
	{"device", "C dev", false},
	{"dot-dot name", "F a/../../x", false},
	{"absolute name", "F $P/x", false},

	{"honest tree", "D a\nF a/f\nL a/l f\nL top a/l\nH h a/f\nD a/b 0700\nF a/b/g 0755", true},
	{"honest links to directories", "D v1\nF v1/bin\nL current v1\nL bin current/bin\nD x\nL x/up ../v1", true},
	{"dangling link inside", "L dangling nowhere/else", true},
	{"parent made before its entry", "F a/b/c\nD a 0750\nD a/b", true},
	{"root entry", "D .\nF f", true},
}

func TestContainmentKnownAttacks(t *testing.T) {
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			if got := containment(t, []byte(tc.spec)); got != tc.ok {
				t.Fatalf("accepted = %v, want %v", got, tc.ok)
			}
		})
	}
}

// TestContainmentProperty unpacks random archives of files, directories,
// and symbolic and hard links (relative, absolute, chained, dangling, to
// directories and files, reusing names, to canaries outside) and asserts
// the oracle for each. PEI_RECIPE_SEED replays a run.
func TestContainmentProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PEI_RECIPE_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (PEI_RECIPE_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	n := 300
	if testing.Short() {
		n = 50
	}
	accepted := 0
	for i := 0; i < n; i++ {
		spec := randomSpec(rng)
		ok := false
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			ok = containment(t, []byte(spec))
			if t.Failed() {
				t.Logf("archive:\n%s", spec)
			}
		})
		if ok {
			accepted++
		}
	}
	// The generator must reach unpacking, not only the checks.
	if accepted < n/10 {
		t.Fatalf("only %d of %d random archives were accepted: the generator no longer exercises unpacking", accepted, n)
	}
	t.Logf("%d of %d random archives accepted", accepted, n)
}

var (
	components = []string{"a", "b", "c", "cdir", "secret", "clink", "near", "nearlink", "fifo", "fifolink", "user_config.yml", ".", ".."}
	targets    = []string{".", "..", "../..", "../../..", "a", "b", "a/..", "b/..", "a/b", "../near", "../nearlink", "../../cdir", "../../secret", "../../fifo", "$P/secret", "$P/cdir", "/", "nowhere", "c/../.."}
)

func randomSpec(rng *rand.Rand) string {
	name := func() string {
		parts := make([]string, 1+rng.IntN(3))
		for i := range parts {
			// ".." rarely: names with it are refused outright.
			if c := components[rng.IntN(len(components))]; c != ".." || rng.IntN(4) == 0 {
				parts[i] = c
			} else {
				parts[i] = "a"
			}
		}
		return strings.Join(parts, "/")
	}
	var lines []string
	var names []string
	for range 1 + rng.IntN(8) {
		n := name()
		// Names already used come back, to reuse and to link to.
		if len(names) > 0 && rng.IntN(4) == 0 {
			n = names[rng.IntN(len(names))]
		}
		target := targets[rng.IntN(len(targets))]
		if len(names) > 0 && rng.IntN(2) == 0 {
			target = names[rng.IntN(len(names))]
		}
		switch k := rng.IntN(10); {
		case k < 3:
			lines = append(lines, "F "+n)
		case k < 5:
			lines = append(lines, fmt.Sprintf("D %s %o", n, []int{0o755, 0o777, 0o700}[rng.IntN(3)]))
		case k < 8:
			lines = append(lines, "L "+n+" "+target)
		default:
			lines = append(lines, "H "+n+" "+target)
		}
		names = append(names, n)
	}
	return strings.Join(lines, "\n")
}

// FuzzExtract runs the containment oracle over archives the fuzzer makes:
// an input starting with gzip's magic is taken as a packed recipe as is,
// any other as the text form specArchive reads.
func FuzzExtract(f *testing.F) {
	for _, a := range attacks {
		f.Add([]byte(a.spec))
	}
	f.Add(specArchive("L a .\nL b a/..\nF b/pwned", "/nonexistent"))
	f.Add(specArchive("D a\nF a/f\nL a/l f", "/nonexistent"))
	f.Fuzz(func(t *testing.T, data []byte) {
		containment(t, data)
	})
}

// TestStreamBounds: what is not an entry costs decompression too, so data
// after the archive's end and the decompressed stream as a whole are
// bounded, with the honest archive beside them accepted.
func TestStreamBounds(t *testing.T) {
	withTrailer := func(n int) []byte {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
		tw.Write([]byte("x"))
		tw.Close()
		gz.Write(make([]byte, n))
		gz.Close()
		return buf.Bytes()
	}
	// Entries of one byte with 900 KiB of PAX records each.
	bigHeaders := func(n int) []byte {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for i := range n {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprint("f", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1,
				PAXRecords: map[string]string{"comment": strings.Repeat("x", 900<<10)}})
			tw.Write([]byte("x"))
		}
		tw.Close()
		gz.Close()
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name   string
		data   []byte
		lim    Limits
		want   string
		tooBig bool
	}{
		{"tar's own padding", withTrailer(10240), Limits{MaxBytes: 10, MaxFiles: 1}, "", false},
		{"a long trailer, unbounded limits", withTrailer(2 << 20), Limits{}, "bytes after the end of the archive", false},
		{"big headers, over the stream bound", bigHeaders(2), Limits{MaxBytes: 10, MaxFiles: 2}, "decompresses to more than its limits allow", true},
		{"big headers, unbounded limits", bigHeaders(2), Limits{}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Scan(bytes.NewReader(tc.data), tc.lim)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
			if errors.Is(err, ErrTooLarge) != tc.tooBig {
				t.Errorf("errors.Is(err, ErrTooLarge) = %v, want %v", !tc.tooBig, tc.tooBig)
			}
		})
	}
}
