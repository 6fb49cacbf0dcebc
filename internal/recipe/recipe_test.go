package recipe

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPackExtractRoundTrip(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "installation", "stage-1"), 0o755))
	must(os.WriteFile(filepath.Join(src, "user_config.yml"), []byte("stage_1: {}\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "installation", "stage-1", "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.Symlink("stage-1/run.sh", filepath.Join(src, "installation", "link.sh")))
	must(os.MkdirAll(filepath.Join(src, ".git"), 0o755))
	must(os.WriteFile(filepath.Join(src, ".git", "HEAD"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(src, "big.log"), []byte("x"), 0o644))
	var buf bytes.Buffer
	must(Pack(src, []string{"*.log"}, &buf))
	dst := t.TempDir()
	must(Extract(bytes.NewReader(buf.Bytes()), dst, Limits{MaxBytes: 1 << 20, MaxFiles: 100}))
	got, _ := os.ReadFile(filepath.Join(dst, "installation", "stage-1", "run.sh"))
	if string(got) != "#!/bin/sh\necho hi\n" {
		t.Fatalf("run.sh = %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(dst, "installation", "stage-1", "run.sh")); fi.Mode()&0o111 == 0 {
		t.Fatal("execute bit lost")
	}
	if l, _ := os.Readlink(filepath.Join(dst, "installation", "link.sh")); l != "stage-1/run.sh" {
		t.Fatalf("link = %q", l)
	}
	for _, gone := range []string{".git", "big.log"} {
		if _, err := os.Stat(filepath.Join(dst, gone)); err == nil {
			t.Errorf("%s was packed", gone)
		}
	}
	// Packing is deterministic: same tree, same bytes.
	var again bytes.Buffer
	must(Pack(src, []string{"*.log"}, &again))
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two packs of one tree differ")
	}
}

type entry struct {
	name, link string
	typ        byte
	body       string
}

func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if e.typ == 0 {
			e.typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestHostileArchives(t *testing.T) {
	good := archive(t, entry{name: "Dockerfile", body: "FROM scratch\n"})
	for _, tc := range []struct {
		name string
		data []byte
		lim  Limits
		want string
	}{
		{"not gzip", []byte("hello"), Limits{}, "not a gzip-compressed tar"},
		{"truncated", good[:len(good)/2], Limits{}, "truncated or corrupt"},
		{"dot-dot", archive(t, entry{name: "a/../../x", body: "x"}), Limits{}, "leads out of the project"},
		{"dot-dot inside", archive(t, entry{name: "a/../b", body: "x"}), Limits{}, "contains .."},
		{"absolute", archive(t, entry{name: "/etc/passwd", body: "x"}), Limits{}, "absolute path"},
		{"absolute symlink", archive(t, entry{name: "l", link: "/etc", typ: tar.TypeSymlink}), Limits{}, "absolute path /etc"},
		{"escaping symlink", archive(t, entry{name: "a/l", link: "../../x", typ: tar.TypeSymlink}), Limits{}, "leads out of the project"},
		{"write through a symlink", archive(t, entry{name: "l", link: "sub", typ: tar.TypeSymlink}, entry{name: "l/x", body: "x"}), Limits{}, "under the symbolic link l"},
		{"hard link out", archive(t, entry{name: "h", link: "../x", typ: tar.TypeLink}), Limits{}, "hard link"},
		{"device", archive(t, entry{name: "dev", typ: tar.TypeChar}), Limits{}, "not allowed"},
		{"too many bytes", archive(t, entry{name: "a", body: strings.Repeat("x", 100)}), Limits{MaxBytes: 50}, "more than 50 bytes"},
		{"too many files", archive(t, entry{name: "a"}, entry{name: "b"}, entry{name: "c"}), Limits{MaxFiles: 2}, "more than 2 files"},
		{"duplicate entry replacing a file", archive(t, entry{name: "a", body: "1"}, entry{name: "a", body: "2"}), Limits{}, "duplicate entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			err := Extract(bytes.NewReader(tc.data), dst, tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
			if strings.Contains(tc.want, "more than") && !errors.Is(err, ErrTooLarge) {
				t.Errorf("size error does not wrap ErrTooLarge: %v", err)
			}
			// Nothing landed outside dst.
			if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "x")); err == nil {
				t.Fatal("a file was written outside the target")
			}
		})
	}
}
