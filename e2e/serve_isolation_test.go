package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/store"
	"github.com/pei-dev/pei/internal/testenv"
	"github.com/pei-dev/pei/internal/worker"
)

// canary is a TCP server on the worker host that a build must not reach
// (or, as a positive control, must): it answers with its token and counts
// the connections it took.
type canary struct {
	name  string
	host  string // as the build dials it
	port  int
	token string
	hits  atomic.Int32
}

// newCanary listens on ip (with zone, for a link-local address) until the
// test ends.
func newCanary(t *testing.T, name string, ip netip.Addr, zone string) *canary {
	t.Helper()
	hostport := net.JoinHostPort(ip.WithZone(zone).String(), "0")
	// A bridge's IPv6 link-local address stays tentative until a port is
	// up: bind to it all the same (IP_FREEBIND).
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1) }); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", hostport)
	if err != nil {
		t.Fatalf("canary %s on %s: %v", name, hostport, err)
	}
	c := &canary{name: name, host: ip.String(), port: ln.Addr().(*net.TCPAddr).Port, token: "CANARY-" + name + "-" + randHex(t)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.hits.Add(1)
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, c.token+"\n")
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return c
}

func randHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// hostInterface adds an interface of the test's own with the given
// addresses (addresses of the worker host that lead nowhere else), removed
// when the test ends. It is a bridge without ports: the kernel here may
// have no dummy interfaces.
func hostInterface(t *testing.T, addrs ...netip.Prefix) {
	t.Helper()
	name := fmt.Sprintf("pei-t%d", os.Getpid()%100000)
	run(t, "", "ip", "link", "add", name, "type", "bridge")
	t.Cleanup(func() { runErr("", "ip", "link", "delete", name) })
	for _, a := range addrs {
		run(t, "", "ip", "addr", "add", a.String(), "dev", name)
	}
	run(t, "", "ip", "link", "set", name, "up")
}

// probeScript tries each canary from a build step (bash's /dev/tcp, 5 s
// each) and Debian's mirror, printing one "PROBE name reached|failed"
// line for each.
func probeScript(nonce string, cs []*canary, dev string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/bash\n# %s\n", nonce)
	b.WriteString(`probe() {
  if out=$(timeout 5 bash -c "exec 3<>/dev/tcp/$2/$3 && head -c 80 <&3" 2>&1); then echo "PROBE $1 reached $out"; else echo "PROBE $1 failed"; fi
}
`)
	for _, c := range cs {
		host := c.host
		if strings.HasPrefix(host, "fe80:") {
			host += "%" + dev
		}
		fmt.Fprintf(&b, "probe %s %s %d\n", c.name, host, c.port)
	}
	b.WriteString(`start=$(date +%s%N)
if apt-get update >/tmp/apt.log 2>&1 && ! grep -q '^[WE]:' /tmp/apt.log; then echo "PROBE mirror reached in $(( ($(date +%s%N) - start) / 1000000 )) ms"; else echo "PROBE mirror failed"; tail -5 /tmp/apt.log; fi
cat /etc/resolv.conf
`)
	return b.String()
}

var probeLine = regexp.MustCompile(`PROBE (\S+) (reached|failed)(.*)`)

// probes reads a build log's PROBE lines: name -> the rest of the line.
func probes(log string) map[string]string {
	out := map[string]string{}
	for _, m := range probeLine.FindAllStringSubmatch(log, -1) {
		out[m[1]] = m[2] + m[3]
	}
	return out
}

