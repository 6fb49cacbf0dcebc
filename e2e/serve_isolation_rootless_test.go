package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/testenv"
)

// TestServeRootlessIsolation: a worker without root ('pei worker
// --builder auto' as an ordinary user) builds in rootlesskit's
// slirp4netns namespace: its steps reach Debian's mirror and the allowed
// address, not the host's loopback (directly or through slirp's gateway)
// nor its other addresses.
func TestServeRootlessIsolation(t *testing.T) {
	testenv.Root(t)
	testenv.Docker(t)
	testenv.Image(t, baseImage)
	testenv.BuildKit(t)
	testenv.Tools(t, "rootlesskit", "newuidmap", "slirp4netns", "runuser", "go", "ip")
	if _, err := runErr("", "id", rootlessUser); err != nil {
		run(t, "", "useradd", "-m", "-s", "/bin/bash", rootlessUser)
	}
	if b, _ := os.ReadFile("/etc/subuid"); !strings.Contains(string(b), rootlessUser+":") {
		run(t, "", "usermod", "--add-subuids", "300000-365535", "--add-subgids", "300000-365535", rootlessUser)
	}
	if out, err := runErr("", "runuser", "-u", rootlessUser, "--", "sh", "-c", "exec 3<>/dev/net/tun"); err != nil {
		testenv.Missing(t, "slirp4netns needs /dev/net/tun open to ordinary users (mode 0666, as Debian's udev sets it): "+out)
	}

	work, err := os.MkdirTemp("", "pei-rootless-iso-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	os.Chmod(work, 0o755)
	pei := filepath.Join(work, "pei")
	run(t, "..", "go", "build", "-o", pei, "./cmd/pei")

	// The user's base store holds the base (it cannot read the engine).
	cache := filepath.Join(work, "cache")
	seedBases(t, filepath.Join(cache, "pei"))
	run(t, "", "chown", "-R", rootlessUser+":", cache)

	e := startServe(t, nil)
	octet := os.Getpid()%250 + 1
	denied := netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", octet))
	allowedNet := netip.MustParsePrefix(fmt.Sprintf("198.19.%d.0/24", octet))
	allowed := allowedNet.Addr().Next()
	hostInterface(t, netip.PrefixFrom(denied, 32), netip.PrefixFrom(allowed, 32))
	loop := newCanary(t, "loopback", netip.MustParseAddr("127.0.0.1"), "")
	// slirp4netns's gateway is the host; its loopback must stay out of reach.
	viaSlirp := &canary{name: "slirp-gateway", host: "10.0.2.2", port: loop.port, token: loop.token}
	cs := []*canary{loop, viaSlirp, newCanary(t, "host-address", denied, ""), newCanary(t, "allowed", allowed, "")}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runuser", "-u", rootlessUser, "--", "env", "-i", "HOME=/home/"+rootlessUser, "USER="+rootlessUser,
		"PATH=/usr/local/bin:/usr/bin:/bin", "XDG_CACHE_HOME="+cache, "PEI_TOKEN="+e.worker,
		pei, "worker", "--server", e.url, "--builder", "auto", "--once", "--name", "rootless",
		"--build-allow-net", allowedNet.String())
	var wlog bytes.Buffer
	cmd.Stdout, cmd.Stderr = &wlog, &wlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	dir, _ := smallProject(t, "  custom:\n    on_build: ['stage-1/custom/probe.sh']\n", map[string]string{
		"stage-1/custom/probe.sh": probeScript(randHex(t), cs, "tap0"),
	})
	b := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/rootless", Tag: "v1"}, dir)
	end, log := e.follow(e.alice, "team-a/rootless", b.ID)
	if err := <-exited; err != nil {
		t.Errorf("the rootless worker: %v\n%s", err, wlog.String())
	}
	if end.State != api.Succeeded || end.Worker != "workers/rootless" {
		t.Fatalf("probe build %s on %s: %s\n%s\nworker:\n%s", end.State, end.Worker, end.Error, log, wlog.String())
	}
	got := probes(log)
	t.Logf("probes: %q", got)
	for _, c := range cs {
		want := c.name == "allowed"
		if reached := strings.HasPrefix(got[c.name], "reached "+c.token); reached != want {
			t.Errorf("canary %s (%s:%d): reached %v (build said %q), want %v", c.name, c.host, c.port, reached, got[c.name], want)
		}
	}
	if loop.hits.Load() != 0 || cs[3].hits.Load() != 1 || cs[2].hits.Load() != 0 {
		t.Errorf("connections: loopback %d, host address %d, allowed %d", loop.hits.Load(), cs[2].hits.Load(), cs[3].hits.Load())
	}
	if !strings.HasPrefix(got["mirror"], "reached") {
		t.Errorf("apt-get update failed in the rootless build: %q\n%s", got["mirror"], log)
	}
}
