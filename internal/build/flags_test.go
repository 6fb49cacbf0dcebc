package build

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pei-dev/pei/internal/testenv"
)

// TestEnvSecretsStayInMemory: --secret id=X,env=VAR hands the value to
// BuildKit from memory; nothing is written under TMPDIR (a file there
// outlived every build before).
func TestEnvSecretsStayInMemory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	getenv := func(k string) string {
		if k == "NPM_TOKEN" {
			return "npm-value"
		}
		return ""
	}
	for _, tc := range []struct {
		name   string
		specs  []string
		files  map[string]string
		values map[string]string
		err    string
	}{
		{"env secret", []string{"id=npm,env=NPM_TOKEN"}, map[string]string{}, map[string]string{"npm": "npm-value"}, ""},
		{"file secret", []string{"id=key,src=/etc/key"}, map[string]string{"key": "/etc/key"}, map[string]string{}, ""},
		{"both", []string{"id=npm,env=NPM_TOKEN", "id=key,src=/k"}, map[string]string{"key": "/k"}, map[string]string{"npm": "npm-value"}, ""},
		{"unset variable", []string{"id=npm,env=UNSET"}, nil, nil, "UNSET is not set"},
		{"no id", []string{"env=NPM_TOKEN"}, nil, nil, "give id=ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec, err := parseSecrets(tc.specs, getenv)
			files, values := sec.Files, sec.Values
			if testenv.WantErr(t, err, tc.err) {
				return
			}
			if len(files) != len(tc.files) || len(values) != len(tc.values) {
				t.Fatalf("files %v values %v, want %v %v", files, values, tc.files, tc.values)
			}
			for id, f := range tc.files {
				if files[id] != f {
					t.Errorf("file of %s = %q, want %q", id, files[id], f)
				}
			}
			for id, v := range tc.values {
				if string(values[id]) != v {
					t.Errorf("value of %s = %q, want %q", id, values[id], v)
				}
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Fatalf("secrets touched the disk: %v in TMPDIR", left)
			}
		})
	}
}

