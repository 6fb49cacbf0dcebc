package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// loadFS reads the config from opts.FS. Errors name the file by its path
// in the project, never a path or a byte from outside it.
func loadFS(opts LoadOptions) (Config, error) {
	name := opts.File
	if name == "" {
		name = DefaultFile
	}
	if !fs.ValidPath(name) || name == "." {
		return Config{}, fmt.Errorf("load config %q: give a clean path inside the project", name)
	}
	fail := func(msg string) (Config, error) { return Config{}, Errors{{File: name, Msg: msg}} }
	var fi fs.FileInfo
	var err error
	if lfs, ok := opts.FS.(fs.ReadLinkFS); ok {
		fi, err = lfs.Lstat(name)
	} else {
		fi, err = fs.Stat(opts.FS, name)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail("the project has no " + name)
	case err != nil:
		return fail("cannot read the config: " + pathErrText(err))
	case fi.Mode()&fs.ModeSymlink != 0:
		return fail("is a symbolic link; the config must be a regular file in the project")
	case !fi.Mode().IsRegular():
		return fail("is not a regular file")
	case fi.Size() > MaxFileSize:
		return fail(fmt.Sprintf("the file is %d bytes; a config may be at most %d bytes", fi.Size(), MaxFileSize))
	}
	data, err := readFSFile(opts.FS, name, MaxFileSize)
	if err != nil {
		return fail(err.Error())
	}
	return parseSource(data, name, source{fsys: opts.FS, catalog: opts.Catalog}, opts.Lookup)
}

// readFSFile reads a regular file of at most limit bytes from fsys.
func readFSFile(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, errors.New("cannot read it: " + pathErrText(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, errors.New("cannot read it: " + pathErrText(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("is not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, errors.New("cannot read it: " + pathErrText(err))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("is larger than %d bytes", limit)
	}
	return data, nil
}

// pathErrText is what went wrong, without the path (which the caller
// names the way the user wrote it).
func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// installFileFS is installFile for a project read through an fs.FS: a
// file the config names must be a regular file inside it (the fs.FS
// follows a link only while it stays inside, and os.Root's refuses one
// leading out). Content is read only up to MaxFileSize: only keys need it,
// and a larger file is no key.
func (v *validator) installFileFS(field, rel string) ([]byte, bool) {
	name := path.Join(InstallDir, path.Clean(rel))
	fi, err := fs.Stat(v.fsys, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.errorf(field, "%s does not exist (paths are relative to %s/ in the project)%s", name, InstallDir, caughtEarly(field))
		return nil, false
	case err != nil:
		v.errorf(field, "cannot read %s: %s", name, pathErrText(err))
		return nil, false
	case !fi.Mode().IsRegular():
		v.errorf(field, "%s is not a regular file", name)
		return nil, false
	case fi.Size() > MaxFileSize:
		return nil, true
	}
	data, err := readFSFile(v.fsys, name, MaxFileSize)
	if err != nil {
		v.errorf(field, "%s %v", name, err)
		return nil, false
	}
	return data, true
}

// layoutIndexExists reports whether the OCI layout at rel (full on disk,
// when the project is a directory) has an index.json.
func (v *validator) layoutIndexExists(full, rel string) bool {
	if v.fsys != nil {
		fi, err := fs.Stat(v.fsys, path.Join(path.Clean(rel), "index.json"))
		return err == nil && fi.Mode().IsRegular()
	}
	_, err := os.Stat(filepath.Join(full, "index.json"))
	return err == nil
}

// projectFileExists reports whether the project holds a regular file at
// rel (full on disk, when the project is a directory).
func (v *validator) projectFileExists(full, rel string) bool {
	if v.fsys != nil {
		fi, err := fs.Stat(v.fsys, path.Clean(rel))
		return err == nil && fi.Mode().IsRegular()
	}
	fi, err := os.Stat(full)
	return err == nil && fi.Mode().IsRegular()
}
