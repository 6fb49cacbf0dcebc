// Package recipe packs a build recipe (a pei project, or a Dockerfile with
// its context) into the gzip-compressed tar pei submit uploads and pei
// serve stores, and checks and unpacks one safely: no absolute paths, no
// "..", no links leading out, no devices, bounded size.
package recipe

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
)

// MediaType is the media type of a packed recipe (the layer of a recipe
// artifact, the body of a submission).
const MediaType = "application/vnd.pei.recipe.v1.tar+gzip"

// Limits bound an unpacked recipe.
type Limits struct {
	MaxBytes int64 // total size of the files
	MaxFiles int
}

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

// Walk reads a packed recipe, checking every entry, and calls fn for each
// (r reads a regular file's content). It stops at the first problem.
func Walk(r io.Reader, lim Limits, fn func(hdr *tar.Header, r io.Reader) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return &Error{Msg: "not a gzip-compressed tar: " + err.Error()}
	}
	tr := tar.NewReader(gz)
	var total int64
	files := 0
	links := map[string]bool{} // symlinks seen, which no later entry may pass through
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &Error{Msg: "truncated or corrupt archive: " + err.Error()}
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return &Error{Entry: hdr.Name, Msg: err.Error()}
		}
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if links[dir] {
				return &Error{Entry: hdr.Name, Msg: "lies under the symbolic link " + dir}
			}
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		case tar.TypeSymlink:
			target := hdr.Linkname
			if path.IsAbs(target) {
				return &Error{Entry: hdr.Name, Msg: fmt.Sprintf("symbolic link to the absolute path %s: use a relative link inside the project", target)}
			}
			if t := path.Join(path.Dir(name), target); t == ".." || strings.HasPrefix(t, "../") {
				return &Error{Entry: hdr.Name, Msg: fmt.Sprintf("symbolic link %s leads out of the project", target)}
			}
			links[name] = true
		case tar.TypeLink:
			if _, err := cleanName(hdr.Linkname); err != nil {
				return &Error{Entry: hdr.Name, Msg: "hard link " + err.Error()}
			}
		default:
			return &Error{Entry: hdr.Name, Msg: fmt.Sprintf("entry type %q is not allowed (only files, directories and links)", string(hdr.Typeflag))}
		}
		files++
		if lim.MaxFiles > 0 && files > lim.MaxFiles {
			return fmt.Errorf("recipe: more than %d files: %w", lim.MaxFiles, ErrTooLarge)
		}
		total += hdr.Size
		if lim.MaxBytes > 0 && total > lim.MaxBytes {
			return fmt.Errorf("recipe: unpacks to more than %d bytes: %w", lim.MaxBytes, ErrTooLarge)
		}
		hdr.Name = name
		if err := fn(hdr, tr); err != nil {
			return err
		}
	}
	// Read the gzip trailer: a cut-off archive fails here.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return &Error{Msg: "truncated or corrupt archive: " + err.Error()}
	}
	return nil
}

func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if path.IsAbs(name) || strings.HasPrefix(name, "\\") {
		return "", errors.New("absolute path: entries must be relative to the project")
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("path leads out of the project (..)")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", errors.New("path contains .., which is not allowed")
		}
	}
	return c, nil
}

// Extract unpacks a packed recipe into dir (which must exist and be empty),
// checking it as Walk does. It never follows a link while writing.
func Extract(r io.Reader, dir string, lim Limits) error {
	return Walk(r, lim, func(hdr *tar.Header, r io.Reader) error {
		if hdr.Name == "." {
			return nil
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(hdr.Mode) & 0o777
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, mode|0o700)
		case tar.TypeSymlink:
			return os.Symlink(hdr.Linkname, target)
		case tar.TypeLink:
			return os.Link(filepath.Join(dir, filepath.FromSlash(path.Clean(hdr.Linkname))), target)
		}
		// O_EXCL: a duplicate entry cannot replace a link with a file
		// written through it.
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o600)
		if err != nil {
			return &Error{Entry: hdr.Name, Msg: err.Error()}
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return &Error{Entry: hdr.Name, Msg: "truncated or corrupt archive: " + err.Error()}
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Chtimes(target, hdr.ModTime, hdr.ModTime)
	})
}
