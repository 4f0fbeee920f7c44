// Package cli wires deploywatch's commands. Everything takes its arguments
// and writers explicitly, so tests run the whole program in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
)

// Exit codes of deploywatch. They are a contract: scripts depend on them.
const (
	ExitStable       = 0
	ExitFailed       = 1
	ExitUsage        = 2
	ExitInconclusive = 3
)

// usageError is bad usage or a bad config: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }

// exitError carries a command's exit code, and the error to print unless
// the command already said what happened.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit %d", e.code)
}

// Option configures Run.
type Option func(*app)

// WithAbort gives Run a context that, when done, interrupts even a
// rollback in progress (a second Ctrl-C).
func WithAbort(ctx context.Context) Option { return func(a *app) { a.abort = ctx } }

// WithEnv replaces the environment lookup (tests).
func WithEnv(lookup func(string) (string, bool)) Option { return func(a *app) { a.env = lookup } }

// app is what every command shares.
type app struct {
	stdout, stderr io.Writer
	abort          context.Context
	env            func(string) (string, bool)
	logLevel       string
}

// Run runs deploywatch with args (without the program name) and returns
// the exit code. Cancelling ctx stops a watch cleanly.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...Option) int {
	a := &app{stdout: stdout, stderr: stderr, env: os.LookupEnv}
	for _, o := range opts {
		o(a)
	}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitStable
	}
	var exit *exitError
	if errors.As(err, &exit) {
		if exit.err != nil {
			fmt.Fprintf(stderr, "deploywatch: %v\n", exit.err)
		}
		return exit.code
	}
	var probs *config.Problems
	var ue *usageError
	switch {
	case errors.As(err, &probs):
		fmt.Fprintln(stderr, err)
		return ExitUsage
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "deploywatch: %v\n", err)
		return ExitUsage
	default:
		// Anything else is a runtime error: the watch could not be judged.
		fmt.Fprintf(stderr, "deploywatch: %v\n", err)
		return ExitInconclusive
	}
}

// usageArgs makes a cobra argument check's complaint a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return usagef("%v (see '%s --help')", err, c.CommandPath())
		}
		return nil
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "deploywatch",
		Short: "Watch a deployment, judge it against its baseline, roll it back when it is bad",
		Long: `deploywatch follows a deploy through its timeline (start, rollout, warm-up,
verify, monitor, stable), judges it on error rate, latency against the
pre-deploy baseline, traffic, CPU and memory, and rolls a bad release back
to the version that was running before it.

Exit codes: 0 stable, 1 failed (rolled back, paused or left, as on_failure
says), 2 bad usage or config, 3 inconclusive (could not judge).`,
		Example: `  # deploy and watch in one step
  deploywatch run -f deploywatch.yaml --version abc123 -- ./deploy.sh abc123

  # watch a deploy that kubectl/helm/CI already started
  deploywatch watch -f deploywatch.yaml --version abc123 --report report.json

  # check a config and print it with every default filled in
  deploywatch validate -f deploywatch.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without a Run of its own, cobra would report an unknown command
		// as an untyped error.
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", s[0])
			}
			return usagef("%s (see 'deploywatch --help')", msg)
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usagef("%v (see '%s --help')", err, c.CommandPath())
	})
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "warn", "operator log level on stderr: debug, info, warn, error")
	root.AddCommand(a.runCommand(), a.watchCommand(), a.validateCommand(), a.planCommand(), a.analyzeCommand(), a.backtestCommand(), a.rollbackCommand(), a.smokeCommand(), a.verifyCommand(), a.notifyCommand(), a.annotateCommand(), a.generateCommand(), a.demoCommand(), a.serveCommand(), a.versionCommand())
	return root
}

func (a *app) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", a.logLevel)
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// NotifyContexts returns a context cancelled by the first SIGINT or
// SIGTERM (stop watching, finish what must be finished) and one cancelled
// by the second (abort even a rollback). stop releases the signals.
func NotifyContexts() (soft, abort context.Context, stop func()) {
	soft, cancelSoft := context.WithCancel(context.Background())
	abort, cancelAbort := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-ch:
				n++
				if n == 1 {
					fmt.Fprintln(os.Stderr, "\ndeploywatch: stopping; a rollback in progress is finished first (interrupt again to abort it)")
					cancelSoft()
				} else {
					cancelAbort()
				}
			case <-done:
				return
			}
		}
	}()
	return soft, abort, func() {
		signal.Stop(ch)
		close(done)
		cancelSoft()
		cancelAbort()
	}
}
