package buildkit

import (
	"fmt"
	"os"
	"strings"

	"github.com/containerd/platforms"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// qemuNames maps GOARCH to the name QEMU registers in binfmt_misc.
var qemuNames = map[string]string{
	"arm64": "aarch64", "arm": "arm", "amd64": "x86_64", "386": "i386",
	"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el",
}

// ParsePlatforms parses a comma-separated --platform list, checking each
// (ParsePlatform) and dropping repeats; the order is kept.
func ParsePlatforms(list, binfmtDir string) ([]ocispecs.Platform, error) {
	var out []ocispecs.Platform
	seen := map[string]bool{}
	for _, spec := range strings.Split(list, ",") {
		p, err := ParsePlatform(strings.TrimSpace(spec), binfmtDir)
		if err != nil {
			return nil, err
		}
		if id := platforms.Format(*p); !seen[id] {
			seen[id] = true
			out = append(out, *p)
		}
	}
	return out, nil
}

// ParsePlatform checks that a platform can be built here: the host's, or
// one whose binaries the kernel runs through QEMU (binfmt_misc). binfmtDir
// is /proc/sys/fs/binfmt_misc outside tests.
func ParsePlatform(spec, binfmtDir string) (*ocispecs.Platform, error) {
	p, err := platforms.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("--platform %q: %w", spec, err)
	}
	p = platforms.Normalize(p)
	host := platforms.Normalize(platforms.DefaultSpec())
	if p.OS != "linux" {
		return nil, fmt.Errorf("--platform %s: pei builds linux images only", spec)
	}
	if platforms.Only(host).Match(p) {
		// The host's own (or one it runs natively, like arm/v7 on arm64).
		return &p, nil
	}
	name, ok := qemuNames[p.Architecture]
	if !ok {
		return nil, fmt.Errorf("--platform %s: unknown architecture %q", spec, p.Architecture)
	}
	if _, err := os.Stat(binfmtDir + "/qemu-" + name); err != nil {
		return nil, fmt.Errorf("--platform %s: this %s machine cannot run %s binaries: no QEMU emulation is registered (%s/qemu-%s is missing); install qemu-user-static and binfmt-support, or build on a %s machine",
			spec, platforms.Format(host), p.Architecture, binfmtDir, name, platforms.Format(p))
	}
	return &p, nil
}
