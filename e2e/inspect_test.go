package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/cli"
	"github.com/pei-dev/pei/internal/inspect"
	"github.com/pei-dev/pei/internal/testenv"
)

// peiInspect runs 'pei inspect ARGS' in process and returns its output.
func peiInspect(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := cli.NewRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(append([]string{"inspect"}, args...))
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// TestInspect builds an image with a known waste (a 5 MB file written by
// one on_build script and deleted by the next) and a key left behind, then
// inspects it from the engine and from an OCI tarball.
func TestInspect(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	const password = "inspect-pass, not in any layer"
	dir, img := smallProject(t, `  ssh:
    users:
      dev: {password: '`+password+`'}
  custom:
    on_build: ['stage-1/custom/write.sh', 'stage-1/custom/remove.sh']
`, map[string]string{
		"stage-1/custom/write.sh":  "#!/bin/sh\nhead -c 5000000 /dev/urandom > /opt/big\n",
		"stage-1/custom/remove.sh": "#!/bin/sh\nrm /opt/big\nprintf -- '-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\\n-----END RSA PRIVATE KEY-----\\n' > /opt/leak.pem\n",
	})
	state := t.TempDir()
	dest := filepath.Join(t.TempDir(), "image.tar")
	peiBuild(t, dir, state, io.Discard, func(o *build.Flags) { o.Stage = "1" })
	peiBuild(t, dir, state, io.Discard, func(o *build.Flags) { o.Stage = "1"; o.Output = "type=oci,dest=" + dest })

	var reports []inspect.Report
	for _, src := range []string{img + ":stage-1", dest} {
		out, err := peiInspect(t, src, "--json", "--secret", password)
		if err != nil {
			t.Fatalf("pei inspect %s: %v", src, err)
		}
		var r inspect.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("pei inspect %s --json: %v\n%s", src, err, out)
		}
		reports = append(reports, r)

		if r.WastedBytes < 5000000 || r.Efficiency >= 1 {
			t.Errorf("%s: wasted %d, efficiency %v; want at least the 5 MB file", src, r.WastedBytes, r.Efficiency)
		}
		var big *inspect.Waste
		for i := range r.Wasted {
			if r.Wasted[i].Path == "/opt/big" {
				big = &r.Wasted[i]
			}
		}
		if big == nil || big.Bytes != 5000000 || len(big.Layers) != 1 || !strings.Contains(r.Layers[big.Layers[0]].CreatedBy, "on_build: stage-1/custom/write.sh") {
			t.Errorf("%s: /opt/big not reported as 5 MB wasted by write.sh's layer: %+v", src, big)
		} else if rm := r.Layers[big.Layers[0]+1]; rm.Removed < 1 || !strings.Contains(rm.CreatedBy, "remove.sh") {
			t.Errorf("%s: the layer after write.sh removes nothing: %+v", src, rm)
		}
		leak := false
		for _, f := range r.Findings {
			if f.Path == "/opt/leak.pem" && f.Kind == "private key" {
				leak = true
			}
			if f.Kind == "given secret" {
				t.Errorf("%s: the SSH password was found in %s (layer %d)", src, f.Path, f.Layer)
			}
		}
		if !leak {
			t.Errorf("%s: the key left in /opt/leak.pem was not found: %+v", src, r.Findings)
		}
	}
	// Compression aside, the engine's copy and the OCI export hold the same
	// files: the same analysis.
	e, o := reports[0], reports[1]
	if len(e.Layers) != len(o.Layers) || e.TotalBytes != o.TotalBytes || e.WastedBytes != o.WastedBytes || e.Files != o.Files {
		t.Errorf("engine and OCI copies differ: %d/%d layers, %d/%d bytes, %d/%d wasted, %d/%d files",
			len(e.Layers), len(o.Layers), e.TotalBytes, o.TotalBytes, e.WastedBytes, o.WastedBytes, e.Files, o.Files)
	}

	t.Run("compare", func(t *testing.T) {
		// The engine's copy against the OCI export: the same layers, no
		// file differs. Against the base: what the build added.
		out, err := peiInspect(t, img+":stage-1", "--compare", dest, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var c inspect.Comparison
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatal(err)
		}
		if len(c.Changes) != 0 || c.SharedLayers != c.LayersA || c.LayersA != c.LayersB {
			t.Errorf("engine vs OCI copy: %d changes, %d/%d/%d layers shared/A/B", len(c.Changes), c.SharedLayers, c.LayersA, c.LayersB)
		}
		out, err = peiInspect(t, baseImage, "--compare", img+":stage-1", "--json")
		if err != nil {
			t.Fatal(err)
		}
		c = inspect.Comparison{}
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatal(err)
		}
		found := map[string]string{}
		for _, ch := range c.Changes {
			found[ch.Path] = ch.Kind
		}
		if c.SharedLayers != 1 || found["/opt/leak.pem"] != "added" || found["/usr/sbin/sshd"] != "added" || found["/opt/big"] != "" {
			t.Errorf("base vs stage-1: shared %d, /opt/leak.pem %q, /usr/sbin/sshd %q, /opt/big %q", c.SharedLayers, found["/opt/leak.pem"], found["/usr/sbin/sshd"], found["/opt/big"])
		}
	})

	t.Run("ci gate", func(t *testing.T) {
		_, err := peiInspect(t, img+":stage-1", "--ci", "--max-wasted", "1MB")
		if err == nil || !strings.Contains(err.Error(), "wasted is over the maximum 1MB") || !strings.Contains(err.Error(), "secret(s) found") {
			t.Errorf("--ci with 5 MB wasted and a key: %v", err)
		}
		_, err = peiInspect(t, img+":stage-1", "--ci", "--max-wasted", "20MB", "--min-efficiency", "0.5")
		if err == nil || strings.Contains(err.Error(), "wasted") || !strings.Contains(err.Error(), "1 secret(s) found") {
			t.Errorf("--ci within limits but with a key: %v", err)
		}
	})
}
