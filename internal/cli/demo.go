package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/demo"
	"github.com/deploywatch/deploywatch/internal/verify"
	"github.com/deploywatch/deploywatch/internal/watch"
	"github.com/deploywatch/deploywatch/internal/wire"
)

func (a *app) demoCommand() *cobra.Command {
	var (
		fast      bool
		reportDir string
		addr      string
		output    string
	)
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole story on this machine: a good deploy, then a bad one rolled back",
		Long: `demo starts an example service (built on deploywatch's health and httpmetrics
packages) with its own traffic, and deploywatch's embedded metrics engine
scraping it. It then deploys a good release, which ends stable, and a bad
one (errors and slow responses), which deploywatch detects and rolls back
to the version recorded at its start. Nothing else needs to be installed:
it is a real run of the same engine as 'deploywatch run'.

It exits 0 when both deploys ended as they should.`,
		Example: `  deploywatch demo
  deploywatch demo --fast --report-dir ./reports   # ~20s; one JSON report per deploy`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usagef("--output %q: want text or json", output)
			}
			t := demo.Normal
			if fast {
				t = demo.Fast
			}
			return a.demo(cmd.Context(), t, reportDir, addr, output)
		},
	}
	c.Flags().BoolVar(&fast, "fast", false, "short windows: the whole demo in about 20 seconds")
	c.Flags().StringVar(&reportDir, "report-dir", "", "write the config and one JSON report per deploy here (default: a new temporary folder)")
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "where the example service listens")
	c.Flags().StringVarP(&output, "output", "o", "text", "progress format: text, or json (one event per line)")
	return c
}

func (a *app) demo(ctx context.Context, t demo.Timings, reportDir, addr, output string) error {
	log, err := a.logger()
	if err != nil {
		return err
	}
	if reportDir == "" {
		if reportDir, err = os.MkdirTemp("", "deploywatch-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(reportDir, 0o755); err != nil {
		return usagef("--report-dir: %v", err)
	}
	svc, err := demo.Start(addr, demo.Stable, t.RPS)
	if err != nil {
		return usagef("--addr: %v", err)
	}
	defer svc.Close()

	cfgPath := filepath.Join(reportDir, "deploywatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(demo.Config(svc.Addr, t)), 0o644); err != nil {
		return err
	}
	cfg, err := config.LoadFile(cfgPath)
	if err != nil {
		return fmt.Errorf("the demo's own config: %w", err)
	}
	src, err := wire.EmbeddedSource(cfg.Metrics.Embedded, log)
	if err != nil {
		return usageIfConfig(err)
	}
	stopScraping := src.Start()
	defer stopScraping()

	w := a.stdout
	text := output == "text"
	say := func(format string, args ...any) {
		if text {
			fmt.Fprintf(w, format+"\n", args...)
		}
	}
	base := "http://" + svc.Addr
	say("deploywatch demo: the example service %s runs %s at %s, with its own traffic.", cfg.Service, demo.Stable.Version, base)
	say("While it runs, try:  curl %s/health/info   or   ./examples/smoke-tests.sh %s", base, base)
	say("Config: %s\n", cfgPath)

	platform := demo.NewPlatform(svc, demo.Stable, demo.Good, demo.Bad)
	steps := []struct {
		rel  demo.Release
		what string
		want watch.Verdict
	}{
		{demo.Good, "a good release", watch.Stable},
		{demo.Bad, "a bad release: 12% errors and 3x slower", watch.Failed},
	}
	ok := true
	var reports []string
	for i, step := range steps {
		say("── %d/%d: deploying %s, %s ──", i+1, len(steps), step.rel.Version, step.what)
		pr := newPrinter(w, output, a.env)
		cl, err := verify.New(cfg, verify.Sources{Metrics: src}, a.env)
		if err != nil {
			return err
		}
		eng := watch.New(watch.SpecFor(cfg), src, platform, watch.WithObserver(pr), watch.WithLogger(log),
			watch.WithAbort(a.abort), watch.WithChecklist(cl))
		rep := eng.Run(ctx, watch.Request{Version: step.rel.Version, RunDeploy: true, TriggeredBy: "deploywatch demo"})
		pr.close()
		path := filepath.Join(reportDir, fmt.Sprintf("%d-%s.json", i+1, step.rel.Version))
		if err := rep.WriteFile(path); err != nil {
			return err
		}
		reports = append(reports, path)
		if ctx.Err() != nil {
			return &exitError{code: ExitInconclusive}
		}
		rolledBack := rep.Rollback != nil && rep.Rollback.Performed && rep.Rollback.OK
		switch {
		case rep.Verdict != step.want:
			ok = false
			say("✗ %s ended %s; the demo expected %s", step.rel.Version, rep.Verdict, step.want)
		case step.want == watch.Failed && !rolledBack:
			ok = false
			say("✗ %s failed but was not rolled back", step.rel.Version)
		case step.want == watch.Failed:
			say("✓ %s was caught and rolled back to %s; %s serves again.\n", step.rel.Version, rep.Rollback.Revision, svc.Running().Version)
		default:
			say("✓ %s is stable.\n", step.rel.Version)
		}
	}
	say("Reports (the JSON of --report):")
	for _, r := range reports {
		say("  %s", r)
	}
	say(`
Next: point the same config at a real Prometheus (metrics.prometheus.url) and
your own deploy/rollback commands (target.command), then:
  deploywatch run -f deploywatch.yaml --version "$GITHUB_SHA" -- ./deploy.sh "$GITHUB_SHA"`)
	if !ok {
		return &exitError{code: ExitFailed}
	}
	return nil
}
