package recipe

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Entry is what Walk learned of one name in a recipe.
type Entry struct {
	// Type is the tar type flag: tar.TypeReg, TypeDir, TypeSymlink or
	// TypeLink (a second name for an earlier regular file). A directory
	// that only appears as the parent of other entries is TypeDir too.
	Type     byte
	Linkname string // a link's target, as written
	Size     int64
	explicit bool // named by an entry of its own, not only as a parent
}

// Entries are a recipe's names (clean, slash-separated, relative).
type Entries map[string]Entry

// Regular reports whether name is a regular file of the recipe: a file
// entry or a hard link to one, never a symbolic link or a directory.
func (es Entries) Regular(name string) bool {
	e, ok := es[name]
	return ok && (e.Type == tar.TypeReg || e.Type == tar.TypeLink)
}

// Bounds on what the checks themselves cost: Linux's limits on a path and
// on links followed in one lookup, and a budget for resolving every link
// (an archive of many long chained links would otherwise take quadratic
// time to check).
const (
	maxPath      = 4095
	maxLinkHops  = 40
	maxLinkSteps = 1 << 24
	// Bytes of tar headers and padding allowed per entry beyond the
	// entries' own sizes, and after the end of the archive.
	headerAllowance  = 16 << 10
	trailerAllowance = 1 << 20
)

// Walk reads a packed recipe, checking every entry, and calls fn for each
// with its name cleaned (r reads a regular file's content). It stops at
// the first problem. Whether each symbolic link stays inside the recipe
// depends on entries that may come after it, so that is checked once the
// archive has been read: an error then comes after fn has seen every
// entry, and whatever fn made of them must be thrown away.
func Walk(r io.Reader, lim Limits, fn func(hdr *tar.Header, r io.Reader) error) error {
	_, err := walk(r, lim, fn)
	return err
}

// Scan checks a packed recipe as Walk does, without unpacking it, and
// returns its entries.
func Scan(r io.Reader, lim Limits) (Entries, error) {
	return walk(r, lim, func(*tar.Header, io.Reader) error { return nil })
}

func walk(r io.Reader, lim Limits, fn func(hdr *tar.Header, r io.Reader) error) (Entries, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, &Error{Msg: "not a gzip-compressed tar: " + err.Error()}
	}
	// The decompressed stream is bounded too: entries' sizes are counted
	// below, but headers, padding and data after the archive's end cost
	// decompression all the same.
	stream := &capReader{r: gz, left: -1}
	if lim.MaxBytes > 0 && lim.MaxFiles > 0 {
		stream.left = lim.MaxBytes + int64(lim.MaxFiles)*headerAllowance + trailerAllowance
	}
	tr := tar.NewReader(stream)
	es := Entries{}
	var total int64
	files := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return nil, err
			}
			return nil, &Error{Msg: "truncated or corrupt archive: " + err.Error()}
		}
		if err := es.add(hdr); err != nil {
			return nil, err
		}
		files++
		if lim.MaxFiles > 0 && files > lim.MaxFiles {
			return nil, fmt.Errorf("recipe: more than %d files: %w", lim.MaxFiles, ErrTooLarge)
		}
		total += hdr.Size
		if lim.MaxBytes > 0 && total > lim.MaxBytes {
			return nil, fmt.Errorf("recipe: unpacks to more than %d bytes: %w", lim.MaxBytes, ErrTooLarge)
		}
		if hdr.Name == "." {
			continue // the recipe's root, which exists already
		}
		if err := fn(hdr, tr); err != nil {
			return nil, err
		}
	}
	if err := es.checkLinks(); err != nil {
		return nil, err
	}
	// Read the gzip trailer: a cut-off archive fails here. Tar writers pad
	// the end, but not by more than the allowance.
	n, err := io.Copy(io.Discard, io.LimitReader(stream, trailerAllowance+1))
	switch {
	case errors.Is(err, ErrTooLarge):
		return nil, err
	case err != nil:
		return nil, &Error{Msg: "truncated or corrupt archive: " + err.Error()}
	case n > trailerAllowance:
		return nil, &Error{Msg: fmt.Sprintf("more than %d bytes after the end of the archive", trailerAllowance)}
	}
	return es, nil
}

