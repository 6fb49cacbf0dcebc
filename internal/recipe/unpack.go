package recipe

import (
	"archive/tar"
	"io"
)

// Extract unpacks a packed recipe into dir (which must exist and be
// empty), checking it as Walk does. On an error, dir holds part of the
// recipe and must be removed.
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
	return walk(r, lim, func(hdr *tar.Header, r io.Reader) error { return u.Write(hdr, r) })
}
