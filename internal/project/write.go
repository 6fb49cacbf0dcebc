package project

import (
	"fmt"
	"os"
	"path/filepath"
)

type fileOut struct {
	path string // slash path relative to the project
	data []byte
	mode os.FileMode
}

// writeAll writes files under dir, each through a temporary file and a
// rename, so that a reader never sees a half-written file. Files whose
// content and mode are already right are left alone (their mtimes too).
func writeAll(dir string, files []fileOut) error {
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f.path))
		if old, err := os.ReadFile(dst); err == nil && string(old) == string(f.data) {
			if st, err := os.Stat(dst); err == nil && st.Mode().Perm() == f.mode {
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(dst), ".pei-*")
		if err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		_, werr := tmp.Write(f.data)
		cerr := tmp.Close()
		if err := firstErr(werr, cerr, os.Chmod(tmp.Name(), f.mode)); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
