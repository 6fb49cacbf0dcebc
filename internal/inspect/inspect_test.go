package inspect

import (
	"archive/tar"
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entry is a tar entry of a test layer: a directory when size < 0.
type entry struct {
	name string
	data string
	dir  bool
}

func testLayer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}
		if e.dir {
			h = &tar.Header{Name: e.name + "/", Mode: 0o755, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	data := b.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testImage(t *testing.T, layers []v1.Layer, history []string, env ...string) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{Env: env}})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: history[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

const pemKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n"

func TestAnalyze(t *testing.T) {
	a1, a2 := strings.Repeat("a", 100), strings.Repeat("A", 150)
	tool, big, x := strings.Repeat("t", 1000), strings.Repeat("b", 5000), strings.Repeat("x", 300)
	img := testImage(t, []v1.Layer{
		testLayer(t, entry{name: "etc", dir: true}, entry{name: "etc/a", data: a1}, entry{name: "usr/bin/tool", data: tool},
			entry{name: "opt", dir: true}, entry{name: "opt/x", data: x}),
		testLayer(t, entry{name: "etc/a", data: a2}, entry{name: "var/cache/big", data: big},
			entry{name: "root/.ssh/id_ed25519", data: pemKey}, entry{name: "etc/app.conf", data: "password=hunter2 secret\n"}),
		testLayer(t, entry{name: "var/cache/.wh.big"}, entry{name: "opt/.wh..wh..opq"}, entry{name: "opt/y", data: "y"}),
	}, []string{"pei [base]", "pei [stage-1] on_build: stage-1/custom/a.sh (stage_1.custom.on_build[0], line 9)", "RUN cleanup"},
		"TOKEN=ghp_"+strings.Repeat("Z", 36))

	r, err := Analyze("test", img, Options{Secrets: []string{"hunter2 secret"}})
	if err != nil {
		t.Fatal(err)
	}
	total := int64(len(a1) + len(tool) + len(x) + len(a2) + len(big) + len(pemKey) + len("password=hunter2 secret\n") + 1)
	visible := int64(len(a2) + len(tool) + len(pemKey) + len("password=hunter2 secret\n") + 1)
	if r.TotalBytes != total || r.VisibleBytes != visible || r.WastedBytes != total-visible {
		t.Errorf("bytes: total %d visible %d wasted %d; want %d %d %d", r.TotalBytes, r.VisibleBytes, r.WastedBytes, total, visible, total-visible)
	}
	if want := float64(visible) / float64(total); r.Efficiency != want {
		t.Errorf("efficiency %v, want %v", r.Efficiency, want)
	}
	// /etc/a, /usr/bin/tool, /root/.ssh/id_ed25519, /etc/app.conf, /opt/y
	if r.Files != 5 {
		t.Errorf("files %d, want 5", r.Files)
	}
	type counts struct{ added, changed, removed int }
	var got []counts
	for _, l := range r.Layers {
		got = append(got, counts{l.Added, l.Changed, l.Removed})
	}
	if want := []counts{{3, 0, 0}, {3, 1, 0}, {1, 0, 2}}; !reflect.DeepEqual(got, want) {
		t.Errorf("added/changed/removed per layer %v, want %v", got, want)
	}
	if r.Layers[1].CreatedBy != "pei [stage-1] on_build: stage-1/custom/a.sh (stage_1.custom.on_build[0], line 9)" || r.Layers[1].Bytes != int64(len(a2)+len(big)+len(pemKey))+int64(len("password=hunter2 secret\n")) {
		t.Errorf("layer 1: %+v", r.Layers[1])
	}
	wantWaste := []Waste{{"/var/cache/big", 5000, []int{1}}, {"/opt/x", 300, []int{0}}, {"/etc/a", 100, []int{0, 1}}}
	if !reflect.DeepEqual(r.Wasted, wantWaste) {
		t.Errorf("wasted %+v, want %+v", r.Wasted, wantWaste)
	}
	wantFindings := []Finding{
		{-1, "config env", "GitHub token"},
		{1, "/etc/app.conf", "given secret"},
		{1, "/root/.ssh/id_ed25519", "private key"},
	}
	if !reflect.DeepEqual(r.Findings, wantFindings) {
		t.Errorf("findings %+v, want %+v", r.Findings, wantFindings)
	}
}

// A secret in a large file, across the boundary of two read chunks, is
// found by the streaming search.
func TestLargeFileSecret(t *testing.T) {
	secret := "s3cret-across-chunks"
	data := strings.Repeat("x", smallFile+64<<10-7) + secret + strings.Repeat("y", 1000)
	img := testImage(t, []v1.Layer{testLayer(t, entry{name: "blob.bin", data: data})}, []string{"big"})
	r, err := Analyze("big", img, Options{Secrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || r.Findings[0].Path != "/blob.bin" {
		t.Errorf("findings %+v", r.Findings)
	}
}

// The programs that read keys carry the PEM header too, and documents
// show it; only a header with a key after it, outside programs, is a
// finding.
func TestKeyHeaderWithoutKey(t *testing.T) {
	// GnuTLS carries a whole test key.
	binary := "\x7fELF\x00-----BEGIN PRIVATE KEY-----\nMGoCAQAwIQYIKoUDBwEBAQIwFQYJKoUDBwECAQIBBggqhQMHAQECAwRCBECjFpvp\n-----END PRIVATE KEY-----\x00"
	doc := "A key file starts with\n-----BEGIN RSA PRIVATE KEY-----\n(your key here)\n"
	img := testImage(t, []v1.Layer{testLayer(t, entry{name: "usr/bin/ssh-keygen", data: binary}, entry{name: "usr/share/doc/ssh/README", data: doc}, entry{name: "home/me/.ssh/id_rsa", data: "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0123\n\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----\n"})}, []string{"keys"})
	r, err := Analyze("keys", img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || r.Findings[0].Path != "/home/me/.ssh/id_rsa" {
		t.Errorf("findings %+v, want only the key file", r.Findings)
	}
}
