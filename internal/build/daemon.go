package build

import (
	"context"
	"fmt"
	"path/filepath"

	bkclient "github.com/moby/buildkit/client"

	"github.com/pei-dev/pei/internal/buildkitd"
)

// Daemon says which BuildKit daemon a build runs on and where pei keeps
// its state.
type Daemon struct {
	// Builder is "auto" (or "": a warm daemon, else one pei starts for
	// the build and stops after it) or an address (unix://, tcp://).
	Builder string
	// StateDir holds a started buildkitd and the base-image store; ""
	// means the user's cache directory (StateDir).
	StateDir string
	// Network is where build steps may connect (a daemon pei starts is
	// set up so; another must isolate steps itself). With Isolate and not
	// HostAllowed, the daemon is checked to isolate steps, and a plan
	// that needs the host's network is refused.
	Network buildkitd.Network
}

// conn is a connected daemon.
type conn struct {
	client *bkclient.Client
	state  string // the resolved StateDir
	noHost bool   // steps must not have the host's network
	close  func()
}

// connect finds or starts the daemon and connects to it; close stops a
// daemon it started.
func (d Daemon) connect(ctx context.Context) (*conn, error) {
	state, err := StateDir(d.StateDir)
	if err != nil {
		return nil, err
	}
	daemon, err := buildkitd.Find(ctx, buildkitd.Options{Builder: d.Builder, StateDir: filepath.Join(state, "buildkit"), Network: d.Network})
	if err != nil {
		return nil, err
	}
	c, err := bkclient.New(ctx, daemon.Addr)
	if err != nil {
		daemon.Stop()
		return nil, fmt.Errorf("connect to buildkitd at %s: %w", daemon.Addr, err)
	}
	cn := &conn{client: c, state: state, noHost: d.Network.Isolate && !d.Network.HostAllowed,
		close: func() { c.Close(); daemon.Stop() }}
	if cn.noHost {
		if err := daemon.CheckIsolated(ctx, c); err != nil {
			cn.close()
			return nil, err
		}
	}
	return cn, nil
}
