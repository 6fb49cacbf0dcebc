package recipe

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
)

// Extract unpacks a packed recipe into dir (which must exist and be
// empty), checking it as Walk does. On an error dir is emptied again, so no
// link of a refused recipe is left for anything to follow.
func Extract(r io.Reader, dir string, lim Limits) error {
	_, err := Unpack(r, dir, lim)
	return err
}

// Unpack is Extract, returning the recipe's entries.
func Unpack(r io.Reader, dir string, lim Limits) (Entries, error) {
	u, err := NewUnpacker(dir)
	if err != nil {
		return nil, err
	}
	defer u.Close()
	es, err := walk(r, lim, func(hdr *tar.Header, r io.Reader) error { return u.Write(hdr, r) })
	if err != nil {
		// Some checks (links resolved through later entries) end only at
		// the archive's end, after the entries are written.
		if rerr := empty(dir); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		return nil, err
	}
	return es, nil
}

// empty removes what dir holds; os.RemoveAll follows no link.
func empty(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}
