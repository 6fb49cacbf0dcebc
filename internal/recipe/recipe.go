// Package recipe packs a build recipe (a pei project, or a Dockerfile with
// its context) into the gzip-compressed tar pei submit uploads and pei
// serve stores, and checks and unpacks one that may be hostile.
//
// Checking needs no file system: Walk reads the tar stream and refuses
// absolute names and "..", devices and other special entries, duplicate
// names, entries under a symbolic link or a file, hard links to anything
// but a regular file that came earlier, and symbolic links that lead out
// of the recipe. A link's target is resolved against the archive's own
// entries, as the kernel would resolve it once unpacked, so a chain of
// links that each look harmless (a -> ., b -> a/..) is caught. Sizes and
// entry counts are bounded (Limits), and so is the decompressed stream.
//
// Unpacking (Unpacker, Extract) is contained by construction, not by the
// checks above: every path is resolved by openat2(2) relative to a
// descriptor of the unpack directory with RESOLVE_BENEATH,
// RESOLVE_NO_SYMLINKS and RESOLVE_NO_MAGICLINKS, so no component of any
// path written is ever a symbolic link, whoever made it. Files are made
// with O_CREAT|O_EXCL|O_NOFOLLOW, directories with mkdirat, links with
// symlinkat and linkat (which never follows the old path's last
// component; its parent is again opened beneath the root without links);
// modes are set with fchmod on a descriptor opened without following
// links, and nothing is ever chmod'ed or written through an entry that
// already exists: a name that exists is a duplicate, and an error naming
// the entry. We chose openat2 over Go's os.Root for writing because
// os.Root follows symbolic links that stay inside the root, and which
// links stay inside depends on entries the archive has not yet shown;
// with no link followed at all, no order of entries can redirect a write.
// Reading a checked and unpacked recipe back (its config, hook scripts,
// keys) goes through os.Root, which is enough there: Walk has proved every
// link inside resolves inside, and os.Root refuses any that would not.
//
// Links that stay inside are kept: a build context may hold them. BuildKit
// reads the context through its local source (github.com/tonistiigi/fsutil),
// which sends a link as a link: it walks with Lstat (filepath.WalkDir), takes
// a link's target with Readlink (mkstat), sends content only for regular
// files (fileCanRequestData), and resolves the Dockerfile's path inside the
// context (FollowLinks); so no link, even one leading out, copies a host file
// into a build. The worker's own readers (config, secrets, OCI layout bases)
// do follow links, which is why Walk refuses any that lead out.
package recipe

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/moby/patternmatcher"
)

// Limits bound an unpacked recipe. Zero is no bound.
type Limits struct {
	MaxBytes int64 // total size of the entries
	MaxFiles int   // entries
}

// DefaultLimits are pei serve's limits, and a worker's when the server
// does not say.
var DefaultLimits = Limits{MaxBytes: 2 << 30, MaxFiles: 200000}

// Error is a problem with a recipe archive, naming the entry.
type Error struct {
	Entry string
	Msg   string
}

func (e *Error) Error() string {
	if e.Entry == "" {
		return "recipe: " + e.Msg
	}
	return fmt.Sprintf("recipe: %s: %s", e.Entry, e.Msg)
}

// ErrTooLarge is wrapped by errors about size limits.
var ErrTooLarge = errors.New("recipe too large")

// Pack writes dir as a gzip-compressed tar to w, in name order with
// timestamps kept. Paths matching exclude (.dockerignore syntax) and .git
// are left out.
func Pack(dir string, exclude []string, w io.Writer) error {
	pm, err := patternmatcher.New(exclude)
	if err != nil {
		return fmt.Errorf("exclude patterns: %w", err)
	}
	var paths []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if rel == ".git" {
			return filepath.SkipDir
		}
		if skip, _ := pm.MatchesOrParentMatches(rel); skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	sort.Strings(paths)
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, rel := range paths {
		full := filepath.Join(dir, filepath.FromSlash(rel))
		fi, err := os.Lstat(full)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(full); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("pack %s: %w", rel, err)
		}
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.Uid, hdr.Gid = 0, 0
		hdr.Format = tar.FormatPAX
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(full)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("pack %s: %w", rel, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}
