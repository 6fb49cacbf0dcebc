package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pei-dev/pei/internal/build"
	"github.com/pei-dev/pei/internal/buildkitd"
	"github.com/pei-dev/pei/internal/config"
)

func newBuildCmd() *cobra.Command {
	var opts build.Flags
	cmd := &cobra.Command{
		Use:   "build -p DIR",
		Short: "Build the project's images with BuildKit (no Docker daemon or root needed)",
		Long: `Build configures the project, turns its plan into BuildKit LLB (one cached
step per apt/user block and per on_build script, run-time hooks last) and
builds it on a BuildKit daemon: the one given by --builder or BUILDKIT_HOST,
or one pei starts for the build (as root directly, otherwise rootless under
rootlesskit) and stops afterwards.

The image reference and manifest digest go to stdout, one line per image;
progress goes to stderr. Timestamps in the image are clamped to
SOURCE_DATE_EPOCH (or the project's last git commit) for reproducible digests.`,
		Example: `  pei build -p ./my-env                                   # load both stages into Docker
  pei build -p ./my-env --output type=oci,dest=image.tar
  pei build -p ./my-env --push 127.0.0.1:5000/my-env:latest --insecure-registry
  SOURCE_DATE_EPOCH=0 pei build -p ./my-env --stage 1 --progress plain`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Lookup, opts.Getenv = os.LookupEnv, os.Getenv
			bo, err := opts.Options()
			if err != nil {
				return err
			}
			bo.Stderr = cmd.ErrOrStderr()
			results, err := build.Build(cmd.Context(), bo)
			if err != nil {
				return err
			}
			for _, r := range results {
				fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", r.Ref, r.Manifest)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Dir, "project-dir", "p", ".", "project directory")
	f.StringVarP(&opts.ConfigFile, "config", "c", config.DefaultFile, "config file, relative to the project directory")
	f.StringVar(&opts.Stage, "stage", "all", "stage to build: 1, 2, final (stage_2.final), all, or NAME of an image under compose")
	f.StringVar(&opts.Builder, "builder", "auto", "BuildKit daemon: auto, unix:///path.sock or tcp://host:port")
	f.StringVar(&opts.Output, "output", "type=docker", "type=docker | type=oci,dest=FILE | type=registry,ref=REF")
	f.StringVar(&opts.Push, "push", "", "push the final image to REF (same as --output type=registry,ref=REF)")
	f.BoolVar(&opts.Insecure, "insecure-registry", false, "allow plain HTTP to the registry (e.g. localhost)")
	f.StringArrayVar(&opts.Secrets, "secret", nil, "build secret for on_build scripts: id=ID,env=VAR or id=ID,src=FILE (at /run/secrets/ID)")
	f.BoolVar(&opts.NoCache, "no-cache", false, "do not use cached steps")
	f.StringArrayVar(&opts.CacheFrom, "cache-from", nil, "import build cache: type=local,src=DIR or type=registry,ref=REF")
	f.StringArrayVar(&opts.CacheTo, "cache-to", nil, "export build cache: type=local,dest=DIR[,mode=max] or type=registry,ref=REF[,mode=max] or type=inline")
	f.StringVar(&opts.Platform, "platform", "", "target platforms, e.g. linux/arm64 or linux/amd64,linux/arm64 (one image index; foreign ones need QEMU emulation)")
	f.StringVar(&opts.Progress, "progress", "auto", "progress output: auto, tty, plain, rawjson or quiet")
	return cmd
}

func newBaseCmd() *cobra.Command {
	var opts build.BaseFlags
	cmd := &cobra.Command{
		Use:   "base [REF]",
		Short: "Bootstrap a Debian base image without a registry (mmdebstrap)",
		Long: `Base makes a Debian base image with mmdebstrap (as root, or rootless with
uidmap and /etc/subuid entries) and keeps it in pei's base store, where
pei build finds it by name with no Docker engine and no registry. With the
same SOURCE_DATE_EPOCH (default: midnight UTC today) and mirror state it gives
the same digest. It prints REF@DIGEST.`,
		Example: `  pei base debian:bookworm
  pei base debian:trixie --variant minbase --load
  pei base debian:bookworm --platform linux/arm64
  SOURCE_DATE_EPOCH=1700000000 pei base debian:bookworm --oci bookworm.tar --push 127.0.0.1:5000/debian:bookworm`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Ref = args[0]
			}
			opts.Getenv = os.Getenv
			bo, err := opts.Options()
			if err != nil {
				return err
			}
			bo.Stderr = cmd.ErrOrStderr()
			ref, err := build.Base(cmd.Context(), bo)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Suite, "suite", "", "Debian suite (default: the tag of REF)")
	f.StringVar(&opts.Variant, "variant", "minbase", "mmdebstrap variant")
	f.StringVar(&opts.Platform, "platform", "", "image platform, e.g. linux/arm64 (a foreign one needs QEMU emulation); default the host's")
	f.StringVar(&opts.Mirror, "mirror", "", "Debian mirror (default http://deb.debian.org/debian)")
	f.BoolVar(&opts.Load, "load", false, "also load the image into the Docker engine")
	f.StringVar(&opts.Tar, "tar", "", "also write a docker-archive tarball to this file")
	f.StringVar(&opts.OCI, "oci", "", "also write an OCI layout tarball to this file")
	f.StringVar(&opts.Push, "push", "", "also push the image to this registry reference (plain HTTP for localhost)")
	return cmd
}

func newBuilderCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "builder start|stop|status",
		Short: "Keep a BuildKit daemon warm between builds",
		Long: `Builder starts a buildkitd that outlives pei (as root directly, otherwise
rootless), so that pei build does not start one per build; stop ends it;
status says whether one runs and where. The daemon's state is in
$XDG_CACHE_HOME/pei/buildkit.`,
		Example: `  pei builder start && pei build -p ./my-env && pei builder stop`,
	}
	daemonDir := func() (string, error) {
		dir, err := build.StateDir("")
		return filepath.Join(dir, "buildkit"), err
	}
	cmd.AddCommand(&cobra.Command{
		Use: "start", Short: "Start a warm buildkitd", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := daemonDir()
			if err != nil {
				return err
			}
			d, err := buildkitd.StartWarm(cmd.Context(), dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), d.Addr)
			return nil
		},
	}, &cobra.Command{
		Use: "stop", Short: "Stop the warm buildkitd", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := daemonDir()
			if err != nil {
				return err
			}
			ran, err := buildkitd.StopWarm(dir)
			if err == nil && !ran {
				fmt.Fprintln(cmd.ErrOrStderr(), "no warm buildkitd was running")
			}
			return err
		},
	}, &cobra.Command{
		Use: "status", Short: "Say whether a warm buildkitd runs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := daemonDir()
			if err != nil {
				return err
			}
			if d, ok := buildkitd.Running(dir); ok {
				fmt.Fprintln(cmd.OutOrStdout(), "running at", d.Addr)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), "not running")
			return nil
		},
	})
	return cmd
}