// startWorkerOpts runs a worker with opt (server, token, log filled in)
// until the returned stop or the test's end.
func (e *serveEnv) startWorkerOpts(opt worker.Options) (stop func()) {
	opt.Server, opt.Token, opt.Log = e.url, e.worker, testLog{e.t}
	if opt.StateDir == "" {
		opt.StateDir = e.state
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := worker.Run(ctx, opt); err != nil && ctx.Err() == nil {
			e.t.Errorf("worker %s: %v", opt.Name, err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

func (e *serveEnv) token(name, ns string, scopes ...string) string {
	e.t.Helper()
	_, s, err := e.srv.Store().CreateToken(context.Background(), store.Token{Name: name, Namespaces: []string{ns}, Scopes: scopes})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// buildNets are the pei build bridges on the host.
func buildNets(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "pei-bk") {
			out = append(out, i.Name)
		}
	}
	return out
}

// TestServeBuildIsolation: a tenant's build steps reach the internet and
// what the admin allowed, but not the worker host (its loopback, its
// other addresses, the build bridge's gateway over IPv4 or IPv6); they
// get the host's network only in a namespace the admin opted in, and a
// tenant's cache mounts are its own.
func TestServeBuildIsolation(t *testing.T) {
	testenv.Root(t)
	testenv.Docker(t)
	testenv.BuildKit(t)
	testenv.Image(t, baseImage)
	testenv.Tools(t, "skopeo", "ip", "iptables")
	if _, err := os.Stat(filepath.Join(buildkitd.CNIBinDir, "bridge")); err != nil {
		testenv.Missing(t, "containernetworking-plugins is not installed")
	}
	e := startServe(t, nil)
	carol := e.token("carol", "team-c", api.ScopePush, api.ScopeBuild)
	tokens := map[string]string{"team-a": e.alice, "team-b": e.bob, "team-c": carol}
	for ns, tok := range tokens {
		run(t, "", "skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "x:"+tok, "docker-daemon:"+baseImage, "docker://"+e.host+"/"+ns+"/debian:bookworm")
	}

	// Addresses of the worker host: one no build may reach, one in a
	// network the admin allows (the positive control beside the mirror).
	octet := os.Getpid() % 250
	denied := netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", octet))
	allowedNet := netip.MustParsePrefix(fmt.Sprintf("198.19.%d.0/24", octet))
	allowed := allowedNet.Addr().Next()
	hostInterface(t, netip.PrefixFrom(denied, 32), netip.PrefixFrom(allowed, 32))

	t.Run("network", func(t *testing.T) {
		before := buildNets(t)
		d, err := buildkitd.Find(t.Context(), buildkitd.Options{Builder: "auto", StateDir: filepath.Join(t.TempDir(), "buildkit"),
			Network: buildkitd.Network{Isolate: true, Allow: []netip.Prefix{allowedNet}}})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Stop()
		bridge, subnet, ok := d.BuildNetwork()
		if !ok {
			t.Fatal("the isolated daemon has no build network")
		}
		gateway := subnet.Addr().Next()
		cs := []*canary{
			newCanary(t, "loopback", netip.MustParseAddr("127.0.0.1"), ""),
			newCanary(t, "host-address", denied, ""),
			newCanary(t, "gateway", gateway, ""),
			newCanary(t, "allowed", allowed, ""),
		}
		if docker0, err := net.InterfaceByName("docker0"); err == nil {
			if addrs, _ := docker0.Addrs(); len(addrs) > 0 {
				if p, err := netip.ParsePrefix(addrs[0].String()); err == nil && p.Addr().Is4() {
					cs = append(cs, newCanary(t, "docker0", p.Addr(), ""))
				}
			}
		}
		if br, err := net.InterfaceByName(bridge); err == nil {
			addrs, _ := br.Addrs()
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is6() && p.Addr().IsLinkLocalUnicast() {
					cs = append(cs, newCanary(t, "gateway-ipv6", p.Addr(), bridge))
				}
			}
		}
		stop := e.startWorkerOpts(worker.Options{Name: "iso-shared", Builder: d.Addr})
		defer stop()
		dir, _ := smallProject(t, "  custom:\n    on_build: ['stage-1/custom/probe.sh']\n", map[string]string{
			"stage-1/custom/probe.sh": probeScript(randHex(t), cs, "eth0"),
		})
		b := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/probe", Tag: "v1"}, dir)
		end, log := e.follow(e.alice, "team-a/probe", b.ID)
		if end.State != api.Succeeded {
			t.Fatalf("probe build %s: %s\n%s", end.State, end.Error, log)
		}
		got := probes(log)
		t.Logf("probes: %q", got)
		for _, c := range cs {
			want := c.name == "allowed"
			reached := strings.HasPrefix(got[c.name], "reached "+c.token)
			if reached != want || (c.hits.Load() > 0) != want {
				t.Errorf("canary %s (%s:%d): reached %v (build said %q, %d connections), want %v", c.name, c.host, c.port, reached, got[c.name], c.hits.Load(), want)
			}
		}
		if !strings.HasPrefix(got["mirror"], "reached") {
			t.Errorf("apt-get update failed in the isolated build: %q\n%s", got["mirror"], log)
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stop the daemon: %v", err)
		}
		if after := buildNets(t); len(after) > len(before) {
			t.Errorf("build networks left behind: %v (before: %v)", after, before)
		}
	})

	// The rest runs on workers that start a daemon per build, as
	// 'pei worker --builder auto' does; team-c is opted into the host's
	// network.
	loop := newCanary(t, "loopback", netip.MustParseAddr("127.0.0.1"), "")
	before := buildNets(t)
	autoState := t.TempDir()
	seedBases(t, autoState)
	stop := e.startWorkerOpts(worker.Options{Name: "iso-auto", Builder: "auto", StateDir: autoState, AllowNets: []netip.Prefix{allowedNet}, HostNetwork: []string{"team-c"}})

	dockerfile := func(t *testing.T, ns, repo, body string) (api.BuildView, string) {
		t.Helper()
		dir := dockerfileDir(t, map[string]string{"Dockerfile": "FROM " + e.host + "/" + ns + "/debian:bookworm\n" + body})
		b := e.submit(tokens[ns], client.SubmitOptions{Repo: ns + "/" + repo, Tag: "v1", Kind: "dockerfile", Dockerfile: "Dockerfile"}, dir)
		return e.follow(tokens[ns], ns+"/"+repo, b.ID)
	}

	t.Run("host network", func(t *testing.T) {
		hostRun := fmt.Sprintf("RUN --network=host bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && head -c 80 <&3' # %s\n", loop.port, randHex(t))
		// Refused for a namespace not opted in, with the reason in the log.
		end, log := dockerfile(t, "team-b", "hostnet", hostRun)
		if end.State != api.Failed || !strings.Contains(end.Error, "host's network") || !strings.Contains(log, "RUN --network=host") {
			t.Errorf("team-b's RUN --network=host: %s %q\n%s", end.State, end.Error, log)
		}
		if strings.Contains(log, loop.token) || loop.hits.Load() != 0 {
			t.Errorf("team-b's build reached the host's loopback:\n%s", log)
		}
		// A privileged step is never granted.
		end, log = dockerfile(t, "team-c", "insecure", "RUN --security=insecure true # "+randHex(t)+"\n")
		if end.State != api.Failed || !strings.Contains(end.Error, "privileged") {
			t.Errorf("RUN --security=insecure: %s %q\n%s", end.State, end.Error, log)
		}
		// A proxy at host.docker.internal needs the host's network.
		dir, _ := smallProject(t, "  proxy: {port: 3128, enable_globally: true}\n", nil)
		b := e.submit(e.alice, client.SubmitOptions{Repo: "team-a/proxied", Tag: "v1"}, dir)
		end, log = e.follow(e.alice, "team-a/proxied", b.ID)
		if end.State != api.Failed || !strings.Contains(end.Error, "host.docker.internal") || !strings.Contains(log, "may not use the host's network") {
			t.Errorf("a proxy at host.docker.internal: %s %q\n%s", end.State, end.Error, log)
		}
		// Positive control: the opted-in namespace gets it and reaches the
		// same server.
		end, log = dockerfile(t, "team-c", "hostnet", hostRun)
		if end.State != api.Succeeded || !strings.Contains(log, loop.token) || loop.hits.Load() != 1 {
			t.Errorf("team-c's RUN --network=host: %s %q, %d connections\n%s", end.State, end.Error, loop.hits.Load(), log)
		}
	})

	t.Run("cache mounts", func(t *testing.T) {
		// A pei project's on_build steps have apt's cache mounted; each
		// build says what it finds there and leaves its own token.
		tokenA, tokenB := "TOKEN-A-"+randHex(t), "TOKEN-B-"+randHex(t)
		project := func(ns, repo, token string) string {
			t.Helper()
			script := fmt.Sprintf("#!/bin/sh\n# %s\nf=/var/cache/apt/pei-e2e-canary\necho \"CACHE saw $(cat $f 2>/dev/null || echo nothing)\"\necho %s > $f\n", randHex(t), token)
			dir, _ := smallProject(t, "  custom:\n    on_build: ['stage-1/custom/cache.sh']\n", map[string]string{"stage-1/custom/cache.sh": script})
			b := e.submit(tokens[ns], client.SubmitOptions{Repo: ns + "/" + repo, Tag: "v1"}, dir)
			end, log := e.follow(tokens[ns], ns+"/"+repo, b.ID)
			if end.State != api.Succeeded {
				t.Fatalf("%s/%s: %s %s\n%s", ns, repo, end.State, end.Error, log)
			}
			m := regexp.MustCompile(`CACHE saw (\S+)`).FindStringSubmatch(log)
			if m == nil {
				t.Fatalf("%s/%s says nothing of its cache:\n%s", ns, repo, log)
			}
			return m[1]
		}
		project("team-a", "cache1", tokenA)
		if saw := project("team-b", "cache", tokenB); saw != "nothing" {
			t.Errorf("team-b's build found %q in its apt cache (team-a left %s)", saw, tokenA)
		}
		// Positive control: team-a's next build finds its own token.
		if saw := project("team-a", "cache2", tokenA); saw != tokenA {
			t.Errorf("team-a's second build found %q, want its own %s", saw, tokenA)
		}
		// A Dockerfile cannot name another tenant's cache, nor a local
		// build's; the same tenant's Dockerfile reaches its own.
		body := "RUN --mount=type=cache,id=var/cache/apt,target=/own --mount=type=cache,id=pei/ns/team-a/var/cache/apt,target=/a " +
			"--mount=type=cache,id=pei/var/cache/apt,target=/local sh -c 'for d in /own /a /local; do echo \"DCACHE $d $(cat $d/pei-e2e-canary 2>/dev/null || echo nothing)\"; done' # " + randHex(t) + "\n"
		seen := func(log string) map[string]string {
			out := map[string]string{}
			for _, m := range regexp.MustCompile(`DCACHE (/\S+) (\S+)`).FindAllStringSubmatch(log, -1) {
				out[m[1]] = m[2]
			}
			return out
		}
		end, log := dockerfile(t, "team-b", "dcache", body)
		if end.State != api.Succeeded {
			t.Fatalf("team-b's Dockerfile: %s\n%s", end.Error, log)
		}
		if got := seen(log); got["/own"] != tokenB || got["/a"] != "nothing" || got["/local"] != "nothing" {
			t.Errorf("team-b's Dockerfile cache mounts: %v (want its own %s, nothing of team-a's %s)\n%s", got, tokenB, tokenA, log)
		}
		end, log = dockerfile(t, "team-a", "dcache", body)
		if end.State != api.Succeeded {
			t.Fatalf("team-a's Dockerfile: %s\n%s", end.Error, log)
		}
		// The same step as team-b's: it must run again (BuildKit keys a
		// step without its cache ids), and see team-a's cache.
		if got := seen(log); got["/own"] != tokenA {
			t.Errorf("team-a's Dockerfile does not see its own cache: %v\n%s", got, log)
		}
	})

	stop()
	if after := buildNets(t); len(after) > len(before) {
		t.Errorf("the worker's daemons left build networks behind: %v (before: %v)", after, before)
	}
}
