package service

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// PrepareDataDir makes the data directory, private to the server's user:
// it holds every tenant's blobs, recipes and logs, webhook secrets and
// the signing key, and on a shared host (an HPC login node) other local
// users must read none of it. A new directory is made 0700. One left
// open by an older pei (0755, with a 0644 pei.db) is made 0700 and
// everything under it loses its group and other permissions, saying so on
// log. Files the server makes are created with private modes (0600,
// directories 0700) whatever the umask.
func PrepareDataDir(dir string, log io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	// A link to the directory: the walk below must start at the directory.
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	was := fi.Mode().Perm()
	if was&0o077 == 0 {
		// Private already: nothing below it is reachable by other users,
		// and what the server makes is private by itself.
		return nil
	}
	n := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // chmod would follow it out of the directory
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, perm&^0o077); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("data directory %s was open to other users (mode %04o) and could not be made private: %w", dir, was, err)
	}
	fmt.Fprintf(log, "pei serve: data directory %s was open to other users (mode %04o): made it 0700 and took group and other permissions off %d entries in it\n", dir, was, n)
	return nil
}