// TestFlagsOptions: each flag string becomes the value Build takes, and a
// bad one is an error naming its flag.
func TestFlagsOptions(t *testing.T) {
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "config.json"), []byte(`{"auths":{"reg.example:5000":{"auth":"dTpw"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "config.json"), []byte(`{"auths":`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	epoch := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		name  string
		flags Flags
		check func(t *testing.T, o Options)
		err   string
	}{
		{"defaults", Flags{}, func(t *testing.T, o Options) {
			if o.Output.Type != "docker" || o.Output.Load == nil || o.Output.Inspect == nil {
				t.Errorf("output %+v, want the engine", o.Output)
			}
			if !slices.Equal(o.Target.Stages, []int{1, 2, 3}) || !o.Target.FinalIfAny || o.Target.Compose != "" {
				t.Errorf("target %+v, want every stage", o.Target)
			}
			if o.SourceDateEpoch != nil || o.Platforms != nil || o.Daemon.Builder != "" {
				t.Errorf("epoch %v platforms %v builder %q, want none", o.SourceDateEpoch, o.Platforms, o.Daemon.Builder)
			}
		}, ""},
		{"oci", Flags{Output: "type=oci,dest=/tmp/x.tar"}, func(t *testing.T, o Options) {
			if o.Output.Type != "oci" || o.Output.Dest != "/tmp/x.tar" {
				t.Errorf("output %+v", o.Output)
			}
		}, ""},
		{"registry by name, insecure by attribute", Flags{Output: "type=image,name=r:5000/a:b,registry.insecure=true"}, func(t *testing.T, o Options) {
			if o.Output.Type != "registry" || o.Output.Dest != "r:5000/a:b" || !o.Output.Insecure {
				t.Errorf("output %+v", o.Output)
			}
		}, ""},
		{"push wins over output", Flags{Output: "type=oci,dest=x", Push: "r/a:b", Insecure: true}, func(t *testing.T, o Options) {
			if o.Output.Type != "registry" || o.Output.Dest != "r/a:b" || !o.Output.Insecure {
				t.Errorf("output %+v", o.Output)
			}
		}, ""},
		{"oci without dest", Flags{Output: "type=oci"}, nil, "--output type=oci needs dest=FILE"},
		{"registry without ref", Flags{Output: "type=registry"}, nil, "needs ref="},
		{"not key=value", Flags{Output: "oci"}, nil, "write key=value pairs"},
		{"unknown type", Flags{Output: "type=tar"}, nil, `type="tar": use docker, oci or registry`},
		{"stage 2", Flags{Stage: "2"}, func(t *testing.T, o Options) {
			if !slices.Equal(o.Target.Stages, []int{1, 2}) || o.Target.FinalIfAny {
				t.Errorf("target %+v", o.Target)
			}
		}, ""},
		{"a composed image", Flags{Stage: "runtime"}, func(t *testing.T, o Options) {
			if o.Target.Compose != "runtime" || o.Target.Stages != nil {
				t.Errorf("target %+v", o.Target)
			}
		}, ""},
		{"BUILDKIT_HOST for auto", Flags{Builder: "auto", Getenv: env("BUILDKIT_HOST", "tcp://b:1")}, func(t *testing.T, o Options) {
			if o.Daemon.Builder != "tcp://b:1" {
				t.Errorf("builder %q", o.Daemon.Builder)
			}
		}, ""},
		{"--builder over BUILDKIT_HOST", Flags{Builder: "unix:///x.sock", Getenv: env("BUILDKIT_HOST", "tcp://b:1")}, func(t *testing.T, o Options) {
			if o.Daemon.Builder != "unix:///x.sock" {
				t.Errorf("builder %q", o.Daemon.Builder)
			}
		}, ""},
		{"SOURCE_DATE_EPOCH", Flags{Getenv: env("SOURCE_DATE_EPOCH", "1700000000")}, func(t *testing.T, o Options) {
			if o.SourceDateEpoch == nil || *o.SourceDateEpoch != *epoch(1700000000) {
				t.Errorf("epoch %v", o.SourceDateEpoch)
			}
		}, ""},
		{"SOURCE_DATE_EPOCH not a number is ignored", Flags{Getenv: env("SOURCE_DATE_EPOCH", "yesterday")}, func(t *testing.T, o Options) {
			if o.SourceDateEpoch != nil {
				t.Errorf("epoch %v", *o.SourceDateEpoch)
			}
		}, ""},
		{"DOCKER_CONFIG", Flags{Getenv: env("DOCKER_CONFIG", creds)}, func(t *testing.T, o Options) {
			ac, err := o.Auth.GetAuthConfig("reg.example:5000")
			if err != nil || ac.Username != "u" || ac.Password != "p" {
				t.Errorf("credentials %+v, %v", ac, err)
			}
		}, ""},
		{"a broken DOCKER_CONFIG", Flags{Getenv: env("DOCKER_CONFIG", broken)}, nil, "registry credentials"},
		{"cache entries", Flags{CacheFrom: []string{"type=local,src=/c"}, CacheTo: []string{"type=local,dest=/c,mode=max"}}, func(t *testing.T, o Options) {
			if len(o.CacheImports) != 1 || o.CacheImports[0].Type != "local" || o.CacheImports[0].Attrs["src"] != "/c" {
				t.Errorf("imports %+v", o.CacheImports)
			}
			if len(o.CacheExports) != 1 || o.CacheExports[0].Attrs["mode"] != "max" {
				t.Errorf("exports %+v", o.CacheExports)
			}
		}, ""},
		{"a bad cache entry", Flags{CacheFrom: []string{`type=local,"src=/c`}}, nil, "--cache-from"},
		{"a bad platform", Flags{Platform: "linux/nope/x/y"}, nil, "--platform"},
		{"a bad secret", Flags{Secrets: []string{"id=a"}}, nil, "--secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.flags.Getenv == nil {
				tc.flags.Getenv = env("DOCKER_CONFIG", t.TempDir())
			}
			o, err := tc.flags.Options()
			if testenv.WantErr(t, err, tc.err) {
				return
			}
			tc.check(t, o)
		})
	}
}

func TestHostCAs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(file, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "SSL_CERT_FILE" {
				return v
			}
			return ""
		}
	}
	if b, err := HostCAs(env(file)); err != nil || string(b) != "-----BEGIN CERTIFICATE-----\n" {
		t.Errorf("SSL_CERT_FILE: %q, %v", b, err)
	}
	if _, err := HostCAs(env(filepath.Join(dir, "missing.pem"))); err == nil || !strings.Contains(err.Error(), "trusted certificates") {
		t.Errorf("a missing SSL_CERT_FILE: %v, want an error naming it", err)
	}
	o, err := Flags{Dir: dir, Getenv: env(file)}.Options()
	if err != nil || string(o.TrustedCAs) != "-----BEGIN CERTIFICATE-----\n" {
		t.Errorf("Flags.Options: TrustedCAs %q, %v", o.TrustedCAs, err)
	}
}
