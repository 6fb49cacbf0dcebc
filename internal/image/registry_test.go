package image

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestKeychain(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"reg.example:5000":{"auth":"dXNlcjpwYXNz"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cf, err := LoadAuth(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref  string
		want authn.AuthConfig
	}{
		{"reg.example:5000/team/app:1", authn.AuthConfig{Username: "user", Password: "pass"}},
		{"other.example/app:1", authn.AuthConfig{}},
	} {
		r, err := name.ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := Keychain(cf).Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		got, err := authn.Authorization(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		if got.Username != tc.want.Username || got.Password != tc.want.Password {
			t.Errorf("%s: credentials %q/%q, want %q/%q", tc.ref, got.Username, got.Password, tc.want.Username, tc.want.Password)
		}
	}

	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuth(dir); err == nil {
		t.Errorf("malformed config.json: no error")
	}
}
