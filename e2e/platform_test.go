package e2e

import (
	"archive/tar"
	"io"
	stdlog "log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/testenv"
)

// TestMultiPlatform bootstraps an arm64 Debian base (under QEMU), builds a
// project for linux/amd64 and linux/arm64 in one run, and checks the image
// index: one image per platform, each built by its own architecture.
func TestMultiPlatform(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	testenv.Emulation(t, "aarch64")
	state := t.TempDir()
	if _, err := build.Base(t.Context(), build.BaseOptions{Ref: baseImage, Platform: v1.Platform{OS: "linux", Architecture: "arm64"}, StateDir: state,
		Stderr: io.Discard}); err != nil {
		t.Fatalf("pei base --platform linux/arm64: %v", err)
	}
	// amd64 comes from the engine, arm64 from pei's base store.
	dir, _ := smallProject(t, "  ssh: {enable: false}\n  custom:\n    on_build: ['stage-1/custom/arch.sh']\n", map[string]string{
		"stage-1/custom/arch.sh": "#!/bin/sh\nuname -m > /opt/arch\n",
	})
	dest := filepath.Join(t.TempDir(), "multi.tar")
	refs := peiBuild(t, dir, state, io.Discard, func(o *build.Flags) {
		o.Platform = "linux/amd64,linux/arm64"
		o.Output = "type=oci,dest=" + dest
	})
	if len(refs) != 1 {
		t.Fatalf("pei build printed %v", refs)
	}
	outer, entries := ociLayout(t, dest)
	if len(entries) != 1 {
		t.Fatalf("layout index: %+v", entries)
	}
	if !strings.HasSuffix(refs[0], "@"+entries[0].Digest.String()) {
		t.Errorf("pei printed %s, the layout holds %s", refs[0], entries[0].Digest)
	}
	idx, err := outer.ImageIndex(entries[0].Digest)
	if err != nil {
		t.Fatalf("the image is not an index: %v", err)
	}
	checkPlatforms(t, idx)

	t.Run("pushed and pulled back as an index", func(t *testing.T) {
		srv := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
		t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
		ref := strings.TrimPrefix(srv.URL, "http://") + "/pei/multi:latest"
		peiBuild(t, dir, state, io.Discard, func(o *build.Flags) {
			o.Platform = "linux/amd64,linux/arm64"
			o.Push, o.Insecure = ref, true
		})
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		pulled, err := remote.Index(r)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if err := validate.Index(pulled); err != nil {
			t.Errorf("validate.Index: %v", err)
		}
		checkPlatforms(t, pulled)
	})

	t.Run("the engine takes one platform", func(t *testing.T) {
		_, err := runBuild(t.Context(), build.Flags{Dir: dir, StateDir: state, Platform: "linux/amd64,linux/arm64"}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "one platform per image") {
			t.Errorf("docker output of two platforms: %v", err)
		}
	})
}

// checkPlatforms checks that idx holds a linux/amd64 and a linux/arm64
// image whose on_build step ran on that architecture.
func checkPlatforms(t *testing.T, idx v1.ImageIndex) {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"linux/amd64": "x86_64\n", "linux/arm64": "aarch64\n"}
	for _, d := range m.Manifests {
		if d.Platform == nil {
			t.Errorf("manifest %s has no platform", d.Digest)
			continue
		}
		p := d.Platform.OS + "/" + d.Platform.Architecture
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != d.Platform.Architecture {
			t.Errorf("%s: config says %s", p, cfg.Architecture)
		}
		rc := mutate.Extract(img)
		got := ""
		eachTarEntry(t, rc, func(h *tar.Header, b []byte) {
			if h.Name == "opt/arch" {
				got = string(b)
			}
		})
		rc.Close()
		if w, ok := want[p]; !ok || got != w {
			t.Errorf("%s: /opt/arch = %q, want %q", p, got, w)
		}
		delete(want, p)
	}
	if len(want) != 0 {
		t.Errorf("index lacks %v", want)
	}
}
