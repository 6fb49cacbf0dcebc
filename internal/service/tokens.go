package service

import (
	"context"
	"io"
	"path/filepath"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/store"
)

// dsn is the database of a server with this data directory and
// Config.Database.
func dsn(dataDir, database string) string {
	if database != "" {
		return database
	}
	return filepath.Join(dataDir, "pei.db")
}

// Tokens administers pei serve's API tokens where its data is (pei
// token), running or not: each call opens the server's database and
// closes it.
type Tokens struct {
	DataDir  string
	Database string    // as Config.Database
	Log      io.Writer // what preparing the data directory says
}

func (a Tokens) open(ctx context.Context) (*store.Store, error) {
	if a.Database == "" {
		// Often an admin's first command: the data directory it makes is
		// the server's, private to its user.
		log := a.Log
		if log == nil {
			log = io.Discard
		}
		if err := PrepareDataDir(a.DataDir, log); err != nil {
			return nil, err
		}
	}
	return store.Open(ctx, dsn(a.DataDir, a.Database))
}

// Create stores a new token and returns it with its secret, which is
// shown this once. A grant api.CheckGrant refuses is refused before
// anything is opened or made.
func (a Tokens) Create(ctx context.Context, t store.Token) (store.Token, string, error) {
	if err := api.CheckGrant(t.Namespaces, t.Scopes); err != nil {
		return store.Token{}, "", err
	}
	st, err := a.open(ctx)
	if err != nil {
		return store.Token{}, "", err
	}
	defer st.Close()
	return st.CreateToken(ctx, t)
}

// List lists every token, never their secrets.
func (a Tokens) List(ctx context.Context) ([]store.Token, error) {
	st, err := a.open(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.Tokens(ctx)
}

// Revoke revokes the token with id.
func (a Tokens) Revoke(ctx context.Context, id string) error {
	st, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.RevokeToken(ctx, id)
}
