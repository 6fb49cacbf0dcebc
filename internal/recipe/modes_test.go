package recipe

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestExtractKeepsModesAndTimes: what a build's context holds is what was
// packed: directory and file permission bits and file modification times
// (COPY in a Dockerfile carries both into the image).
func TestExtractKeepsModesAndTimes(t *testing.T) {
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range []*tar.Header{
		{Name: "private/", Typeflag: tar.TypeDir, Mode: 0o750, ModTime: mtime},
		{Name: "private/run.sh", Typeflag: tar.TypeReg, Mode: 0o750, Size: 3, ModTime: mtime},
		{Name: "open.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3, ModTime: mtime.Add(time.Hour)},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("hi\n"))
		}
	}
	tw.Close()
	gz.Close()
	dst := t.TempDir()
	if err := Extract(bytes.NewReader(buf.Bytes()), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		mtime time.Time // zero: not checked (a directory's changes as files land in it)
	}{
		{"private", os.ModeDir | 0o750, time.Time{}},
		{"private/run.sh", 0o750, mtime},
		{"open.txt", 0o644, mtime.Add(time.Hour)},
	} {
		fi, err := os.Lstat(filepath.Join(dst, filepath.FromSlash(tc.name)))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tc.mode {
			t.Errorf("%s: mode %v, want %v", tc.name, fi.Mode(), tc.mode)
		}
		if !tc.mtime.IsZero() && !fi.ModTime().Equal(tc.mtime) {
			t.Errorf("%s: modified %v, want %v", tc.name, fi.ModTime(), tc.mtime)
		}
	}
}