// add checks one header against the entries so far and records it; it
// cleans hdr.Name in place.
func (es Entries) add(hdr *tar.Header) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return &Error{Entry: hdr.Name, Msg: err.Error()}
	}
	hdr.Name = name
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return &Error{Entry: name, Msg: "the recipe's top directory is not a directory entry"}
		}
		return nil
	}
	// Parents must be directories: nothing is written under a link or a
	// file, so a write can never be redirected by what came before.
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		e, ok := es[dir]
		switch {
		case !ok || e.Type == tar.TypeDir:
		case e.Type == tar.TypeSymlink:
			return &Error{Entry: name, Msg: "lies under the symbolic link " + dir}
		default:
			return &Error{Entry: name, Msg: "lies under the file " + dir}
		}
	}
	if old, ok := es[name]; ok {
		// A directory first seen as a parent may get its own entry (and
		// mode) once; any other repeated name is refused, as unpacking it
		// would replace, or write or chmod through, what is there.
		if !(old.Type == tar.TypeDir && !old.explicit && hdr.Typeflag == tar.TypeDir) {
			return &Error{Entry: name, Msg: "duplicate entry: the recipe already has " + describe(old) + " of this name"}
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		target := hdr.Linkname
		switch {
		case target == "":
			return &Error{Entry: name, Msg: "symbolic link with an empty target"}
		case len(target) > maxPath || strings.IndexByte(target, 0) >= 0:
			return &Error{Entry: name, Msg: "symbolic link target is not a usable path"}
		case path.IsAbs(target):
			return &Error{Entry: name, Msg: fmt.Sprintf("symbolic link to the absolute path %s: use a relative link inside the project", target)}
		}
		if t := path.Join(path.Dir(name), target); t == ".." || strings.HasPrefix(t, "../") {
			return &Error{Entry: name, Msg: fmt.Sprintf("symbolic link %s leads out of the project", target)}
		}
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return &Error{Entry: name, Msg: "hard link " + err.Error()}
		}
		// Only a second name for a file already unpacked: never for a
		// link (which would be a second name the checks above do not
		// know), a directory, or a name not yet there.
		if !es.Regular(target) {
			what := "nothing earlier in the recipe"
			if e, ok := es[target]; ok {
				what = describe(e)
			}
			return &Error{Entry: name, Msg: fmt.Sprintf("hard link to %s, which is %s: a hard link must name a regular file that comes before it", target, what)}
		}
		hdr.Linkname = target
	default:
		return &Error{Entry: name, Msg: fmt.Sprintf("entry type %q is not allowed (only files, directories and links)", string(hdr.Typeflag))}
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if _, ok := es[dir]; ok {
			break // its parents were recorded with it
		}
		es[dir] = Entry{Type: tar.TypeDir}
	}
	es[name] = Entry{Type: hdr.Typeflag, Linkname: hdr.Linkname, Size: hdr.Size, explicit: true}
	return nil
}

func describe(e Entry) string {
	switch e.Type {
	case tar.TypeDir:
		return "a directory"
	case tar.TypeSymlink:
		return "a symbolic link"
	}
	return "a file"
}

// checkLinks resolves every symbolic link against the entries, component
// by component as the kernel would once they are unpacked, and refuses one
// that passes above the recipe's top at any step.
func (es Entries) checkLinks() error {
	var links []string
	for name, e := range es {
		if e.Type == tar.TypeSymlink {
			links = append(links, name)
		}
	}
	sort.Strings(links)
	budget := maxLinkSteps
	for _, name := range links {
		if err := es.resolve(name, &budget); err != nil {
			return &Error{Entry: name, Msg: fmt.Sprintf("symbolic link %s %v", es[name].Linkname, err)}
		}
	}
	return nil
}

// resolve follows the link name through the entries. A component that is
// not an entry is taken as a directory, which can only make the check
// stricter than the kernel (which would stop there).
func (es Entries) resolve(name string, budget *int) error {
	var stack []string // resolved components, none a link
	if d := path.Dir(name); d != "." {
		stack = strings.Split(d, "/")
	}
	pending := strings.Split(es[name].Linkname, "/")
	hops := 0
	for len(pending) > 0 {
		if *budget--; *budget < 0 {
			return errors.New("makes the recipe's links too costly to check")
		}
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return errors.New("leads out of the project (through other links)")
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		e, ok := es[strings.Join(stack, "/")]
		if !ok || e.Type != tar.TypeSymlink {
			continue
		}
		if hops++; hops > maxLinkHops {
			return fmt.Errorf("is part of a loop or a chain of more than %d links", maxLinkHops)
		}
		stack = stack[:len(stack)-1]
		if path.IsAbs(e.Linkname) {
			return errors.New("leads to an absolute path (through other links)")
		}
		pending = append(strings.Split(e.Linkname, "/"), pending...)
	}
	return nil
}

func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if len(name) > maxPath || strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name is not a usable path")
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

// capReader fails with ErrTooLarge once more than left bytes are read
// (left < 0 is no bound).
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return c.r.Read(p)
	}
	if c.left == 0 {
		// Only an error if there is more.
		var one [1]byte
		if n, err := c.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("recipe: the archive decompresses to more than its limits allow: %w", ErrTooLarge)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
