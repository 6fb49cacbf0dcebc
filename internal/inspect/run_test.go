package inspect

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/pei-dev/pei/internal/testenv"
)

// writeLayout writes img as an OCI layout directory, as pei inspect reads
// one from disk.
func writeLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRun: pei inspect's one library call analyses an image, compares two,
// and gates the report only when asked (--ci).
func TestRun(t *testing.T) {
	const token = "s3cret-token-value"
	a := writeLayout(t, testImage(t, []v1.Layer{
		testLayer(t, entry{name: "etc/app.conf", data: "token=" + token}),
		testLayer(t, entry{name: "etc/app.conf", data: "token=none"}),
	}, []string{"one", "two"}))
	b := writeLayout(t, testImage(t, []v1.Layer{testLayer(t, entry{name: "etc/other", data: "x"})}, []string{"one"}))
	env := func(k string) string {
		if k == "APP_TOKEN" {
			return token
		}
		return ""
	}
	for _, tc := range []struct {
		name     string
		flags    Flags
		problems int    // -1: no report
		text     string // in the text output
		err      string
	}{
		{"a report", Flags{Image: a}, 0, "wasted", ""},
		{"the gate fails on the secret from the environment", Flags{Image: a, CI: true, SecretEnvs: []string{"APP_TOKEN"}}, 1, "secret", ""},
		{"the gate fails on waste", Flags{Image: a, CI: true, MaxWasted: "1B"}, 1, "wasted", ""},
		{"no gate without --ci", Flags{Image: a, SecretEnvs: []string{"APP_TOKEN"}, MaxWasted: "1B"}, 0, "secret", ""},
		{"a comparison", Flags{Image: a, Compare: b, CI: true, Top: 10}, -1, "etc/other", ""},
		{"an unset --secret-env", Flags{Image: a, SecretEnvs: []string{"UNSET"}}, 0, "", "--secret-env UNSET"},
		{"a bad --max-wasted", Flags{Image: a, MaxWasted: "lots"}, 0, "", "--max-wasted"},
		{"a bad --platform", Flags{Image: a, Platform: "linux/amd64/v1/x"}, 0, "", "--platform"},
		{"no such image", Flags{Image: filepath.Join(t.TempDir(), "none.tar")}, 0, "", "none.tar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.flags.Getenv = func(k string) string {
				if k == "DOCKER_CONFIG" {
					return t.TempDir()
				}
				return env(k)
			}
			req, err := tc.flags.Request()
			var res Result
			if err == nil {
				res, err = Run(t.Context(), req)
			}
			if testenv.WantErr(t, err, tc.err) {
				return
			}
			if tc.problems < 0 {
				if res.Comparison == nil || res.Report != nil || res.Problems != nil {
					t.Fatalf("result %+v, want a comparison only", res)
				}
			} else if res.Report == nil || len(res.Problems) != tc.problems {
				t.Fatalf("problems %q, want %d", res.Problems, tc.problems)
			}
			var text, js bytes.Buffer
			if err := res.Write(&text, false); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text.String(), tc.text) {
				t.Errorf("text output lacks %q:\n%s", tc.text, text.String())
			}
			if err := res.Write(&js, true); err != nil {
				t.Fatal(err)
			}
			if !json.Valid(js.Bytes()) || !strings.Contains(js.String(), "\n  ") {
				t.Errorf("JSON output is not indented JSON:\n%s", js.String())
			}
		})
	}
}
