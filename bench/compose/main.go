// Command compose compares assembling a three-language runtime (python3,
// nodejs, ruby from Debian) from prebuilt language images with pei's
// compose: (merge of the runtime base and three diffs, shared files merged,
// caches rebuilt) against building the same runtime with one Dockerfile, on
// the same engine and machine, in one run. It prints wall times, image
// sizes and the ratios pei/Dockerfile.
//
// The language images (dev base + one language each) are built first and
// not timed: they are what a catalog holds, built once per base. The
// Dockerfile build starts from an empty engine build cache, as a team
// without prebuilt images would; pei's assembly starts from an empty pei
// state directory (its BuildKit state included), so it copies the images
// out of the engine and unpacks them too.
//
//	go run ./bench/compose [-base debian:bookworm]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pei-dev/pei/internal/build"
)

var langs = []struct{ name, packages string }{
	{"python", "python3 python3-six"},
	{"node", "nodejs node-semver"},
	{"ruby", "ruby ruby-rainbow"},
}

func main() {
	base := flag.String("base", "debian:bookworm", "base image in the Docker engine (runtime and dev base)")
	flag.Parse()
	ctx := context.Background()
	work, err := os.MkdirTemp("", "pei-bench-compose-")
	check(err)
	defer os.RemoveAll(work)
	img := func(tag string) string { return "pei-bench-compose:" + tag }
	defer run("", "docker", "rmi", "-f", img("dev-base"), img("python"), img("node"), img("ruby"), img("runtime"), img("pair"), img("dockerfile"))

	prep := filepath.Join(work, "prep-state")
	project := func(tag, from, script string) {
		dir := filepath.Join(work, tag)
		write(filepath.Join(dir, "installation/stage-1/custom/"+tag+".sh"), "#!/bin/sh\nset -e\n"+script, 0o755)
		write(filepath.Join(dir, "user_config.yml"), fmt.Sprintf("stage_1:\n  image: {base: '%s', output: '%s'}\n  ssh: {enable: false}\n  custom: {on_build: ['stage-1/custom/%s.sh']}\n",
			from, img(tag), tag), 0o644)
		peiBuild(ctx, dir, prep, "")
	}
	const apt = "apt-get update\napt-get install -y --no-install-recommends "
	fmt.Fprintln(os.Stderr, "bench: building the dev base and the three language images (not timed)")
	project("dev-base", *base, apt+"file\n")
	var all []string
	for _, l := range langs {
		project(l.name, img("dev-base"), apt+l.packages+"\n")
		all = append(all, l.packages)
	}

	rt := filepath.Join(work, "rt")
	var layers strings.Builder
	for _, l := range langs {
		fmt.Fprintf(&layers, "      - diff: {lower: '%s', upper: '%s'}\n", img("dev-base"), img(l.name))
	}
	// pair: python and ruby only, for a second assembly on a warm state.
	pair := fmt.Sprintf("      - diff: {lower: '%s', upper: '%s'}\n      - diff: {lower: '%s', upper: '%s'}\n",
		img("dev-base"), img("python"), img("dev-base"), img("ruby"))
	write(filepath.Join(rt, "user_config.yml"), fmt.Sprintf("stage_1:\n  image: {base: '%s', output: '%s'}\n  ssh: {enable: false}\ncompose:\n"+
		"  runtime:\n    output: '%s'\n    layers:\n      - image: '%s'\n%s"+
		"  pair:\n    output: '%s'\n    layers:\n      - image: '%s'\n%s",
		*base, img("unused"), img("runtime"), *base, layers.String(), img("pair"), *base, pair), 0o644)

	fmt.Fprintln(os.Stderr, "bench: assembling with pei (empty state)")
	state := filepath.Join(work, "rt-state")
	start := time.Now()
	peiBuild(ctx, rt, state, "runtime")
	assemble := time.Since(start)
	start = time.Now()
	peiBuild(ctx, rt, state, "runtime")
	again := time.Since(start)
	start = time.Now()
	peiBuild(ctx, rt, state, "pair")
	pairTime := time.Since(start)

	df := filepath.Join(work, "df")
	// As a careful Dockerfile does: the downloaded packages and apt's lists
	// removed in the same step.
	write(filepath.Join(df, "Dockerfile"), fmt.Sprintf("FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends %s && apt-get clean && rm -rf /var/lib/apt/lists/*\n",
		*base, strings.Join(all, " ")), 0o644)
	fmt.Fprintln(os.Stderr, "bench: building the same runtime with one Dockerfile (empty engine build cache)")
	run("", "docker", "builder", "prune", "-af")
	start = time.Now()
	run(df, "docker", "build", "-q", "-t", img("dockerfile"), ".")
	dockerfile := time.Since(start)

	ps, ds := size(img("runtime")), size(img("dockerfile"))
	fmt.Printf("| | pei compose (3 prebuilt diffs) | one Dockerfile | pei / Dockerfile |\n|---|---|---|---|\n")
	fmt.Printf("| build, empty caches | %.2f s | %.2f s | %.2f× |\n", assemble.Seconds(), dockerfile.Seconds(), assemble.Seconds()/dockerfile.Seconds())
	fmt.Printf("| build again, nothing changed (pei) | %.2f s | | %.2f× |\n", again.Seconds(), again.Seconds()/dockerfile.Seconds())
	fmt.Printf("| another combination (python + ruby), same pei state | %.2f s | | %.2f× |\n", pairTime.Seconds(), pairTime.Seconds()/dockerfile.Seconds())
	fmt.Printf("| image size | %.1f MB | %.1f MB | %.2f× |\n", float64(ps)/1e6, float64(ds)/1e6, float64(ps)/float64(ds))
}

func peiBuild(ctx context.Context, dir, state, stage string) {
	f := build.Flags{Dir: dir, StateDir: state, Progress: "quiet", Stage: stage, Getenv: os.Getenv, Lookup: os.LookupEnv}
	if stage == "" {
		f.Stage = "1"
	}
	opts, err := f.Options()
	check(err)
	opts.Stderr = os.Stderr
	_, err = build.Build(ctx, opts)
	check(err)
}

func size(image string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(run("", "docker", "image", "inspect", "--format", "{{.Size}}", image)), 10, 64)
	check(err)
	return n
}

func write(path, content string, mode os.FileMode) {
	check(os.MkdirAll(filepath.Dir(path), 0o755))
	check(os.WriteFile(path, []byte(content), mode))
}

func run(dir, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=1")
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, io.MultiWriter(&b)
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n%s", name, strings.Join(args, " "), err, b.String())
		os.Exit(1)
	}
	return b.String()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
