// Command serve measures pei serve.
//
// Throughput: the same random image (-layers layers of -layer-size) is
// pushed to and pulled from pei serve (with its token flow) and from
// Debian's docker-registry (distribution 2.8, no auth) on loopback, -rounds
// times each, alternating; it prints MB/s and the ratio pei/baseline.
//
// Load: -builds submissions at once from one tenant (a Dockerfile each,
// with distinct content) built by -workers real pei workers on one
// buildkitd, a share of them canceled right away, while -pollers clients
// ask for build status in a loop; it checks every build ends succeeded or
// canceled with its image in the registry, and prints the status
// latencies (p50, p99, max).
//
//	go run ./bench/serve [-layers 4] [-layer-size 64MB] [-rounds 3] [-builds 50] [-workers 2] [-pollers 16]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	units "github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pei-dev/pei/internal/api"
	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/client"
	"github.com/pei-dev/pei/internal/recipe"
	"github.com/pei-dev/pei/internal/service"
	"github.com/pei-dev/pei/internal/store"
	"github.com/pei-dev/pei/internal/worker"
)

func main() {
	layers := flag.Int("layers", 4, "layers per image")
	layerSize := flag.String("layer-size", "64MB", "bytes per layer")
	rounds := flag.Int("rounds", 3, "push+pull rounds per registry")
	builds := flag.Int("builds", 50, "concurrent submissions")
	workers := flag.Int("workers", 2, "pei workers")
	pollers := flag.Int("pollers", 16, "clients polling build status")
	cancelEvery := flag.Int("cancel-every", 5, "cancel every Nth submission right away")
	skipThroughput := flag.Bool("skip-throughput", false, "only the load test")
	flag.Parse()
	size, err := units.FromHumanSize(*layerSize)
	check(err)
	work, err := os.MkdirTemp("", "pei-bench-serve-")
	check(err)
	defer os.RemoveAll(work)

	pei := startPei(work)
	defer pei.close()
	if !*skipThroughput {
		throughput(work, pei, *layers, size, *rounds)
	}
	load(work, pei, *builds, *workers, *pollers, *cancelEvery)
}

type peiServer struct {
	srv    *service.Server
	hs     *http.Server
	host   string
	tenant string
	worker string
}

func startPei(work string) *peiServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	host := ln.Addr().String()
	lim := service.DefaultLimits
	lim.MaxActive = 1000
	lim.RequestsPerSec = 100000
	lim.Burst = 100000
	srv, err := service.New(context.Background(), service.Config{DataDir: filepath.Join(work, "pei"), PublicURL: "http://" + host, Limits: lim, Lease: 10 * time.Second})
	check(err)
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	_, tenant, err := srv.Store().CreateToken(context.Background(), store.Token{Name: "bench", Namespaces: []string{"bench"}, Scopes: []string{api.ScopePush, api.ScopeBuild}})
	check(err)
	_, wtok, err := srv.Store().CreateToken(context.Background(), store.Token{Name: "workers", Scopes: []string{api.ScopeWorker}})
	check(err)
	return &peiServer{srv: srv, hs: hs, host: host, tenant: tenant, worker: wtok}
}

func (p *peiServer) close() {
	p.hs.Close()
	p.srv.Close()
}

