package service

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/store"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	var srv *Server
	ts := httptest.NewUnstartedServer(nil)
	ts.Start()
	srv, err := New(ctx, Config{DataDir: t.TempDir(), PublicURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	_, secret, err := srv.Store().CreateToken(ctx, store.Token{Name: "a", Namespaces: []string{"team-a"}, Scopes: []string{"push"}})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(1000, 2)
	ref, _ := name.ParseReference(ts.Listener.Addr().String() + "/team-a/app:v1")
	auth := remote.WithAuth(&authn.Basic{Username: "x", Password: secret})
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(ref, auth); err != nil {
		t.Fatal(err)
	}
}
