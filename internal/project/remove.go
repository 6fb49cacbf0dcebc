package project

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/plan"
)

// RemoveOptions configure Remove.
type RemoveOptions struct {
	Dir        string
	ConfigFile string
	Yes        bool // do not ask
	Volumes    bool // remove volumes too
	Lookup     config.LookupFunc
	In         io.Reader // answers to the confirmation
	Out        io.Writer // the listing and progress
	// Docker is the docker CLI to run; "" means "docker" on PATH.
	Docker string
}

// Remove deletes the project's containers (found by Compose's project
// label), the images its config names and, when asked, its volumes.
func Remove(ctx context.Context, opts RemoveOptions) error {
	cfg, err := loadConfig(LoadOptions{Policy: Local, Dir: opts.Dir, File: opts.ConfigFile, Lookup: opts.Lookup})
	if err != nil {
		return err
	}
	full := config.WithDefaults(cfg)
	name := plan.ProjectName(mustAbs(opts.Dir))
	docker := opts.Docker
	if docker == "" {
		docker = "docker"
	}
	run := func(args ...string) (string, error) {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, docker, args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	label := "label=com.docker.compose.project=" + name
	containers, err := run("ps", "-a", "--filter", label, "--format", "{{.Names}}")
	if err != nil {
		return err
	}
	var images []string
	names := []string{full.Stage2.Image.Output, full.Stage1.Image.Output}
	if f := full.Stage2.Final; f != nil {
		names = append([]string{f.Output}, names...)
	}
	for _, img := range names {
		if _, err := run("image", "inspect", "--format", "{{.Id}}", img); err == nil {
			images = append(images, img)
		}
	}
	var volumes string
	if opts.Volumes {
		if volumes, err = run("volume", "ls", "--filter", label, "--format", "{{.Name}}"); err != nil {
			return err
		}
	}
	list := func(what, items string) []string {
		var out []string
		for _, l := range strings.Split(items, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
				fmt.Fprintf(opts.Out, "  %s %s\n", what, l)
			}
		}
		return out
	}
	fmt.Fprintf(opts.Out, "project %q:\n", name)
	cs := list("container", containers)
	is := list("image", strings.Join(images, "\n"))
	vs := list("volume", volumes)
	if len(cs)+len(is)+len(vs) == 0 {
		fmt.Fprintln(opts.Out, "  nothing to remove")
		return nil
	}
	if !opts.Yes {
		fmt.Fprint(opts.Out, "remove these? [y/N] ")
		answer, _ := bufio.NewReader(opts.In).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(opts.Out, "nothing removed")
			return nil
		}
	}
	if len(cs) > 0 {
		if _, err := run(append([]string{"rm", "-f"}, cs...)...); err != nil {
			return err
		}
	}
	if len(is) > 0 {
		if _, err := run(append([]string{"rmi"}, is...)...); err != nil {
			return err
		}
	}
	if len(vs) > 0 {
		if _, err := run(append([]string{"volume", "rm"}, vs...)...); err != nil {
			return err
		}
	}
	fmt.Fprintf(opts.Out, "removed %d containers, %d images, %d volumes\n", len(cs), len(is), len(vs))
	return nil
}
