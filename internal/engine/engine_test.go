package engine

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/pei-dev/pei/internal/testenv"
)

func TestSocket(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
		ok   bool
	}{
		{map[string]string{}, "/var/run/docker.sock", true},
		{map[string]string{"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, "/run/user/1000/docker.sock", true},
		{map[string]string{"DOCKER_HOST": "tcp://127.0.0.1:2375"}, "", false},
		{map[string]string{"DOCKER_HOST": "ssh://me@host"}, "", false},
		{map[string]string{"DOCKER_CONTEXT": "remote"}, "", false},
	} {
		got, ok := socket(func(k string) string { return tc.env[k] })
		if got != tc.want || ok != tc.ok {
			t.Errorf("socket(%v) = %q, %v; want %q, %v", tc.env, got, ok, tc.want, tc.ok)
		}
	}
	if got := escapePath("reg.example:5000/team/app:v1"); got != "reg.example:5000/team/app:v1" {
		t.Errorf("escapePath kept %q", got)
	}
	if got := escapePath("a/b c?d"); got != "a/b%20c%3Fd" {
		t.Errorf("escapePath = %q", got)
	}
}

// The API answer and the docker CLI's agree, for a name the engine has
// and one it has not.
func TestInspect(t *testing.T) {
	testenv.Docker(t)
	const ref = "debian:bookworm"
	testenv.Image(t, ref)
	img, ok := Inspect(t.Context(), ref)
	if !ok {
		t.Fatalf("Inspect(%s): not found", ref)
	}
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{json .Id}} {{json .RootFS.Layers}} {{json .Architecture}}", ref).Output()
	if err != nil {
		t.Fatal(err)
	}
	var id, arch string
	var layers []string
	dec := json.NewDecoder(bytes.NewReader(out))
	if dec.Decode(&id) != nil || dec.Decode(&layers) != nil || dec.Decode(&arch) != nil {
		t.Fatalf("docker image inspect: %s", out)
	}
	if img.ID != id || len(img.Layers) != len(layers) || img.Layers[0] != layers[0] || img.Architecture != arch || img.OS != "linux" {
		t.Errorf("Inspect = %+v; the CLI says %s %v %s", img, id, layers, arch)
	}
	if _, ok := Inspect(t.Context(), "pei-no-such-image:nowhere"); ok {
		t.Errorf("Inspect found an image that does not exist")
	}
}
