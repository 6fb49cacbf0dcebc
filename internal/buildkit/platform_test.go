package buildkit

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestParsePlatform(t *testing.T) {
	binfmt := t.TempDir()
	if p, err := ParsePlatform("linux/"+runtime.GOARCH, binfmt); err != nil || p.Architecture != runtime.GOARCH {
		t.Fatalf("host platform: %v %v", p, err)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	_, err := ParsePlatform("linux/"+other, binfmt)
	if err == nil || !strings.Contains(err.Error(), "no QEMU emulation is registered") || !strings.Contains(err.Error(), "install qemu-user-static") {
		t.Fatalf("foreign platform without emulation: %v", err)
	}
	os.WriteFile(filepath.Join(binfmt, "qemu-"+qemuNames[other]), []byte("enabled\n"), 0o644)
	if p, err := ParsePlatform("linux/"+other, binfmt); err != nil || p.Architecture != other {
		t.Fatalf("foreign platform with emulation: %v %v", p, err)
	}
	for _, bad := range []string{"windows/amd64", "linux/nonsense"} {
		if _, err := ParsePlatform(bad, binfmt); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}

	list, err := ParsePlatforms("linux/"+runtime.GOARCH+", linux/"+other+",linux/"+runtime.GOARCH, binfmt)
	if err != nil || len(list) != 2 || list[0].Architecture != runtime.GOARCH || list[1].Architecture != other {
		t.Errorf("ParsePlatforms: %v %v", list, err)
	}
	if _, err := ParsePlatforms("linux/"+runtime.GOARCH+",linux/s390x", binfmt); err == nil || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("a list with an unrunnable platform: %v", err)
	}
}