// startBaseline runs Debian's docker-registry with filesystem storage.
func startBaseline(work string) (string, func()) {
	bin, err := exec.LookPath("docker-registry")
	check(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	host := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(work, "registry.yml")
	check(os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: %s}
  cache: {blobdescriptor: inmemory}
  delete: {enabled: true}
http: {addr: %q}
`, filepath.Join(work, "baseline"), host)), 0o644))
	cmd := exec.Command(bin, "serve", cfg)
	check(cmd.Start())
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + host + "/v2/"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return host, func() { cmd.Process.Kill(); cmd.Wait() }
}

func throughput(work string, pei *peiServer, layers int, size int64, rounds int) {
	base, stop := startBaseline(work)
	defer stop()
	total := int64(layers) * size
	fmt.Printf("throughput: %d rounds of a %s image (%d layers), push then pull, loopback\n", rounds, units.HumanSize(float64(total)), layers)
	type result struct{ push, pull []float64 }
	res := map[string]*result{"pei serve": {}, "docker-registry 2.8": {}}
	auth := map[string]authn.Authenticator{"pei serve": &authn.Basic{Username: "bench", Password: pei.tenant}, "docker-registry 2.8": authn.Anonymous}
	hosts := map[string]string{"pei serve": pei.host, "docker-registry 2.8": base}
	for r := 0; r < rounds; r++ {
		img, err := random.Image(size, int64(layers))
		check(err)
		for _, which := range []string{"docker-registry 2.8", "pei serve"} {
			ref, err := name.ParseReference(fmt.Sprintf("%s/bench/img:r%d", hosts[which], r), name.Insecure)
			check(err)
			start := time.Now()
			check(remote.Write(ref, img, remote.WithAuth(auth[which])))
			push := time.Since(start)
			start = time.Now()
			got, err := remote.Image(ref, remote.WithAuth(auth[which]))
			check(err)
			ls, err := got.Layers()
			check(err)
			var wg sync.WaitGroup
			for _, l := range ls {
				wg.Add(1)
				go func(l v1.Layer) {
					defer wg.Done()
					rc, err := l.Compressed()
					check(err)
					io.Copy(io.Discard, rc)
					rc.Close()
				}(l)
			}
			wg.Wait()
			pull := time.Since(start)
			mb := float64(total) / 1e6
			res[which].push = append(res[which].push, mb/push.Seconds())
			res[which].pull = append(res[which].pull, mb/pull.Seconds())
		}
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	for _, which := range []string{"docker-registry 2.8", "pei serve"} {
		fmt.Printf("  %-20s push %7.1f MB/s   pull %7.1f MB/s   (medians; push %v, pull %v)\n", which, med(res[which].push), med(res[which].pull), round(res[which].push), round(res[which].pull))
	}
	b, p := res["docker-registry 2.8"], res["pei serve"]
	fmt.Printf("  ratio pei/baseline: push %.2fx, pull %.2fx\n", med(p.push)/med(b.push), med(p.pull)/med(b.pull))
}

func round(v []float64) []string {
	var out []string
	for _, x := range v {
		out = append(out, fmt.Sprintf("%.0f", x))
	}
	return out
}

func load(work string, pei *peiServer, n, nWorkers, nPollers, cancelEvery int) {
	state := filepath.Join(work, "state")
	d, err := buildkitd.Find(context.Background(), buildkitd.Options{Builder: "auto", StateDir: filepath.Join(state, "buildkit"), Network: buildkitd.Network{Isolate: true}})
	check(err)
	defer d.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < nWorkers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			worker.Run(ctx, worker.Options{Server: "http://" + pei.host, Token: pei.worker, Name: fmt.Sprintf("w%d", i), Builder: d.Addr, StateDir: state})
		}(i)
	}
	defer func() { cancel(); wg.Wait() }()

	c := client.New("http://"+pei.host, pei.tenant)
	recipes := make([][]byte, n)
	for i := range recipes {
		dir := filepath.Join(work, fmt.Sprintf("r%d", i))
		check(os.MkdirAll(dir, 0o755))
		check(os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY data /data\n"), 0o644))
		check(os.WriteFile(filepath.Join(dir, "data"), []byte(fmt.Sprintf("build %d %d\n", i, rand.Int64())), 0o644))
		var buf bytes.Buffer
		check(recipe.Pack(dir, nil, &buf))
		recipes[i] = buf.Bytes()
	}
	fmt.Printf("load: %d concurrent submissions, %d workers on one buildkitd, every %dth canceled at once, %d status pollers\n", n, nWorkers, cancelEvery, nPollers)
	ids := make([]string, n)
	start := time.Now()
	var swg sync.WaitGroup
	for i := 0; i < n; i++ {
		swg.Add(1)
		go func(i int) {
			defer swg.Done()
			b, err := c.Submit(context.Background(), client.SubmitOptions{Repo: "bench/load", Tag: fmt.Sprintf("b%d", i), Kind: "dockerfile", Dockerfile: "Dockerfile"}, bytes.NewReader(recipes[i]), int64(len(recipes[i])))
			check(err)
			ids[i] = b.ID
			if cancelEvery > 0 && i%cancelEvery == 0 {
				_, err := c.Cancel(context.Background(), "bench/load", b.ID)
				check(err)
			}
		}(i)
	}
	swg.Wait()
	submitted := time.Since(start)

	var lat []time.Duration
	var mu sync.Mutex
	var stopPoll atomic.Bool
	var pwg sync.WaitGroup
	for p := 0; p < nPollers; p++ {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for !stopPoll.Load() {
				id := ids[rand.IntN(n)]
				t0 := time.Now()
				_, err := c.Build(context.Background(), "bench/load", id)
				d := time.Since(t0)
				check(err)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	final := map[string]api.BuildView{}
	deadline := time.Now().Add(15 * time.Minute)
	for len(final) < n && time.Now().Before(deadline) {
		for _, id := range ids {
			if _, ok := final[id]; ok {
				continue
			}
			v, err := c.Build(context.Background(), "bench/load", id)
			check(err)
			if v.State.Done() {
				final[id] = v
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(start)
	stopPoll.Store(true)
	pwg.Wait()
	counts := map[string]int{}
	missing := 0
	auth := remote.WithAuth(&authn.Basic{Username: "bench", Password: pei.tenant})
	for i, id := range ids {
		v, ok := final[id]
		if !ok {
			counts["not ended"]++
			continue
		}
		counts[string(v.State)]++
		if v.State == api.Succeeded {
			ref, _ := name.ParseReference(fmt.Sprintf("%s/bench/load:b%d", pei.host, i), name.Insecure)
			desc, err := remote.Head(ref, auth)
			if err != nil || desc.Digest.String() != v.Digest {
				missing++
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	fmt.Printf("  all %d submitted in %.2f s; all ended in %.1f s: %v; succeeded builds whose image is missing or differs: %d\n", n, submitted.Seconds(), elapsed.Seconds(), counts, missing)
	fmt.Printf("  status requests under load: %d, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", len(lat), ms(pct(0.5)), ms(pct(0.99)), ms(lat[len(lat)-1]))
	if counts["not ended"] > 0 || counts[string(api.Failed)] > 0 || missing > 0 {
		fmt.Println("  LOST OR FAILED BUILDS")
		os.Exit(1)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
