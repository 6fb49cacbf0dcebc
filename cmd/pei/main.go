// Command pei turns a user_config.yml into container images.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pei-dev/pei/internal/cli"
	"github.com/pei-dev/pei/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.NewRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			// One problem a line, as compilers report them.
			fmt.Fprintln(os.Stderr, errs)
			fmt.Fprintf(os.Stderr, "pei: %d problem(s) in the config; nothing was written\n", len(errs))
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "pei:", err)
		if errors.Is(err, config.ErrInvalid) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
