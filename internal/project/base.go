package project

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pei-dev/pei/internal/bootstrap"
	"github.com/pei-dev/pei/internal/buildkit"
)

// BaseOptions configure Base.
type BaseOptions struct {
	Ref     string // e.g. debian:bookworm
	Suite   string // "" means the tag of Ref
	Variant string
	Mirror  string
	Load    bool   // also load into the Docker engine
	Tar     string // also write a docker-archive tarball here
	// StateDir holds the base store ("" means the user's cache dir).
	StateDir string
	Getenv   func(string) string
	Stderr   io.Writer
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
	if opts.Getenv != nil {
		if v := opts.Getenv("SOURCE_DATE_EPOCH"); v != "" {
			if epoch, err = strconv.ParseInt(v, 10, 64); err != nil {
				return "", fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
			}
		}
	}
	state, err := StateDir(opts.StateDir)
	if err != nil {
		return "", err
	}
	img, done, err := bootstrap.Debian(ctx, bootstrap.Options{Suite: opts.Suite, Variant: opts.Variant, Mirror: opts.Mirror, Epoch: epoch, Stderr: opts.Stderr})
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
	if opts.Load {
		w, wait, err := dockerLoad(ctx)
		if err != nil {
			return "", err
		}
		werr := tarball.Write(tag, img, w)
		w.Close()
		if err := firstErr(werr, wait()); err != nil {
			return "", err
		}
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return opts.Ref + "@" + d.String(), nil
}

// StateDir is where pei keeps its base store and buildkitd state: dir if
// given, else $XDG_CACHE_HOME/pei (~/.cache/pei).
func StateDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	return filepath.Join(cache, "pei"), nil
}
