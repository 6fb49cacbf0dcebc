package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pei-dev/pei/internal/inspect"
)

func newInspectCmd() *cobra.Command {
	var (
		f      inspect.Flags
		asJSON bool
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
			f.Image, f.Getenv = args[0], os.Getenv
			req, err := f.Request()
			if err != nil {
				return err
			}
			res, err := inspect.Run(cmd.Context(), req)
			if err != nil {
				return err
			}
			if err := res.Write(cmd.OutOrStdout(), asJSON); err != nil {
				return err
			}
			if req.Gate == nil || res.Report == nil {
				return nil
			}
			if len(res.Problems) > 0 {
				return errors.New("inspect --ci failed: " + strings.Join(res.Problems, "; "))
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "inspect --ci: pass")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.IntVar(&f.Top, "top", 10, "how many of the most wasteful paths to list")
	fl.StringArrayVar(&f.Secrets, "secret", nil, "a value (password, token) that must appear nowhere in the image")
	fl.StringArrayVar(&f.SecretEnvs, "secret-env", nil, "an environment variable whose value must appear nowhere in the image")
	fl.BoolVar(&f.CI, "ci", false, "exit 1 when a limit below is broken or a secret is found")
	fl.Float64Var(&f.MinEfficiency, "min-efficiency", 0, "with --ci: the lowest efficiency allowed (0..1)")
	fl.StringVar(&f.MaxWasted, "max-wasted", "", "with --ci: the most wasted bytes allowed, e.g. 20MB")
	fl.StringVar(&f.Compare, "compare", "", "show what changed from IMAGE to this image (files added, removed, changed)")
	fl.StringVar(&f.Platform, "platform", "", "the platform to take from a multi-platform image (default: the host's)")
	return cmd
}
