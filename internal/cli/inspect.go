package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	units "github.com/docker/go-units"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/pei-dev/pei/internal/image"
	"github.com/pei-dev/pei/internal/inspect"
)

func newInspectCmd() *cobra.Command {
	var (
		asJSON, ci          bool
		minEff              float64
		maxWasted, platform string
		compare             string
		secrets, secretEnvs []string
		top                 int
	)
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show what every layer of an image costs, what is wasted, and any secret left in it",
		Long: `Inspect reads an image layer by layer and shows, per layer, its size, what
created it (pei names the config line), and the files it adds, changes and
removes; then the bytes written by one layer and overwritten or removed by a
later one (wasted), the efficiency (bytes in the final file system / bytes
written by all layers), and a secret scan of every file, the config and the
history: private keys, token shapes (GitHub, GitLab, AWS, Slack), and the
values given with --secret or --secret-env.

IMAGE is an OCI layout directory (or oci-layout://DIR[:TAG]), an OCI or
docker-archive tarball, docker://NAME for the Docker engine, registry://REF,
or a NAME tried in the engine first and then in a registry.

With --compare OTHER it shows instead what changed from IMAGE to OTHER:
the bottom layers they share, and the files added, removed and changed
(content, type, mode, owner or link target).

With --ci it exits 1 when the efficiency is under --min-efficiency, the
waste over --max-wasted, or a secret is found.`,
		Example: `  pei inspect my-env:stage-2
  pei inspect image.tar --json
  pei inspect my-env:stage-1 --compare my-env:stage-2
  pei inspect my-env:stage-2 --ci --min-efficiency 0.95 --max-wasted 20MB --secret-env ROOT_PASSWORD`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			gate := inspect.Gate{MinEfficiency: minEff, MaxWasted: -1}
			if maxWasted != "" {
				n, err := units.FromHumanSize(maxWasted)
				if err != nil {
					return fmt.Errorf("--max-wasted %q: give a size like 20MB: %w", maxWasted, err)
				}
				gate.MaxWasted = n
			}
			for _, name := range secretEnvs {
				v := os.Getenv(name)
				if v == "" {
					return fmt.Errorf("--secret-env %s: the variable is not set", name)
				}
				secrets = append(secrets, v)
			}
			opts := image.OpenOptions{}
			if platform != "" {
				p, err := v1.ParsePlatform(platform)
				if err != nil {
					return fmt.Errorf("--platform %q: %w", platform, err)
				}
				opts.Platform = *p
			}
			auth, err := image.LoadAuth(os.Getenv("DOCKER_CONFIG"))
			if err != nil {
				return err
			}
			opts.Keychain = image.Keychain(auth)
			img, done, err := image.Open(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			defer done()
			out := cmd.OutOrStdout()
			if compare != "" {
				other, odone, err := image.Open(cmd.Context(), compare, opts)
				if err != nil {
					return err
				}
				defer odone()
				c, err := inspect.Compare(args[0], img, compare, other)
				if err != nil {
					return fmt.Errorf("compare %s with %s: %w", args[0], compare, err)
				}
				if asJSON {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(c)
				}
				return inspect.WriteComparison(out, c, top)
			}
			r, err := inspect.Analyze(args[0], img, inspect.Options{Secrets: secrets, Top: top})
			if err != nil {
				return fmt.Errorf("inspect %s: %w", args[0], err)
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else if err := inspect.WriteText(out, r); err != nil {
				return err
			}
			if !ci {
				return nil
			}
			if problems := gate.Check(r); len(problems) > 0 {
				return errors.New("inspect --ci failed: " + strings.Join(problems, "; "))
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "inspect --ci: pass")
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.IntVar(&top, "top", 10, "how many of the most wasteful paths to list")
	f.StringArrayVar(&secrets, "secret", nil, "a value (password, token) that must appear nowhere in the image")
	f.StringArrayVar(&secretEnvs, "secret-env", nil, "an environment variable whose value must appear nowhere in the image")
	f.BoolVar(&ci, "ci", false, "exit 1 when a limit below is broken or a secret is found")
	f.Float64Var(&minEff, "min-efficiency", 0, "with --ci: the lowest efficiency allowed (0..1)")
	f.StringVar(&maxWasted, "max-wasted", "", "with --ci: the most wasted bytes allowed, e.g. 20MB")
	f.StringVar(&compare, "compare", "", "show what changed from IMAGE to this image (files added, removed, changed)")
	f.StringVar(&platform, "platform", "", "the platform to take from a multi-platform image (default: the host's)")
	return cmd
}
