package buildkit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/engine"
	"github.com/pei-dev/pei/internal/image"
)

// Base is a base image held in an OCI layout that BuildKit reads through
// the client's session, so no registry is needed.
type Base struct {
	Ref      string // as the config names it
	StoreID  string // the OCI store's id in the solve
	Dir      string // the OCI layout holding it, when not pei's store
	Manifest string // manifest digest, sha256:...
	Config   ocispecs.Image
}

// BaseStore is an OCI layout directory that caches base images.
type BaseStore struct {
	Dir string
	// NoEngine keeps the local Docker engine out: a tenant's build on a
	// pei worker takes bases from the store (Debian bases made by pei
	// base) or a registry with the submitter's credentials, never from
	// images the worker's host happens to hold, which may be private.
	NoEngine bool
}

// StoreID is the id under which the store is given to BuildKit.
const StoreID = "pei-bases"

// RefAnnotation names an image in the store's index.
const RefAnnotation = image.RefAnnotation

// Resolve finds a base: an image the store holds under that name (put there
// by 'pei base', so no Docker engine is needed), else the engine's image.
func (s BaseStore) Resolve(ctx context.Context, ref string, p ocispecs.Platform) (Base, error) {
	if b, ok, err := s.Lookup(ref, p); err != nil || ok {
		return b, err
	}
	if s.NoEngine {
		// Callers say the image is not in the store; this says why the
		// engine was not asked.
		return Base{}, errors.New("a build for pei serve never takes images from the worker's Docker engine")
	}
	return s.FromEngine(ctx, ref, p)
}

// Lookup returns the newest image the store holds under ref for platform p.
func (s BaseStore) Lookup(ref string, plat ocispecs.Platform) (Base, bool, error) {
	p, err := layout.FromPath(s.Dir)
	if err != nil {
		return Base{}, false, nil // no store yet
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return Base{}, false, fmt.Errorf("base store %s: %w", s.Dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return Base{}, false, fmt.Errorf("base store %s: %w", s.Dir, err)
	}
	for i := len(m.Manifests) - 1; i >= 0; i-- {
		d := m.Manifests[i]
		if d.Annotations[RefAnnotation] != ref {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return Base{}, false, fmt.Errorf("base %s in %s: %w", ref, s.Dir, err)
		}
		b, err := baseOf(ref, img)
		if err != nil {
			return Base{}, false, err
		}
		if forPlatform(b.Config, plat) {
			return b, true, nil
		}
	}
	return Base{}, false, nil
}

// forPlatform says whether an image config is for platform p.
func forPlatform(cfg ocispecs.Image, p ocispecs.Platform) bool {
	return platforms.NewMatcher(p).Match(platforms.Normalize(cfg.Platform))
}

// Add writes an image into the store under ref.
func (s BaseStore) Add(ref string, img v1.Image) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	p, err := layout.FromPath(s.Dir)
	if err != nil {
		if p, err = layout.Write(s.Dir, empty.Index); err != nil {
			return fmt.Errorf("base store %s: %w", s.Dir, err)
		}
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{RefAnnotation: ref}))
}

// FromEngine copies an image from the local Docker engine into the store
// (once per image id) and returns it as a base.
func (s BaseStore) FromEngine(ctx context.Context, ref string, p ocispecs.Platform) (Base, error) {
	held, ok := engine.Inspect(ctx, ref)
	if !ok {
		return Base{}, fmt.Errorf("base image %s is not in the Docker engine (docker pull it, import it, or build it with pei)", ref)
	}
	id := held.ID
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return Base{}, err
	}
	marker := filepath.Join(s.Dir, "engine-"+strings.TrimPrefix(id, "sha256:")+".json")
	if b, err := os.ReadFile(marker); err == nil {
		var base Base
		if json.Unmarshal(b, &base) == nil && base.Manifest != "" {
			if _, err := os.Stat(filepath.Join(s.Dir, "blobs", "sha256", strings.TrimPrefix(base.Manifest, "sha256:"))); err == nil {
				base.Ref = ref
				return base, engineFor(ref, base, p)
			}
		}
	}
	img, done, err := image.FromEngine(ctx, ref, s.Dir)
	if err != nil {
		return Base{}, err
	}
	defer done()
	if err := s.Add("engine:"+ref, img); err != nil {
		return Base{}, fmt.Errorf("copy %s into %s: %w", ref, s.Dir, err)
	}
	base, err := baseOf(ref, img)
	if err != nil {
		return Base{}, err
	}
	b, _ := json.Marshal(base)
	if err := os.WriteFile(marker, b, 0o644); err != nil {
		return Base{}, err
	}
	return base, engineFor(ref, base, p)
}

// engineFor refuses an engine image built for another platform than p.
func engineFor(ref string, b Base, p ocispecs.Platform) error {
	if forPlatform(b.Config, p) {
		return nil
	}
	return fmt.Errorf("the Docker engine's %s is for %s, not %s (make one with pei base --platform %s, or name a registry image)",
		ref, platforms.Format(platforms.Normalize(b.Config.Platform)), platforms.Format(p), platforms.Format(p))
}

// baseOf describes img as a base named ref.
func baseOf(ref string, img v1.Image) (Base, error) {
	dgst, err := img.Digest()
	if err != nil {
		return Base{}, err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return Base{}, err
	}
	b := Base{Ref: ref, StoreID: StoreID, Manifest: dgst.String()}
	if err := json.Unmarshal(raw, &b.Config); err != nil {
		return Base{}, fmt.Errorf("config of %s: %w", ref, err)
	}
	return b, nil
}

// FromRegistry resolves a base in a registry (plain HTTP for localhost, as
// BuildKit itself does), for the daemon to pull by digest.
func FromRegistry(ctx context.Context, ref string, platform v1.Platform, kc authn.Keychain) (Base, error) {
	r, err := image.ParseRef(ref)
	if err != nil {
		return Base{}, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithPlatform(platform))
	if err != nil {
		return Base{}, err
	}
	b, err := baseOf(ref, img)
	if err != nil {
		return Base{}, err
	}
	b.Ref, b.StoreID = r.Context().Name()+"@"+b.Manifest, ""
	return b, nil
}

// FromLayout finds a base in an OCI image layout directory (the user's, not
// pei's store).
func FromLayout(dir string, ref config.LayoutRef, platform v1.Platform) (Base, error) {
	img, err := image.FromLayout(dir, ref.Path, ref.Tag, ref.Digest, platform)
	if err != nil {
		return Base{}, err
	}
	b, err := baseOf(ref.EngineName(), img)
	if err != nil {
		return Base{}, fmt.Errorf("OCI layout %s: %w", ref.Path, err)
	}
	sum := sha256.Sum256([]byte(dir))
	b.StoreID, b.Dir = "pei-layout-"+hex.EncodeToString(sum[:8]), dir
	return b, nil
}
