package e2e

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/buildkit"
	"github.com/pei-dev/pei/internal/testenv"
)

const peiBuildPassword = `build pass, with: "quotes"`

var digestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// peiBuildProject is a small project with what pei build must get right:
// an SSH user, environment, build and run-time hooks.
func peiBuildProject(t *testing.T) (dir, img string, port int) {
	t.Helper()
	port = freePort(t)
	stage1 := fmt.Sprintf(`  ssh:
    host_port: %d
    users:
      dev: {password: '%s', uid: 1234}
  environment: ['BUILT_WITH=pei build']
  custom:
    on_build: ['stage-1/custom/b1.sh', 'stage-1/custom/b2.sh', 'stage-1/custom/uses-secret.sh']
    on_every_run: ['stage-1/custom/every.sh']
`, port, peiBuildPassword)
	dir, img = smallProject(t, stage1, map[string]string{
		"stage-1/custom/b1.sh":    "#!/bin/sh\necho one > /opt/b1\n",
		"stage-1/custom/b2.sh":    "#!/bin/sh\necho two > /opt/b2\n",
		"stage-1/custom/every.sh": "#!/bin/sh\necho started >> /var/log/pei-every\n",
		// Keeps only a hash of the secret, to show the step could read it.
		"stage-1/custom/uses-secret.sh": "#!/bin/sh\nif [ -f /run/secrets/token ]; then sha256sum < /run/secrets/token | cut -d' ' -f1 > /opt/secret-sum; fi\n",
	})
	return dir, img, port
}

// runBuild is pei build's library call as the CLI makes it: the flags read
// into options, then Build.
func runBuild(ctx context.Context, f build.Flags, stderr io.Writer) ([]buildkit.Result, error) {
	opts, err := f.Options()
	if err != nil {
		return nil, err
	}
	opts.Stderr = stderr
	return build.Build(ctx, opts)
}

func peiBuild(t *testing.T, dir, state string, log io.Writer, mods ...func(*build.Flags)) []string {
	t.Helper()
	opts := build.Flags{Dir: dir, StateDir: state, Progress: "plain", Getenv: func(string) string { return "" }}
	for _, m := range mods {
		m(&opts)
	}
	res, err := runBuild(t.Context(), opts, log)
	if err != nil {
		t.Fatalf("pei build: %v", err)
	}
	var out []string
	for _, r := range res {
		out = append(out, r.Ref+"@"+r.Manifest)
	}
	return out
}

