package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds the size of a config file; a larger one is refused
// before it is read.
const MaxFileSize = 1 << 20

// DefaultFile is the config's name inside a project.
const DefaultFile = "user_config.yml"

// LoadOptions say where a config is and how to expand its variables.
type LoadOptions struct {
	// ProjectDir is the project root; installation/ lives under it.
	ProjectDir string
	// FS, when set, is the project instead of ProjectDir: the config and
	// every file it names are read through it and nothing else is read, so
	// a project that may be hostile (a recipe pei serve checks or a worker
	// builds) is read through an fs.FS that cannot leave it (os.Root's).
	// The config itself must then be a regular file, not a link.
	FS fs.FS
	// File is the config path; relative paths are taken from ProjectDir.
	// Empty means ProjectDir/user_config.yml. With FS it is a path in FS.
	File string
	// Lookup expands ${VAR}; nil means no variables are set.
	Lookup LookupFunc
	// Catalog is pei serve's catalog for the build's namespace (its own
	// items, then the shared catalog's): a compose layer's catalog: NAME
	// takes an item from it when the project's own catalog has no NAME.
	// Its images are registry references.
	Catalog []CatalogItem
}

// Load reads, decodes and validates a config. A config with problems gives
// Errors (matching ErrInvalid) listing all of them, sorted by position.
// The returned Config has no defaults applied; see WithDefaults.
func Load(opts LoadOptions) (Config, error) {
	if opts.FS != nil {
		return loadFS(opts)
	}
	path := opts.File
	if path == "" {
		path = DefaultFile
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(opts.ProjectDir, path)
	}
	display := displayPath(path)
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", display, err)
	}
	if st.Size() > MaxFileSize {
		return Config{}, Errors{{File: display, Msg: fmt.Sprintf("the file is %d bytes; a config may be at most %d bytes", st.Size(), MaxFileSize)}}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", display, err)
	}
	if len(data) > MaxFileSize {
		return Config{}, Errors{{File: display, Msg: fmt.Sprintf("the file is larger than %d bytes", MaxFileSize)}}
	}
	return parseSource(data, display, source{dir: opts.ProjectDir, catalog: opts.Catalog}, opts.Lookup)
}

// displayPath shows path relative to the working directory when it is
// below it, as compilers do.
func displayPath(path string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && filepath.IsLocal(rel) {
			return rel
		}
	}
	return path
}

// Parse decodes and validates config text. file names it in messages;
// projectDir is where referenced files are looked up ("" skips file checks).
func Parse(data []byte, file, projectDir string, lookup LookupFunc) (Config, error) {
	return parseSource(data, file, source{dir: projectDir}, lookup)
}

// source is where a config's files are (a directory, or an fs.FS) and
// the server's catalog it may take items from.
type source struct {
	dir     string
	fsys    fs.FS
	catalog []CatalogItem
}

func parseSource(data []byte, file string, src source, lookup LookupFunc) (Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, Errors{{File: file, Line: 1, Col: 1, Msg: "the config is empty; run 'pei create' for a commented example"}}
		}
		return Config{}, Errors{syntaxError(file, data, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Config{}, Errors{{File: file, Line: extra.Line, Col: extra.Column, Msg: "a config holds one YAML document; remove the second '---' document"}}
	}
	d := &decoder{file: file, lookup: lookup, pos: map[string]Pos{}}
	var c Config
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if isNull(doc) {
		return Config{}, Errors{{File: file, Line: 1, Col: 1, Msg: "the config is empty; run 'pei create' for a commented example"}}
	}
	d.decode(doc, reflect.ValueOf(&c).Elem(), "", false)
	c.File = file
	c.Positions = d.pos
	if !d.halted {
		v := &validator{c: &c, projectDir: src.dir, fsys: src.fsys, served: src.catalog, failed: d.failed, lookup: lookup}
		v.run()
		d.errs = append(d.errs, v.errs...)
	}
	if len(d.errs) > 0 {
		return Config{}, d.errs.sorted()
	}
	return c, nil
}
