package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHubConfigKey is where docker login keeps Docker Hub's credentials.
const dockerHubConfigKey = "https://index.docker.io/v1/"

// ParseRef parses an image reference for go-containerregistry, allowing
// plain HTTP for localhost registries as BuildKit does.
func ParseRef(ref string) (name.Reference, error) {
	opts := []name.Option{name.WeakValidation}
	if IsLocalhost(ref) {
		opts = append(opts, name.Insecure)
	}
	return name.ParseReference(ref, opts...)
}

// IsLocalhost reports whether a reference (or a bare host[:port]) names a
// loopback registry, which may be plain HTTP.
func IsLocalhost(ref string) bool {
	host, _, _ := strings.Cut(ref, "/")
	if strings.HasPrefix(host, "[::1]") {
		return true
	}
	host, _, _ = strings.Cut(host, ":")
	return host == "localhost" || strings.HasPrefix(host, "127.")
}

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

// Keychain gives go-containerregistry the credentials of LoadAuth's file
// (pei build hands buildkitd the same file).
func Keychain(cf *configfile.ConfigFile) authn.Keychain { return keychain{cf} }

type keychain struct{ cf *configfile.ConfigFile }

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	if host == "index.docker.io" {
		host = dockerHubConfigKey
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
