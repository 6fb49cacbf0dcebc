package service

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// privateFSName is distribution's filesystem storage driver with private
// modes: the library creates directories 0777 and files 0666 less the
// umask, so under a umask of 0 every local user could read (or write) a
// tenant's blobs. pei serve uses it wherever the filesystem driver is
// configured.
const privateFSName = "pei-filesystem"

func init() {
	factory.Register(privateFSName, privateFSFactory{})
}

type privateFSFactory struct{}

func (privateFSFactory) Create(ctx context.Context, params map[string]any) (storagedriver.StorageDriver, error) {
	d, err := filesystem.FromParameters(params)
	if err != nil {
		return nil, err
	}
	root := "/var/lib/registry" // the filesystem driver's default
	if r, ok := params["rootdirectory"]; ok {
		root = fmt.Sprint(r)
	}
	return &privateFS{StorageDriver: d, root: root}, nil
}

// privateFS makes, before the filesystem driver does, the directories
// (0700) and files (0600) it would create, so they get these modes
// whatever the process's umask; the driver then uses what exists.
type privateFS struct {
	storagedriver.StorageDriver
	root string
}

// full is the file a storage path names, or "" for a path the driver
// will refuse (it checks paths itself).
func (d *privateFS) full(p string) string {
	if !storagedriver.PathRegexp.MatchString(p) || path.Clean(p) != p || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return ""
	}
	return filepath.Join(d.root, filepath.FromSlash(p))
}

// prepare makes the directories up to a path's file (0700) and, when
// file is set, the file itself (0600) if it is not there yet.
func (d *privateFS) prepare(p string, file bool) error {
	full := d.full(p)
	if full == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		return err
	}
	if file {
		if f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			f.Close()
		}
	}
	return nil
}

func (d *privateFS) Writer(ctx context.Context, p string, append bool) (storagedriver.FileWriter, error) {
	if err := d.prepare(p, true); err != nil {
		return nil, err
	}
	return d.StorageDriver.Writer(ctx, p, append)
}

// PutContent writes through the inner driver's own Writer to a temporary
// file of its naming and renames it: the directories are made here, and
// the file's mode set once it is in place (its directory is private, so
// nobody else could open it in between).
func (d *privateFS) PutContent(ctx context.Context, p string, content []byte) error {
	if err := d.prepare(p, false); err != nil {
		return err
	}
	if err := d.StorageDriver.PutContent(ctx, p, content); err != nil {
		return err
	}
	if full := d.full(p); full != "" {
		return os.Chmod(full, 0o600)
	}
	return nil
}

func (d *privateFS) Move(ctx context.Context, src, dst string) error {
	if err := d.prepare(dst, false); err != nil {
		return err
	}
	return d.StorageDriver.Move(ctx, src, dst)
}
