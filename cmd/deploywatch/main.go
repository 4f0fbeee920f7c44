// Command deploywatch watches a deployment, judges it against its
// baseline, and rolls a bad release back. See internal/cli for the
// commands.
package main

import (
	"os"

	"github.com/deploywatch/deploywatch/internal/cli"
)

func main() {
	ctx, abort, stop := cli.NotifyContexts()
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, cli.WithAbort(abort))
	stop()
	os.Exit(code)
}
