// Command build compares pei build with docker compose build of the files
// pei configure generates, on the same engine and machine, in one run:
// cold build, no-op rebuild, rebuild after editing one on_build script, and
// rebuild after editing one on_every_run script. It prints wall times, the
// ratio pei/compose, and how many apt and on_build steps each re-ran. pei
// runs twice: starting its own buildkitd per build (the default), and with a
// warm daemon ('pei builder start').
//
//	go run ./bench/build [-base debian:bookworm]
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
	"regexp"
	"strings"
	"time"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/project"
)

type result struct {
	dur   time.Duration
	reran int // steps that ran (not CACHED)
}

func main() {
	base := flag.String("base", "debian:bookworm", "base image in the Docker engine")
	flag.Parse()
	ctx := context.Background()
	work, err := os.MkdirTemp("", "pei-bench-")
	check(err)
	defer os.RemoveAll(work)

	scenarios := []string{"cold", "no-op rebuild", "edit one on_build script", "edit one on_every_run script", "second project, same base"}
	tools := []string{"docker compose build", "pei build", "pei build (warm daemon)"}
	results := map[string]map[string]result{}
	for i, tool := range tools {
		results[tool] = map[string]result{}
		dir := filepath.Join(work, fmt.Sprintf("project%d", i))
		makeProject(dir, *base, "pei-bench", "git curl", "make")
		state := filepath.Join(work, fmt.Sprintf("state%d", i))
		builder := "auto"
		switch tool {
		case "docker compose build":
			// A cold engine build cache, as pei gets a fresh buildkitd state.
			run("", "docker", "builder", "prune", "-af")
		case "pei build (warm daemon)":
			d, err := buildkitd.StartWarm(ctx, filepath.Join(state, "buildkit"))
			check(err)
			builder = d.Addr
			defer buildkitd.StopWarm(filepath.Join(state, "buildkit"))
		}
		for _, sc := range scenarios {
			switch sc {
			case "edit one on_build script":
				appendLine(filepath.Join(dir, "installation/stage-1/custom/my-build-2.sh"), "echo edited")
			case "edit one on_every_run script":
				appendLine(filepath.Join(dir, "installation/stage-1/custom/my-on-every-run-1.sh"), "echo edited")
			case "second project, same base":
				// Another project on a machine that has built one: the
				// base is unpacked and the engine (or pei's daemon) keeps
				// its cache; the on_build steps are new.
				dir = filepath.Join(work, fmt.Sprintf("second%d", i))
				makeProject(dir, *base, "pei-bench2", "jq less", "file")
			}
			var log bytes.Buffer
			start := time.Now()
			if tool != "docker compose build" {
				opts, err := build.Flags{Dir: dir, StateDir: state, Builder: builder, Progress: "plain", Getenv: os.Getenv, Lookup: os.LookupEnv}.Options()
				check(err)
				opts.Stderr = &log
				_, err = build.Build(ctx, opts)
				check(err)
			} else {
				_, err := project.Configure(project.ConfigureOptions{Policy: project.Local, Dir: dir})
				check(err)
				log.WriteString(run(dir, "docker", "compose", "--progress", "plain", "build", "stage-1"))
				log.WriteString(run(dir, "docker", "compose", "--progress", "plain", "build", "stage-2"))
			}
			results[tool][sc] = result{dur: time.Since(start), reran: reran(log.String())}
		}
		run("", "docker", "rmi", "-f", "pei-bench:stage-1", "pei-bench:stage-2", "pei-bench2:stage-1", "pei-bench2:stage-2")
	}
	fmt.Printf("| scenario | docker compose build | pei build | pei build, warm daemon | pei / compose | warm pei / compose | apt + on_build steps re-run (compose / pei / warm) |\n|---|---|---|---|---|---|---|\n")
	for _, sc := range scenarios {
		c, p, w := results[tools[0]][sc], results[tools[1]][sc], results[tools[2]][sc]
		fmt.Printf("| %s | %.2f s | %.2f s | %.2f s | %.2f× | %.2f× | %d / %d / %d |\n", sc, c.dur.Seconds(), p.dur.Seconds(), w.dur.Seconds(),
			p.dur.Seconds()/c.dur.Seconds(), w.dur.Seconds()/c.dur.Seconds(), c.reran, p.reran, w.reran)
	}
}

func makeProject(dir, base, name, pkgs1, pkgs2 string) {
	_, err := project.Create(project.CreateOptions{Dir: dir, Quick: "ssh", Base: base})
	check(err)
	cfg := filepath.Join(dir, "user_config.yml")
	b, err := os.ReadFile(cfg)
	check(err)
	s := strings.ReplaceAll(string(b), filepath.Base(dir)+":stage", name+":stage")
	s = strings.Replace(s, "      - 'stage-1/custom/my-build-1.sh'\n", "      - 'stage-1/custom/my-build-1.sh'\n      - 'stage-1/custom/my-build-2.sh'\n", 1)
	check(os.WriteFile(cfg, []byte(s), 0o644))
	// Real work in the build hooks: packages from the Debian mirror.
	check(os.WriteFile(filepath.Join(dir, "installation/stage-1/custom/my-build-1.sh"),
		[]byte("#!/bin/bash\nset -e\napt-get update\napt-get install -y --no-install-recommends "+pkgs1+"\n"), 0o755))
	check(os.WriteFile(filepath.Join(dir, "installation/stage-1/custom/my-build-2.sh"),
		[]byte("#!/bin/bash\nset -e\napt-get update\napt-get install -y --no-install-recommends "+pkgs2+"\n"), 0o755))
}

var stepRe = regexp.MustCompile(`(?m)^#(\d+) \[stage-\d[^\]]*\] (.*)$`)
var cachedRe = regexp.MustCompile(`(?m)^#(\d+) CACHED$`)

// reran counts the apt and on_build steps of plain progress logs that ran
// (were not cached). Compose names them by their RUN line, pei by title.
// Each solve numbers its steps from #1, so the log is split there.
func reran(log string) int {
	n := 0
	starts := solveStart.FindAllStringIndex(log, -1)
	for i, st := range starts {
		end := len(log)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		n += reranOne(log[st[0]:end])
	}
	return n
}

var solveStart = regexp.MustCompile(`(?m)^#1 \[`)

func reranOne(log string) int {
	cached := map[string]bool{}
	for _, m := range cachedRe.FindAllStringSubmatch(log, -1) {
		cached[m[1]] = true
	}
	seen := map[string]bool{}
	n := 0
	for _, m := range stepRe.FindAllStringSubmatch(log, -1) {
		if seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		name := m[2]
		isBuild := strings.Contains(name, "system.sh") || strings.Contains(name, "run-hook") ||
			strings.HasPrefix(name, "apt sources") || strings.HasPrefix(name, "on_build:")
		if isBuild && !cached[m[1]] {
			n++
		}
	}
	return n
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	check(err)
	fmt.Fprintln(f, line)
	check(f.Close())
}

func run(dir, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COMPOSE_BAKE=false")
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
