// Package bootstrap makes Debian base images without a registry: it runs
// mmdebstrap (as root, or rootless in a user namespace) and turns the root
// file system into a one-layer OCI image. With the same SOURCE_DATE_EPOCH
// and the same mirror state, the image digest is the same.
package bootstrap

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options say what to bootstrap.
type Options struct {
	Suite   string // bookworm, trixie, ...
	Variant string // minbase (default), buildd, ...
	Mirror  string // default http://deb.debian.org/debian
	// Platform is the image's; the zero value means the host's. A foreign
	// one needs QEMU emulation registered with binfmt_misc.
	Platform v1.Platform
	// Epoch is SOURCE_DATE_EPOCH for the file system and image config.
	Epoch  int64
	TmpDir string    // where the root file system tarball is made
	Stderr io.Writer // mmdebstrap's output
}

// DefaultEpoch is midnight UTC of today: bootstrapping twice the same day
// gives the same image while the mirror does not change.
func DefaultEpoch(now time.Time) int64 {
	return now.UTC().Truncate(24 * time.Hour).Unix()
}

// SuiteOf guesses the suite from an image reference: debian:bookworm.
func SuiteOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return strings.TrimSuffix(ref[i+1:], "-slim")
	}
	return "bookworm"
}

// Debian runs mmdebstrap and returns the image. Its layer is read from a
// temporary file: call done once the image has been written out.
func Debian(ctx context.Context, opts Options) (img v1.Image, done func(), err error) {
	bin, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return nil, nil, fmt.Errorf("mmdebstrap is not installed; install it (apt-get install mmdebstrap; without root also uidmap and /etc/subuid entries)")
	}
	if opts.Variant == "" {
		opts.Variant = "minbase"
	}
	if opts.Mirror == "" {
		opts.Mirror = "http://deb.debian.org/debian"
	}
	dir, err := os.MkdirTemp(opts.TmpDir, "pei-base-")
	if err != nil {
		return nil, nil, err
	}
	done = func() { os.RemoveAll(dir) }
	defer func() {
		if err != nil {
			done()
		}
	}()
	if opts.Platform.Architecture == "" {
		opts.Platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	arch, err := DebianArch(opts.Platform)
	if err != nil {
		return nil, nil, err
	}
	rootfs := filepath.Join(dir, "rootfs.tar")
	args := []string{"--variant=" + opts.Variant, "--mode=auto", "--format=tar", "--architectures=" + arch,
		// Logs and caches that differ between runs stay out of the image.
		"--customize-hook=rm -rf \"$1\"/var/log/apt/* \"$1\"/var/log/dpkg.log \"$1\"/var/log/alternatives.log \"$1\"/var/cache/ldconfig/aux-cache \"$1\"/var/cache/apt/*.bin",
		opts.Suite, rootfs, opts.Mirror}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(opts.Epoch, 10))
	if opts.Stderr != nil {
		cmd.Stdout, cmd.Stderr = opts.Stderr, opts.Stderr
	}
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("mmdebstrap %s: %w", strings.Join(args, " "), err)
	}
	layer, err := tarball.LayerFromFile(rootfs, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, nil, err
	}
	created := v1.Time{Time: time.Unix(opts.Epoch, 0).UTC()}
	img, err = mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), &v1.ConfigFile{
		Architecture: opts.Platform.Architecture, Variant: opts.Platform.Variant, OS: "linux", Created: created, RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"bash"}},
	})
	if err != nil {
		return nil, nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: created, CreatedBy: fmt.Sprintf("pei base: mmdebstrap --variant=%s %s %s", opts.Variant, opts.Suite, opts.Mirror),
	}})
	return img, done, err
}

// DebianArch is Debian's name for a platform's architecture.
func DebianArch(p v1.Platform) (string, error) {
	switch a, v := p.Architecture, p.Variant; {
	case a == "amd64" || a == "arm64" || a == "s390x" || a == "riscv64":
		return a, nil
	case a == "386":
		return "i386", nil
	case a == "ppc64le":
		return "ppc64el", nil
	case a == "mips64le":
		return "mips64el", nil
	case a == "arm" && (v == "v7" || v == ""):
		return "armhf", nil
	case a == "arm" && (v == "v6" || v == "v5"):
		return "armel", nil
	}
	return "", fmt.Errorf("Debian has no architecture for %s", p.String())
}
