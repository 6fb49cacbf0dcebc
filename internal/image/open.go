package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pei-dev/pei/internal/engine"
)

// OpenOptions say how to reach images.
type OpenOptions struct {
	Keychain authn.Keychain // registry credentials; nil means anonymous
	Platform v1.Platform    // taken from indexes
	TmpDir   string         // for copies out of the engine and unpacked tarballs
}

// Open finds the image src names:
//
//   - oci-layout://DIR[:TAG] or an existing directory: an OCI image layout;
//   - an existing file: a docker-archive (docker save) or OCI layout tarball;
//   - docker://NAME: an image in the Docker engine;
//   - registry://REF: an image in a registry;
//   - any other NAME: the engine's, else a registry's.
//
// done removes what Open copied; call it when the image is no longer read.
func Open(ctx context.Context, src string, o OpenOptions) (img v1.Image, done func(), err error) {
	done = func() {}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Platform.OS == "" {
		o.Platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	if rest, ok := strings.CutPrefix(src, "oci-layout://"); ok {
		dir, tag := rest, ""
		if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
			dir, tag = rest[:i], rest[i+1:]
		}
		img, err := FromLayout(dir, dir, tag, "", o.Platform)
		return img, done, err
	}
	if rest, ok := strings.CutPrefix(src, "docker://"); ok {
		return FromEngine(ctx, rest, o.TmpDir)
	}
	if rest, ok := strings.CutPrefix(src, "registry://"); ok {
		img, err := fromRegistry(ctx, rest, o)
		return img, done, err
	}
	if st, err := os.Stat(src); err == nil {
		if st.IsDir() {
			img, err := FromLayout(src, src, "", "", o.Platform)
			return img, done, err
		}
		return fromTarball(src, o)
	}
	if _, ok := engine.Inspect(ctx, src); ok {
		return FromEngine(ctx, src, o.TmpDir)
	}
	img, rerr := fromRegistry(ctx, src, o)
	if rerr != nil {
		return nil, done, fmt.Errorf("%s is not a file, a directory, nor an image in the Docker engine, and no registry has it: %w", src, rerr)
	}
	return img, done, nil
}

func fromRegistry(ctx context.Context, ref string, o OpenOptions) (v1.Image, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	desc, err := remote.Get(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(o.Keychain))
	if err != nil {
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		return ForPlatform(idx, o.Platform, ref)
	}
	return desc.Image()
}

// FromEngine copies an image out of the Docker engine ('docker save') into
// a temporary file in tmpDir ("" for the system's), read as plain tar
// layers; done removes the file.
func FromEngine(ctx context.Context, ref, tmpDir string) (v1.Image, func(), error) {
	f, err := os.CreateTemp(tmpDir, ".pei-save-*.tar")
	if err != nil {
		return nil, func() {}, err
	}
	f.Close()
	done := func() { os.Remove(f.Name()) }
	if out, err := exec.CommandContext(ctx, "docker", "save", "-o", f.Name(), ref).CombinedOutput(); err != nil {
		done()
		return nil, func() {}, fmt.Errorf("docker save %s: %v: %s", ref, err, strings.TrimSpace(string(out)))
	}
	var tag *name.Tag
	if t, err := name.NewTag(ref); err == nil {
		tag = &t
	}
	img, err := dockerArchive(f.Name(), tag)
	if err != nil {
		done()
		return nil, func() {}, fmt.Errorf("read %s from docker save: %w", ref, err)
	}
	return img, done, nil
}

// fromTarball reads a docker-archive directly, and an OCI layout tarball by
// unpacking it (go-containerregistry reads layouts from directories).
func fromTarball(path string, o OpenOptions) (v1.Image, func(), error) {
	oci, err := isOCITar(path)
	if err != nil {
		return nil, func() {}, err
	}
	if !oci {
		img, err := dockerArchive(path, nil)
		if err != nil {
			return nil, func() {}, fmt.Errorf("%s: %w", path, err)
		}
		return img, func() {}, nil
	}
	dir, done, err := unpackTemp(path, o.TmpDir)
	if err != nil {
		return nil, func() {}, err
	}
	img, err := FromLayout(dir, path, "", "", o.Platform)
	if err != nil {
		done()
		return nil, func() {}, err
	}
	return img, done, nil
}

// dockerArchive reads a docker-archive (docker save) as an image of plain
// tar layers: go-containerregistry would otherwise gzip every layer to give
// it a digest.
func dockerArchive(path string, tag *name.Tag) (v1.Image, error) {
	img, err := tarball.ImageFromPath(path, tag)
	if err != nil {
		return nil, err
	}
	return Uncompressed(img)
}

func isOCITar(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	docker := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("%s is not a tar archive of an image: %w", path, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "index.json":
			return true, nil
		case "manifest.json":
			docker = true
		}
	}
	if !docker {
		return false, fmt.Errorf("%s has neither index.json (OCI layout) nor manifest.json (docker save)", path)
	}
	return false, nil
}

// unpack extracts a layout tarball's regular files into dir, refusing
// entries that would land outside it.
func unpack(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		rel := filepath.FromSlash(strings.TrimPrefix(h.Name, "./"))
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("entry %q leaves the archive", h.Name)
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		out, err := os.Create(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}

// OpenIndex reads an OCI layout tarball holding an image index (what a
// multi-platform BuildKit export writes). done removes the unpacked copy.
func OpenIndex(path, tmpDir string) (v1.ImageIndex, func(), error) {
	dir, done, err := unpackTemp(path, tmpDir)
	if err != nil {
		return nil, func() {}, err
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		done()
		return nil, func() {}, fmt.Errorf("%s: %w", path, err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		done()
		return nil, func() {}, fmt.Errorf("%s: index.json: %w", path, err)
	}
	// The layout's index.json names the exported index.
	for _, d := range m.Manifests {
		if d.MediaType.IsIndex() {
			idx, err := top.ImageIndex(d.Digest)
			if err != nil {
				done()
				return nil, func() {}, err
			}
			return idx, done, nil
		}
	}
	done()
	return nil, func() {}, fmt.Errorf("%s holds no image index", path)
}

// unpackTemp unpacks a layout tarball into a new temporary directory;
// done removes it.
func unpackTemp(path, tmpDir string) (string, func(), error) {
	dir, err := os.MkdirTemp(tmpDir, "pei-layout-")
	if err != nil {
		return "", func() {}, err
	}
	done := func() { os.RemoveAll(dir) }
	if err := unpack(path, dir); err != nil {
		done()
		return "", func() {}, fmt.Errorf("%s: %w", path, err)
	}
	return dir, done, nil
}
