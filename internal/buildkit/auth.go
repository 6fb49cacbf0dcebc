package buildkit

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
)

// LoadAuth reads registry credentials the way docker and buildctl do: from
// $DOCKER_CONFIG/config.json, else ~/.docker/config.json (with credential
// helpers). dockerConfig is $DOCKER_CONFIG, possibly "".
func LoadAuth(dockerConfig string) (*configfile.ConfigFile, error) {
	dir := dockerConfig
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return configfile.New(""), nil // no home: no credentials
		}
		dir = filepath.Join(home, ".docker")
	}
	cf, err := config.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %w (fix the file or point DOCKER_CONFIG elsewhere)", err)
	}
	return cf, nil
}

// authSession gives buildkitd the client's credentials for pulls and pushes.
func authSession(cf *configfile.ConfigFile) session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: authprovider.LoadAuthConfig(cf),
	})
}

// Keychain gives go-containerregistry the same credentials as LoadAuth's
// file gives buildkitd.
func Keychain(cf *configfile.ConfigFile) authn.Keychain { return keychain{cf} }

type keychain struct{ cf *configfile.ConfigFile }

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	if host == "index.docker.io" {
		host = authprovider.DockerHubConfigfileKey
	}
	ac, err := k.cf.GetAuthConfig(host)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", r.RegistryStr(), err)
	}
	if ac == (types.AuthConfig{ServerAddress: ac.ServerAddress}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      ac.Username,
		Password:      ac.Password,
		Auth:          ac.Auth,
		IdentityToken: ac.IdentityToken,
		RegistryToken: ac.RegistryToken,
	}), nil
}
