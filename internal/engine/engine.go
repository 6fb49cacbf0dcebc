// Package engine asks the local Docker engine what it holds. Lookups go
// straight to the Engine API on its unix socket: pei asks several times
// per build, and starting the docker CLI for each costs more than a no-op
// build itself. Engines behind other transports (tcp, ssh, contexts) are
// asked through the docker CLI.
package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Image is what the engine holds under a name.
type Image struct {
	ID           string   // config digest
	Layers       []string // diff ids, bottom first
	OS           string
	Architecture string
	Variant      string
}

// inspected is the part of GET /images/{name}/json and of
// 'docker image inspect' that pei reads.
type inspected struct {
	ID           string `json:"Id"`
	OS           string `json:"Os"`
	Architecture string
	Variant      string
	RootFS       struct{ Layers []string }
}

func (i inspected) image() Image {
	return Image{ID: i.ID, Layers: i.RootFS.Layers, OS: i.OS, Architecture: i.Architecture, Variant: i.Variant}
}

// Inspect says whether the engine holds name, and what it is.
func Inspect(ctx context.Context, name string) (Image, bool) {
	if sock, ok := socket(os.Getenv); ok {
		return inspectAPI(ctx, sock, name)
	}
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{json .}}", name).Output()
	if err != nil {
		return Image{}, false
	}
	var i inspected
	if json.NewDecoder(bytes.NewReader(out)).Decode(&i) != nil || i.ID == "" {
		return Image{}, false
	}
	return i.image(), true
}

// socket is the engine's unix socket, unless DOCKER_HOST or DOCKER_CONTEXT
// point elsewhere.
func socket(getenv func(string) string) (string, bool) {
	if getenv("DOCKER_CONTEXT") != "" {
		return "", false
	}
	host := getenv("DOCKER_HOST")
	if host == "" {
		return "/var/run/docker.sock", true
	}
	if path, ok := strings.CutPrefix(host, "unix://"); ok {
		return path, true
	}
	return "", false
}

func inspectAPI(ctx context.Context, sock, name string) (Image, bool) {
	client := http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
		Timeout: 30 * time.Second,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/images/"+escapePath(name)+"/json", nil)
	if err != nil {
		return Image{}, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return Image{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Image{}, false
	}
	var i inspected
	if err := json.NewDecoder(resp.Body).Decode(&i); err != nil || i.ID == "" {
		return Image{}, false
	}
	return i.image(), true
}

// escapePath escapes a name for the URL path, keeping its slashes: the
// engine's route takes the name with them.
func escapePath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
