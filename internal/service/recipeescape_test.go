package service

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

// TestRecipeCannotWriteOnTheServer: the server unpacks every uploaded
// recipe to check it. A recipe whose links, each inside the project on
// paper, lead out of it together (b -> ., up -> b/.., h a hard link to up)
// and that writes h/pwn is refused, and nothing is written next to the
// scratch directory it was unpacked in.
func TestRecipeCannotWriteOnTheServer(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the server unpacks recipes to check them
	h := newHarness(t, nil)
	alice := h.token("alice", []string{"team-a"}, api.ScopeBuild)

	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, hdr := range []*tar.Header{
		{Name: "Dockerfile", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(dockerfile))},
		{Name: "b", Typeflag: tar.TypeSymlink, Linkname: ".", Mode: 0o777},
		{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "b/..", Mode: 0o777},
		{Name: "h", Typeflag: tar.TypeLink, Linkname: "up"},
		{Name: "h/pwn", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5},
	} {
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		switch hdr.Name {
		case "Dockerfile":
			tw.Write([]byte(dockerfile))
		case "h/pwn":
			tw.Write([]byte("pwned"))
		}
	}
	tw.Close()
	gz.Close()

	resp := h.req("POST", "/v2/team-a/app/_pei/builds?kind=dockerfile", alice, bytes.NewReader(buf.Bytes()))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "RECIPE_INVALID") {
		t.Errorf("status %d, want 400 RECIPE_INVALID: %s", resp.StatusCode, body)
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left in the server's temporary directory: %s", e.Name())
	}
	if bs, _ := h.srv.Store().Builds(t.Context(), store.Filter{}); len(bs) != 0 {
		t.Fatalf("the refused recipe queued %d builds", len(bs))
	}
}
