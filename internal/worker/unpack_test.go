package worker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/recipe"
)

// The worker unpacks a leased recipe with the limits the server gives in
// the lease (the ones it checked the recipe against), or pei serve's
// defaults when the lease has none, and with recipe's containment. Each
// build here has no BuildKit to reach, so one that gets past unpacking
// fails later, with another error.
func TestWorkerUnpacksWithTheServersLimits(t *testing.T) {
	type file struct{ name, link, body string }
	pack := func(files ...file) []byte {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for _, f := range files {
			hdr := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body))}
			if f.link != "" {
				hdr = &tar.Header{Name: f.name, Typeflag: tar.TypeSymlink, Linkname: f.link, Mode: 0o777}
			}
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			io.WriteString(tw, f.body)
		}
		tw.Close()
		gz.Close()
		return buf.Bytes()
	}
	project := file{name: "user_config.yml", body: "stage_1:\n  image: {base: debian:bookworm, output: x:1}\n"}
	threeFiles := pack(project, file{name: "a", body: "1"}, file{name: "b", body: "2"})
	bigFile := pack(project, file{name: "big", body: strings.Repeat("x", 4096)})
	for _, tc := range []struct {
		name   string
		recipe []byte
		lease  api.Lease
		want   string // in the error
		unpack bool   // whether the error is an unpacking one
	}{
		{"within the lease's file limit", threeFiles, api.Lease{RecipeMaxFiles: 3}, "", false},
		{"over the lease's file limit", threeFiles, api.Lease{RecipeMaxFiles: 2}, "more than 2 files", true},
		{"within the lease's byte limit", bigFile, api.Lease{RecipeMaxBytes: 8192}, "", false},
		{"over the lease's byte limit", bigFile, api.Lease{RecipeMaxBytes: 1024}, "unpacks to more than 1024 bytes", true},
		{"no limits in the lease: the defaults", bigFile, api.Lease{}, "", false},
		{"links that lead out through each other", pack(project, file{name: "a", link: "."}, file{name: "b", link: "a/.."}), api.Lease{}, "leads out of the project", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/recipe") {
					w.Write(tc.recipe)
					return
				}
				http.NotFound(w, r)
			}))
			defer srv.Close()
			l := tc.lease
			l.Build = api.BuildView{ID: "b-1", Repository: "team-a/app", Tag: "v1", Kind: "pei", Platform: "linux/amd64"}
			l.Registry, l.Username, l.Password = "127.0.0.1:1", "pei-job", "job.x"
			state := t.TempDir()
			j := &job{c: client.New(srv.URL, "t"), lease: &l, logs: newLogSender(context.Background(), client.New(srv.URL, "t"), "b-1", "w"),
				opt: Options{Builder: "unix://" + filepath.Join(state, "none.sock"), StateDir: state, NoCache: true}}
			defer j.logs.close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := j.build(ctx)
			if err == nil {
				t.Fatal("built without a BuildKit daemon")
			}
			t.Logf("error: %v", err)
			var re *recipe.Error
			isUnpack := strings.HasPrefix(err.Error(), "recipe:") || errors.As(err, &re)
			if isUnpack != tc.unpack {
				t.Fatalf("error %v: unpacking error = %v, want %v", err, isUnpack, tc.unpack)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestLeaseLimits(t *testing.T) {
	if got := leaseLimits(&api.Lease{}); got != recipe.DefaultLimits {
		t.Errorf("no limits in the lease: %+v, want %+v", got, recipe.DefaultLimits)
	}
	if got := leaseLimits(&api.Lease{RecipeMaxBytes: 5, RecipeMaxFiles: 7}); got != (recipe.Limits{MaxBytes: 5, MaxFiles: 7}) {
		t.Errorf("the lease's limits: %+v", got)
	}
}
