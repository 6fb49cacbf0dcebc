package buildkit

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pei-dev/pei/internal/config"
)

func TestFromLayout(t *testing.T) {
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	img := func() v1.Image {
		i, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	digestOf := func(i interface{ Digest() (v1.Hash, error) }) string {
		d, err := i.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	one, two, forAMD, forARM := img(), img(), img(), img()
	multi := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: forARM, Descriptor: v1.Descriptor{Platform: &arm64}},
		mutate.IndexAddendum{Add: forAMD, Descriptor: v1.Descriptor{Platform: &amd64}})

	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	tag := func(name string) layout.Option {
		return layout.WithAnnotations(map[string]string{RefAnnotation: name})
	}
	if err := p.AppendImage(one, tag("v1")); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(two, tag("example.com/deb:v2")); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(multi, tag("multi")); err != nil {
		t.Fatal(err)
	}
	single := t.TempDir()
	sp, err := layout.Write(single, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.AppendImage(one); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		dir     string
		ref     config.LayoutRef
		want    string // manifest digest
		wantErr string
	}{
		{"by tag", dir, config.LayoutRef{Path: "l", Tag: "v1"}, digestOf(one), ""},
		{"by the tag of a full name", dir, config.LayoutRef{Path: "l", Tag: "v2"}, digestOf(two), ""},
		{"by digest", dir, config.LayoutRef{Path: "l", Digest: digestOf(two)}, digestOf(two), ""},
		{"the host's platform of an index", dir, config.LayoutRef{Path: "l", Tag: "multi"}, digestOf(forAMD), ""},
		{"the only image", single, config.LayoutRef{Path: "s"}, digestOf(one), ""},
		{"no such tag", dir, config.LayoutRef{Path: "l", Tag: "v9"}, "", "OCI layout l has no image v9 (it has: v1, example.com/deb:v2, multi)"},
		{"several and none named", dir, config.LayoutRef{Path: "l"}, "", "OCI layout l has 3 images: name one with :TAG or @DIGEST"},
		{"not a layout", t.TempDir(), config.LayoutRef{Path: "x"}, "", "OCI layout x:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := FromLayout(tc.dir, tc.ref, amd64)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Manifest != tc.want || b.Dir != tc.dir || !strings.HasPrefix(b.StoreID, "pei-layout-") {
				t.Errorf("base = %+v, want manifest %s in %s", b, tc.want, tc.dir)
			}
		})
	}
}

// A store with NoEngine (a tenant's build on a pei worker) never asks the
// local Docker engine for a base it does not hold: the engine, a fake on a
// unix socket that answers for every image, sees no request and the error
// says why. Without NoEngine the same lookup asks it (the control).
func TestBaseStoreNoEngine(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Error(w, `{"message":"no such image"}`, http.StatusNotFound)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	t.Setenv("DOCKER_CONTEXT", "")
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}

	_, err = BaseStore{Dir: t.TempDir(), NoEngine: true}.Resolve(t.Context(), "private/site-image:1", p)
	if err == nil || !strings.Contains(err.Error(), "never takes images from the worker's Docker engine") {
		t.Fatalf("NoEngine: %v", err)
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("NoEngine: the engine was asked %d times", n)
	}
	if _, err := (BaseStore{Dir: t.TempDir()}).Resolve(t.Context(), "private/site-image:1", p); err == nil {
		t.Fatal("the fake engine holds nothing, yet a base was found")
	}
	if asked.Load() == 0 {
		t.Fatal("without NoEngine the engine was not asked: the control does not reach it")
	}
}
