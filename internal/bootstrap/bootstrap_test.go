package bootstrap

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestDebianArch(t *testing.T) {
	for spec, want := range map[string]string{"linux/amd64": "amd64", "linux/arm64": "arm64", "linux/arm/v7": "armhf", "linux/arm/v6": "armel", "linux/386": "i386", "linux/ppc64le": "ppc64el"} {
		p, err := v1.ParsePlatform(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DebianArch(*p); err != nil || got != want {
			t.Errorf("DebianArch(%s) = %q, %v; want %q", spec, got, err, want)
		}
	}
	if _, err := DebianArch(v1.Platform{OS: "linux", Architecture: "wasm"}); err == nil {
		t.Errorf("wasm: no error")
	}
}
