package build

import (
	"archive/tar"
	"cmp"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pei-dev/pei/internal/bootstrap"
	"github.com/pei-dev/pei/internal/buildkit"
	"github.com/pei-dev/pei/internal/image"
)

// BaseOptions configure Base.
type BaseOptions struct {
	Ref     string // e.g. debian:bookworm ("" means that)
	Suite   string // "" means the tag of Ref
	Variant string
	Mirror  string
	// Platform is the image's; the zero Platform means the host's.
	Platform v1.Platform
	Load     bool   // also load into the Docker engine
	Tar      string // also write a docker-archive tarball here
	OCI      string // also write an OCI layout tarball here
	Push     string // also push to this registry reference
	// Auth holds the credentials for Push; nil means none.
	Auth *configfile.ConfigFile
	// SourceDateEpoch clamps every timestamp; nil means midnight UTC today.
	SourceDateEpoch *int64
	// StateDir holds the base store ("" means the user's cache dir).
	StateDir string
	Stderr   io.Writer
}

// BaseFlags are pei base's flags as written, and the environment
// (SOURCE_DATE_EPOCH, DOCKER_CONFIG) they are read with.
type BaseFlags struct {
	Ref, Suite, Variant, Mirror, Platform string
	Load                                  bool
	Tar, OCI, Push                        string
	StateDir                              string
	Getenv                                func(string) string
}

// Options reads the flags into BaseOptions.
func (f BaseFlags) Options() (BaseOptions, error) {
	getenv := f.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	o := BaseOptions{Ref: f.Ref, Suite: f.Suite, Variant: f.Variant, Mirror: f.Mirror, Load: f.Load, Tar: f.Tar, OCI: f.OCI, Push: f.Push, StateDir: f.StateDir}
	if f.Platform != "" {
		p, err := buildkit.ParsePlatform(f.Platform, binfmtDir)
		if err != nil {
			return BaseOptions{}, err
		}
		o.Platform = v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
	}
	if v := getenv("SOURCE_DATE_EPOCH"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return BaseOptions{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
		}
		o.SourceDateEpoch = &n
	}
	if f.Push != "" {
		auth, err := image.LoadAuth(getenv("DOCKER_CONFIG"))
		if err != nil {
			return BaseOptions{}, err
		}
		o.Auth = auth
	}
	return o, nil
}

// Base bootstraps a Debian base image into pei's base store, where pei
// build finds it by name without a Docker engine, and returns its digest.
func Base(ctx context.Context, opts BaseOptions) (string, error) {
	if opts.Ref == "" {
		opts.Ref = "debian:bookworm"
	}
	tag, err := name.NewTag(opts.Ref)
	if err != nil {
		return "", fmt.Errorf("base %q: %w", opts.Ref, err)
	}
	if opts.Suite == "" {
		opts.Suite = bootstrap.SuiteOf(opts.Ref)
	}
	epoch := bootstrap.DefaultEpoch(time.Now())
	if opts.SourceDateEpoch != nil {
		epoch = *opts.SourceDateEpoch
	}
	state, err := StateDir(opts.StateDir)
	if err != nil {
		return "", err
	}
	plat := opts.Platform
	img, done, err := bootstrap.Debian(ctx, bootstrap.Options{Suite: opts.Suite, Variant: opts.Variant, Mirror: opts.Mirror, Platform: plat, Epoch: epoch, Stderr: opts.Stderr})
	if err != nil {
		return "", err
	}
	defer done()
	store := buildkit.BaseStore{Dir: filepath.Join(state, "bases")}
	if err := store.Add(opts.Ref, img); err != nil {
		return "", fmt.Errorf("write %s into %s: %w", opts.Ref, store.Dir, err)
	}
	if opts.Tar != "" {
		if err := tarball.WriteToFile(opts.Tar, tag, img); err != nil {
			return "", fmt.Errorf("write %s: %w", opts.Tar, err)
		}
	}
	if opts.OCI != "" {
		if err := writeOCITar(opts.OCI, opts.Ref, img); err != nil {
			return "", fmt.Errorf("write %s: %w", opts.OCI, err)
		}
	}
	if opts.Push != "" {
		if err := pushImage(ctx, opts.Push, img, opts.Auth); err != nil {
			return "", err
		}
	}
	if opts.Load {
		w, wait, err := dockerLoad(ctx)
		if err != nil {
			return "", err
		}
		werr := tarball.Write(tag, img, w)
		w.Close()
		if err := cmp.Or(werr, wait()); err != nil {
			return "", err
		}
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return opts.Ref + "@" + d.String(), nil
}

// writeOCITar writes img as an OCI layout tarball (what docker buildx and
// BuildKit call type=oci), through a temporary file and a rename.
func writeOCITar(dest, ref string, img v1.Image) error {
	dir, err := os.MkdirTemp("", "pei-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{buildkit.RefAnnotation: ref})); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".pei-oci-*")
	if err != nil {
		return err
	}
	tw := tar.NewWriter(tmp)
	werr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name, h.ModTime = filepath.ToSlash(rel), time.Unix(0, 0)
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err := cmp.Or(werr, tw.Close(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// pushImage pushes img to ref with auth (nil: no credentials).
func pushImage(ctx context.Context, ref string, img v1.Image, auth *configfile.ConfigFile) error {
	r, err := image.ParseRef(ref)
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	if auth == nil {
		auth = configfile.New("")
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(image.Keychain(auth))); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}
