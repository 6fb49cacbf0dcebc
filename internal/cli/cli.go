package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pei-dev/pei/internal/config"
	"github.com/pei-dev/pei/internal/project"
)

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// NewRootCmd builds the pei command tree.
func NewRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pei",
		Short: "Reproducible container images from one declarative file",
		Long: `pei turns one declarative file, user_config.yml, into container images:
Dockerfiles, a docker-compose.yml and in-image scripts for SSH users, proxies,
apt mirrors, environment, ports, GPU, switchable storage and lifecycle hooks.
It reads PeiDocker's user_config.yml unchanged.`,
		Example: `  pei create -p ./my-env
  pei configure -p ./my-env
  cd my-env && docker compose build stage-1 && docker compose build stage-2 && docker compose up -d`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.AddCommand(newCreateCmd(), newConfigureCmd(), newBuildCmd(), newBaseCmd(), newBuilderCmd(), newInspectCmd(), newRemoveCmd(), newSchemaCmd(),
		newServeCmd(), newTokenCmd(), newWorkerCmd(), newSubmitCmd(), newCatalogCmd())
	return root
}

func newCreateCmd() *cobra.Command {
	var opts project.CreateOptions
	cmd := &cobra.Command{
		Use:   "create -p DIR",
		Short: "Scaffold a new project",
		Long: `Create writes a fully commented user_config.yml, an installation/ folder with
example hook scripts for both stages, and a .gitignore. It refuses to
overwrite an existing project unless --force is given.

Quick starts:
  minimal  no SSH server
  ssh      an SSH server with one user (the default)
  gpu      like ssh, with all NVIDIA GPUs reserved
  full     like ssh, with a root login and an extra host mount
PeiDocker's quick templates (its "minimal" is pei's ssh), on Ubuntu 24.04:
  cn-demo  aliyun apt mirror, sshd on 333, root login, a host data folder,
           me's home on a volume, pixi and uv from Chinese mirrors
  cn-dev   like cn-demo with the tuna mirror, sshd on 22 and a host proxy
           on port 7890 (not enabled)
  cn-ml    cn-dev on CUDA with GPUs and vision libraries`,
		Example: `  pei create -p ./my-env
  pei create -p ./my-env --quick minimal --base debian:bookworm-slim
  pei create -p ./my-env --quick cn-dev`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files, err := project.Create(opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created %d files in %s; edit %s/user_config.yml, then run: pei configure -p %s\n",
				len(files), opts.Dir, opts.Dir, opts.Dir)
			return nil
		},
	}
	cmd.Flags().StringVarP(&opts.Dir, "project-dir", "p", "", "project directory (created if missing)")
	cmd.Flags().StringVarP(&opts.Quick, "quick", "q", "ssh", "quick start: "+strings.Join(project.QuickModes, "|"))
	cmd.Flags().BoolVar(&opts.Force, "force", false, "overwrite the scaffold files of an existing project")
	cmd.Flags().StringVar(&opts.Base, "base", "", "base image of stage-1 (default: the quick start's, debian:bookworm for pei's)")
	_ = cmd.MarkFlagRequired("project-dir")
	return cmd
}

func newConfigureCmd() *cobra.Command {
	var opts project.ConfigureOptions
	cmd := &cobra.Command{
		Use:   "configure -p DIR",
		Short: "Validate user_config.yml and generate Dockerfiles, docker-compose.yml and scripts",
		Long: `Configure checks the project's config and reports every problem at once, as
FILE:LINE:COL: FIELD: message (exit status 2, nothing written). A valid config
gives stage-1.Dockerfile, stage-2.Dockerfile, docker-compose.yml and the
in-image scripts under installation/stage-N/internals/. Output is
deterministic: the same input gives byte-identical files.

${VAR} and ${VAR:-default} in the config are taken from pei's environment;
{{VAR}} is written through as ${VAR} for Compose to resolve at run time.`,
		Example: `  pei configure -p ./my-env
  pei configure -p ./my-env -c other_config.yml --with-merged`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Policy, opts.Lookup = project.Local, os.LookupEnv
			res, err := project.Configure(opts)
			if err != nil {
				return err
			}
			w := cmd.ErrOrStderr()
			fmt.Fprintf(w, "configured project %q in %s (%d files)\n", res.Plan.Name, opts.Dir, len(res.Files))
			for _, n := range res.Plan.Notes {
				fmt.Fprintf(w, "note: %s\n", n)
			}
			fmt.Fprintf(w, "build and start it:\n  cd %s && docker compose build stage-1 && docker compose build stage-2 && docker compose up -d\n", opts.Dir)
			return nil
		},
	}
	cmd.Flags().StringVarP(&opts.Dir, "project-dir", "p", ".", "project directory")
	cmd.Flags().StringVarP(&opts.ConfigFile, "config", "c", config.DefaultFile, "config file, relative to the project directory")
	cmd.Flags().BoolVar(&opts.FullCompose, "full-compose", false, "write Compose settings even where they equal Compose's defaults")
	cmd.Flags().BoolVar(&opts.WithMerged, "with-merged", false, "also write merged.Dockerfile, build-merged.sh and run-merged.sh")
	return cmd
}

func newRemoveCmd() *cobra.Command {
	var opts project.RemoveOptions
	cmd := &cobra.Command{
		Use:   "remove -p DIR",
		Short: "Remove the project's containers and images (and volumes with --volumes)",
		Long: `Remove lists the containers Compose made for the project and the images its
config names, asks for confirmation (unless -y), then removes them. Volumes
are removed only with --volumes.`,
		Example: `  pei remove -p ./my-env
  pei remove -p ./my-env -y --volumes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.In, opts.Out = cmd.InOrStdin(), cmd.ErrOrStderr()
			opts.Lookup = os.LookupEnv
			return project.Remove(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Dir, "project-dir", "p", ".", "project directory")
	cmd.Flags().StringVarP(&opts.ConfigFile, "config", "c", config.DefaultFile, "config file, relative to the project directory")
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&opts.Volumes, "volumes", false, "also remove the project's volumes (their data is lost)")
	return cmd
}

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of user_config.yml",
		Long: `Schema prints the JSON Schema of user_config.yml, for editors that complete
and check YAML (e.g. a '# yaml-language-server: $schema=...' comment).`,
		Example: `  pei schema > user_config.schema.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := config.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}
