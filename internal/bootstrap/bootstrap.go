// Package bootstrap makes Debian base images without a registry: it runs
// mmdebstrap (as root, or rootless in a user namespace) and turns the root
// file system into a one-layer OCI image. With the same SOURCE_DATE_EPOCH
// and the same mirror state, the image digest is the same.
package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
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
// temporary file: call done once the image has been written out. done is
// never nil, so a deferred call is safe whatever Debian returned; on an error
// everything Debian made is already removed.
func Debian(ctx context.Context, opts Options) (img v1.Image, done func(), err error) {
	done = func() {}
	bin, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return nil, done, fmt.Errorf("mmdebstrap is not installed; install it (apt-get install mmdebstrap arch-test; without root also uidmap and /etc/subuid entries)")
	}
	if opts.Variant == "" {
		opts.Variant = "minbase"
	}
	if opts.Mirror == "" {
		opts.Mirror = "http://deb.debian.org/debian"
	}
	if opts.Platform.Architecture == "" {
		opts.Platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	arch, err := DebianArch(opts.Platform)
	if err != nil {
		return nil, done, err
	}
	dir, err := os.MkdirTemp(opts.TmpDir, "pei-base-")
	if err != nil {
		return nil, done, fmt.Errorf("make a temporary directory for the root file system: %w", err)
	}
	// cleanup is kept apart from the named result: the error returns below
	// set done, and the deferred removal must not call what they set.
	cleanup := func() { os.RemoveAll(dir) }
	defer func() {
		if err != nil {
			cleanup()
			done = func() {}
		}
	}()
	rootfs := filepath.Join(dir, "rootfs.tar")
	args := []string{"--variant=" + opts.Variant, "--mode=auto", "--format=tar", "--architectures=" + arch,
		// Logs and caches that differ between runs stay out of the image.
		"--customize-hook=rm -rf \"$1\"/var/log/apt/* \"$1\"/var/log/dpkg.log \"$1\"/var/log/alternatives.log \"$1\"/var/cache/ldconfig/aux-cache \"$1\"/var/cache/apt/*.bin",
		opts.Suite, rootfs, opts.Mirror}
	if err := run(ctx, bin, args, opts); err != nil {
		return nil, done, err
	}
	layer, err := tarball.LayerFromFile(rootfs, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, done, fmt.Errorf("read the root file system mmdebstrap wrote: %w", err)
	}
	created := v1.Time{Time: time.Unix(opts.Epoch, 0).UTC()}
	img, err = mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), &v1.ConfigFile{
		Architecture: opts.Platform.Architecture, Variant: opts.Platform.Variant, OS: "linux", Created: created, RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"bash"}},
	})
	if err != nil {
		return nil, done, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: created, CreatedBy: fmt.Sprintf("pei base: mmdebstrap --variant=%s %s %s", opts.Variant, opts.Suite, opts.Mirror),
	}})
	if err != nil {
		return nil, done, err
	}
	return img, cleanup, nil
}

// run runs mmdebstrap in a process group of its own, so that a cancel
// stops apt and dpkg too. Its error says why it failed and, where known, what to
// install.
func run(ctx context.Context, bin string, args []string, opts Options) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	// TMPDIR stays the caller's: in unshare mode (without root) mmdebstrap
	// makes its chroot there as a mapped user, who cannot enter dir.
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(opts.Epoch, 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	tail := &tailWriter{max: 4096}
	var out io.Writer = tail
	if opts.Stderr != nil {
		out = io.MultiWriter(opts.Stderr, tail)
	}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	what := "mmdebstrap " + strings.Join(args, " ")
	if ctx.Err() != nil {
		return fmt.Errorf("%s was stopped: %w", what, context.Cause(ctx))
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("%s was killed by signal %s", what, unix.SignalName(ws.Signal()))
		}
	}
	msg := tail.String()
	for _, h := range hints {
		if strings.Contains(msg, h.says) {
			return fmt.Errorf("%s: %v: %s\n%s", what, err, h.fix, msg)
		}
	}
	if msg == "" {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w\n%s", what, err, msg)
}

// hints turn mmdebstrap's known complaints into what to do about them.
var hints = []struct{ says, fix string }{
	{"install arch-test", "a foreign architecture needs the arch-test package (apt-get install arch-test) and QEMU emulation (apt-get install qemu-user-static)"},
}

// tailWriter keeps the last max bytes written to it, from a line start.
type tailWriter struct {
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = w.buf[len(w.buf)-w.max:]
		if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
			w.buf = w.buf[i+1:]
		}
	}
	return len(p), nil
}

func (w *tailWriter) String() string { return strings.TrimSpace(string(w.buf)) }

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
