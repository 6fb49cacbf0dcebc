//go:build !linux

package recipe

import (
	"archive/tar"
	"errors"
	"io"
)

// Unpacker writes a recipe's entries under one directory. Containment
// rests on Linux's openat2(2): elsewhere it refuses to work.
type Unpacker struct{}

var errNoOpenat2 = errors.New("recipe: unpacking a recipe needs Linux (openat2)")

// NewUnpacker fails: see Unpacker.
func NewUnpacker(dir string) (*Unpacker, error) { return nil, errNoOpenat2 }

// Write fails: see Unpacker.
func (u *Unpacker) Write(hdr *tar.Header, r io.Reader) error { return errNoOpenat2 }

// Close does nothing.
func (u *Unpacker) Close() error { return nil }
