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
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
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
	links := linkSet{target: map[string]string{}, via: map[string]map[string]bool{}}
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
			if _, ok := links.target[dir]; ok {
				return &Error{Entry: hdr.Name, Msg: "lies under the symbolic link " + dir}
			}
		}
		if _, ok := links.target[name]; ok {
			return &Error{Entry: hdr.Name, Msg: "is already a symbolic link of the archive"}
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
			if err := links.add(name, target); err != nil {
				return &Error{Entry: hdr.Name, Msg: err.Error()}
			}
		case tar.TypeLink:
			target, err := cleanName(hdr.Linkname)
			if err != nil {
				return &Error{Entry: hdr.Name, Msg: "hard link " + err.Error()}
			}
			// A hard link to a symlink is a symlink elsewhere, its relative
			// target unchecked from there.
			for p := target; p != "."; p = path.Dir(p) {
				if _, ok := links.target[p]; ok {
					return &Error{Entry: hdr.Name, Msg: fmt.Sprintf("hard link to %s, which is or lies under the symbolic link %s", hdr.Linkname, p)}
				}
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

// linkSet is the symlinks of an archive so far (name -> target), which no
// later entry may pass through, and for each path the links whose targets
// go through it: a link made there later changes where they lead.
type linkSet struct {
	target map[string]string
	via    map[string]map[string]bool
	steps  int // path components looked at so far, bounded
}

// maxLinkSteps bounds the work of following an archive's links (a hostile
// archive could make each of many links a long chain).
const maxLinkSteps = 1 << 24

// add checks a new symlink and the earlier links whose targets go through
// its name, then records it.
func (l *linkSet) add(name, target string) error {
	if err := l.stayInside(name, target); err != nil {
		return fmt.Errorf("symbolic link %s %w", target, err)
	}
	l.target[name] = target
	for _, e := range slices.Sorted(maps.Keys(l.via[name])) {
		if err := l.stayInside(e, l.target[e]); err != nil {
			return fmt.Errorf("makes the earlier symbolic link %s (to %s) lead elsewhere: it %w", e, l.target[e], err)
		}
	}
	return nil
}

// stayInside follows the target of the symlink name through the archive's
// symlinks, as the kernel will, and says if it leads out of the project.
// Checking the target on paper is not enough: ".." out of a symlink goes
// to the parent of where the link points, not to the parent on paper.
func (l *linkSet) stayInside(name, target string) error {
	var cur []string
	if dir := path.Dir(name); dir != "." {
		cur = strings.Split(dir, "/")
	}
	todo := strings.Split(target, "/")
	for hops := 0; len(todo) > 0; {
		if l.steps++; l.steps > maxLinkSteps {
			return errors.New("is one of too many or too long chains of symbolic links")
		}
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return errors.New("leads out of the project (through the archive's other links)")
			}
			cur = cur[:len(cur)-1]
			continue
		}
		cur = append(cur, part)
		p := strings.Join(cur, "/")
		if l.via[p] == nil {
			l.via[p] = map[string]bool{}
		}
		l.via[p][name] = true
		if t, ok := l.target[p]; ok {
			if hops++; hops > 40 {
				return errors.New("is a loop of symbolic links")
			}
			cur = cur[:len(cur)-1]
			todo = append(strings.Split(t, "/"), todo...)
		}
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
// checking it as Walk does. It never follows a link while writing, and
// writes through an os.Root, so nothing lands outside dir even if a check
// had let a link through.
func Extract(r io.Reader, dir string, lim Limits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("recipe: %w", err)
	}
	defer root.Close()
	return Walk(r, lim, func(hdr *tar.Header, r io.Reader) error {
		if hdr.Name == "." {
			return nil
		}
		target := filepath.FromSlash(hdr.Name)
		if err := root.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return &Error{Entry: hdr.Name, Msg: err.Error()}
		}
		mode := os.FileMode(hdr.Mode) & 0o777
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(target, 0o755); err != nil {
				return &Error{Entry: hdr.Name, Msg: err.Error()}
			}
			return root.Chmod(target, mode|0o700)
		case tar.TypeSymlink:
			return root.Symlink(hdr.Linkname, target)
		case tar.TypeLink:
			return root.Link(filepath.FromSlash(path.Clean(hdr.Linkname)), target)
		}
		// O_EXCL: a duplicate entry cannot replace a link with a file
		// written through it.
		f, err := root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o600)
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
		return root.Chtimes(target, hdr.ModTime, hdr.ModTime)
	})
}