// TestPeiBuild builds a project with BuildKit through pei's own LLB (a
// buildkitd that pei starts and stops), runs the result, and checks cache
// behaviour, the OCI output and reproducible digests.
func TestPeiBuild(t *testing.T) {
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	dir, img, port := peiBuildProject(t)
	state := t.TempDir()

	var log strings.Builder
	refs := peiBuild(t, dir, state, &log)
	if len(refs) != 2 || !strings.HasPrefix(refs[1], img+":stage-2@sha256:") {
		t.Fatalf("pei build printed %v", refs)
	}

	t.Run("runs with SSH, env and hooks", func(t *testing.T) {
		name := img + "-run"
		t.Cleanup(func() { runErr(dir, "docker", "rm", "-f", name) })
		run(t, dir, "docker", "run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:22", port), img+":stage-2")
		waitSSH(t, port)
		out, err := runErr(dir, "sshpass", append([]string{"-p", peiBuildPassword, "ssh"}, sshArgs(port, "-o", "PubkeyAuthentication=no", "dev@127.0.0.1", "id -u; printenv BUILT_WITH; cat /opt/b1 /opt/b2 /var/log/pei-every")...)...)
		if err != nil {
			t.Fatalf("ssh: %v\n%s", err, out)
		}
		if want := "1234\npei build\none\ntwo\nstarted"; strings.TrimSpace(out) != want {
			t.Errorf("session:\n%s\nwant:\n%s", out, want)
		}
		hist := run(t, dir, "docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", img+":stage-2")
		if !strings.Contains(hist, "pei [stage-1] on_build: stage-1/custom/b2.sh (stage_1.custom.on_build[1], line") {
			t.Errorf("the image history does not name the config line of each step:\n%s", hist)
		}
	})

	t.Run("secret scan", func(t *testing.T) {
		secrets := map[string]string{"password": peiBuildPassword}
		for _, h := range scanImage(t, img+":stage-2", secrets) {
			t.Errorf("password found in %s", h.where)
		}
		if strings.Contains(log.String(), peiBuildPassword) {
			t.Error("password found in the build log")
		}
	})

	t.Run("cache: a run-time hook edit re-runs no build step", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "installation/stage-1/custom/every.sh"), "#!/bin/sh\necho edited >> /var/log/pei-every\n", 0o755)
		var log strings.Builder
		peiBuild(t, dir, state, &log, func(o *build.Flags) { o.Stage = "1" })
		steps := buildSteps(log.String())
		for _, want := range []string{"apt sources", "SSH users", "on_build: stage-1/custom/b1.sh", "on_build: stage-1/custom/b2.sh"} {
			if st, ok := findStep(steps, want); !ok || !st.cached {
				t.Errorf("step %q re-ran (found %v)\n%s", want, ok, log.String())
			}
		}
		if st, ok := findStep(steps, "project files and run-time hooks"); !ok || st.cached {
			t.Errorf("the edited hook was not copied again")
		}
	})

	t.Run("cache exported then imported by a fresh daemon", func(t *testing.T) {
		cache := filepath.Join(t.TempDir(), "cache")
		peiBuild(t, dir, state, io.Discard, func(o *build.Flags) {
			o.Stage = "1"
			o.CacheTo = []string{"type=local,dest=" + cache + ",mode=max"}
		})
		// A new state directory: a daemon that has never built anything.
		var log strings.Builder
		peiBuild(t, dir, t.TempDir(), &log, func(o *build.Flags) {
			o.Stage = "1"
			o.CacheFrom = []string{"type=local,src=" + cache}
		})
		steps := buildSteps(log.String())
		for _, want := range []string{"apt sources", "SSH users", "on_build: stage-1/custom/b1.sh", "on_build: stage-1/custom/b2.sh"} {
			if st, ok := findStep(steps, want); !ok || !st.cached {
				t.Errorf("step %q was not taken from the imported cache (found %v)\n%s", want, ok, log.String())
			}
		}
	})

	t.Run("user build secret", func(t *testing.T) {
		const token = "s3cr3t-token-for-the-binary-cache"
		dest := filepath.Join(t.TempDir(), "image.tar")
		var log strings.Builder
		peiBuild(t, dir, state, &log, func(o *build.Flags) {
			o.Output = "type=oci,dest=" + dest
			o.Secrets = []string{"id=token,env=PEI_E2E_TOKEN"}
			o.Getenv = func(k string) string {
				if k == "PEI_E2E_TOKEN" {
					return token
				}
				return ""
			}
		})
		files := map[string][]byte{}
		layers, err := ociImage(t, dest).Layers()
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			eachTarEntry(t, rc, func(h *tar.Header, b []byte) {
				files[h.Name] = b
				if strings.Contains(string(b), token) {
					t.Errorf("the secret is in layer %d at %s", i, h.Name)
				}
			})
			rc.Close()
		}
		sum := sha256.Sum256([]byte(token))
		if got := strings.TrimSpace(string(files["opt/secret-sum"])); got != hex.EncodeToString(sum[:]) {
			t.Errorf("the on_build step did not see the secret at /run/secrets/token (sum %q)", got)
		}
		if strings.Contains(log.String(), token) {
			t.Error("the secret is in the build log")
		}
	})

	t.Run("OCI tarball validates", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "image.tar")
		peiBuild(t, dir, state, io.Discard, func(o *build.Flags) { o.Output = "type=oci,dest=" + dest })
		img := ociImage(t, dest)
		if err := validate.Image(img); err != nil {
			t.Errorf("validate.Image: %v", err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(cfg.Config.Entrypoint, " "); got != "bash /pei-init/stage-2/internals/entrypoint.sh" {
			t.Errorf("entrypoint %q", got)
		}
	})

	t.Run("base from an OCI layout directory", func(t *testing.T) {
		// The OCI export above, unpacked into another project, is that
		// project's base: no engine, store or registry involved.
		src := filepath.Join(t.TempDir(), "image.tar")
		peiBuild(t, dir, state, io.Discard, func(o *build.Flags) { o.Stage = "1"; o.Output = "type=oci,dest=" + src })
		next := filepath.Join(t.TempDir(), "next")
		unpackOCI(t, src, filepath.Join(next, "layout"))
		writeFile(t, filepath.Join(next, "installation/stage-1/custom/on-top.sh"), "#!/bin/sh\ncat /opt/b1 > /opt/from-layout\n", 0o755)
		writeFile(t, filepath.Join(next, "user_config.yml"), "stage_1:\n  image: {base: 'oci-layout://layout', output: 'pei-e2e-layout:stage-1'}\n  custom:\n    on_build: ['stage-1/custom/on-top.sh']\n", 0o644)
		dest := filepath.Join(t.TempDir(), "next.tar")
		peiBuild(t, next, state, io.Discard, func(o *build.Flags) { o.Stage = "1"; o.Output = "type=oci,dest=" + dest })
		rc := mutate.Extract(ociImage(t, dest))
		defer rc.Close()
		found := ""
		eachTarEntry(t, rc, func(h *tar.Header, b []byte) {
			if h.Name == "opt/from-layout" {
				found = string(b)
			}
		})
		if found != "one\n" {
			t.Errorf("a build on the OCI layout base did not see the base's files: /opt/from-layout = %q", found)
		}
		// The layout is read from the project, never sent as build context.
		if ignore, err := os.ReadFile(filepath.Join(next, ".dockerignore")); err != nil || !strings.Contains(string(ignore), "\nlayout\n") {
			t.Errorf(".dockerignore does not keep the layout out of the context: %q %v", ignore, err)
		}
	})

	t.Run("push to a registry and pull back", func(t *testing.T) {
		// The registry wants a login for every request, as most do: pei
		// must hand the client's docker credentials to buildkitd's pushes
		// and pulls and use them itself to resolve bases.
		const user, pass = "ci", "reg pass"
		reg := registry.New(registry.Logger(stdlog.New(io.Discard, "", 0)))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="pei-e2e"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}`, http.StatusUnauthorized)
				return
			}
			reg.ServeHTTP(w, r)
		}))
		t.Cleanup(func() {
			srv.CloseClientConnections() // a client that stopped reading must not hang Close
			srv.Close()
		})
		host := strings.TrimPrefix(srv.URL, "http://")
		ref := host + "/pei/e2e:latest"
		creds := t.TempDir()
		writeFile(t, filepath.Join(creds, "config.json"), fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`,
			host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass))), 0o600)
		withCreds := func(o *build.Flags) {
			o.Getenv = func(k string) string {
				if k == "DOCKER_CONFIG" {
					return creds
				}
				return ""
			}
		}

		// No credentials: the push is refused, and the error says so.
		_, err := runBuild(t.Context(), build.Flags{Dir: dir, StateDir: state, Push: ref, Insecure: true,
			Getenv: func(k string) string {
				if k == "DOCKER_CONFIG" {
					return t.TempDir()
				}
				return ""
			}}, io.Discard)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
			t.Errorf("push without credentials: err = %v, want an unauthorized error", err)
		}

		refs := peiBuild(t, dir, state, io.Discard, withCreds, func(o *build.Flags) { o.Push = ref; o.Insecure = true })
		pushed := refs[len(refs)-1]
		if !strings.HasPrefix(pushed, ref+"@sha256:") {
			t.Fatalf("pei build --push printed %q", pushed)
		}
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("validate.Image: %v", err)
		}
		if d, _ := img.Digest(); !strings.HasSuffix(pushed, "@"+d.String()) {
			t.Errorf("pulled digest %s, pei printed %s", d, pushed)
		}

		// The pushed image serves as a base from the registry: it is neither
		// in pei's store nor in the engine under that name.
		next := filepath.Join(t.TempDir(), "next")
		writeFile(t, filepath.Join(next, "installation/stage-1/custom/on-top.sh"), "#!/bin/sh\ncat /opt/b1 > /opt/on-top\n", 0o755)
		writeFile(t, filepath.Join(next, "user_config.yml"), fmt.Sprintf("stage_1:\n  image: {base: '%s', output: 'pei-e2e-next:stage-1'}\n  custom:\n    on_build: ['stage-1/custom/on-top.sh']\n", ref), 0o644)
		dest := filepath.Join(t.TempDir(), "next.tar")
		peiBuild(t, next, state, io.Discard, withCreds, func(o *build.Flags) { o.Stage = "1"; o.Output = "type=oci,dest=" + dest })
		rc := mutate.Extract(ociImage(t, dest))
		defer rc.Close()
		found := ""
		eachTarEntry(t, rc, func(h *tar.Header, b []byte) {
			if h.Name == "opt/on-top" {
				found = string(b)
			}
		})
		if found != "one\n" {
			t.Errorf("a build on the registry base did not see the base's files: /opt/on-top = %q", found)
		}
	})

	t.Run("same filesystem as the Compose build", func(t *testing.T) {
		run(t, dir, "docker", "compose", "build", "stage-1")
		run(t, dir, "docker", "compose", "build", "stage-2")
		compose := engineFiles(t, img+":stage-2")
		peiBuild(t, dir, state, io.Discard)
		pei := engineFiles(t, img+":stage-2")
		var diffs []string
		// Modification times are not compared; everything else must match.
		for _, p := range unionKeys(compose, pei) {
			if compose[p] != pei[p] {
				diffs = append(diffs, fmt.Sprintf("%s: compose %q, pei %q", p, compose[p], pei[p]))
			}
		}
		if len(diffs) > 0 {
			t.Errorf("%d files differ between the Compose and pei builds:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 30)], "\n"))
		}
	})

	t.Run("reproducible digest across cold builds", func(t *testing.T) {
		var digests []string
		for i := 0; i < 2; i++ {
			dest := filepath.Join(t.TempDir(), "image.tar")
			refs := peiBuild(t, dir, t.TempDir(), io.Discard, func(o *build.Flags) {
				o.Output = "type=oci,dest=" + dest
				o.NoCache = true
				o.Getenv = func(k string) string {
					if k == "SOURCE_DATE_EPOCH" {
						return "1700000000"
					}
					return ""
				}
			})
			// The printed digest is well formed and is the manifest the
			// tarball holds, so equal digests mean equal images.
			_, d, _ := strings.Cut(refs[len(refs)-1], "@")
			if !digestRe.MatchString(d) {
				t.Fatalf("build %d printed %q: not sha256:<64 hex>", i+1, refs[len(refs)-1])
			}
			if _, entries := ociLayout(t, dest); entries[0].Digest.String() != d {
				t.Fatalf("build %d printed %s, its tarball holds %s", i+1, d, entries[0].Digest)
			}
			digests = append(digests, d)
		}
		if digests[0] != digests[1] {
			t.Errorf("two cold builds gave %s and %s", digests[0], digests[1])
		}
	})
}

// ociLayout unpacks an OCI layout tarball and returns its index and the
// index's entries.
func ociLayout(t *testing.T, tarPath string) (v1.ImageIndex, []v1.Descriptor) {
	t.Helper()
	dir := t.TempDir()
	unpackOCI(t, tarPath, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) == 0 {
		t.Fatalf("OCI index: %v", err)
	}
	return idx, m.Manifests
}

func ociImage(t *testing.T, tarPath string) v1.Image {
	t.Helper()
	idx, entries := ociLayout(t, tarPath)
	img, err := idx.Image(entries[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// unpackOCI unpacks an OCI layout tarball into dir.
func unpackOCI(t *testing.T, tarPath, dir string) {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	eachTarEntry(t, f, func(h *tar.Header, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			return
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o644)
	})
}

// engineFiles flattens an image from the engine into path -> "mode uid:gid
// type sha256/link" (modification times are not compared).
func engineFiles(t *testing.T, ref string) map[string]string {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "image.tar")
	run(t, "", "docker", "save", "-o", tmp, ref)
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(tmp, &tag)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]string{}
	eachTarEntry(t, rc, func(h *tar.Header, data []byte) {
		sum := sha256.Sum256(data)
		files[strings.TrimPrefix(h.Name, "./")] = fmt.Sprintf("%o %d:%d %c %s%s", h.Mode&0o7777, h.Uid, h.Gid, h.Typeflag, hex.EncodeToString(sum[:])[:16], h.Linkname)
	})
	return files
}

func unionKeys(a, b map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
