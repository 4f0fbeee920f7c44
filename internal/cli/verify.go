package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/metrics/embedded"
	"github.com/deploywatch/deploywatch/internal/verify"
	"github.com/deploywatch/deploywatch/internal/watch"
	"github.com/deploywatch/deploywatch/internal/wire"
)

func (a *app) verifyCommand() *cobra.Command {
	var (
		file, version, output string
		kf                    kubeFlags
	)
	c := &cobra.Command{
		Use:   "verify -f deploywatch.yaml --version VERSION",
		Short: "Run the post-deploy checklist: ready, version, smoke tests, logs, metrics",
		Long: `verify runs the checklist of the config's verify section, the seed's
post-deploy checklist: the readiness URL answers 200 (and "ready"); the info
URL's version field equals --version; the smoke suite passes; the logs show
no more errors than in the same window before; the metrics flow (up is 1,
the request series exist). An item whose inputs are not configured, or that
cannot run here, is skipped, never failed.

Exit 0 when no item failed, 1 when one did, 2 for a bad config.`,
		Example: `  deploywatch verify -f deploywatch.yaml --version "$GITHUB_SHA"`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usagef("--output %q: want text or json", output)
			}
			cfg, err := config.LoadFile(file)
			if err != nil {
				return err
			}
			return a.verify(cmd.Context(), cfg, kf, version, output)
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().StringVar(&version, "version", "", "the version that must be running; default $GITHUB_SHA or $CI_COMMIT_SHA")
	c.Flags().StringVarP(&output, "output", "o", "text", "text, or json")
	registerKubeFlags(c, &kf)
	return c
}

func (a *app) verify(ctx context.Context, cfg *config.Config, kf kubeFlags, version, output string) error {
	for _, env := range []string{"GITHUB_SHA", "CI_COMMIT_SHA"} {
		if version == "" {
			version, _ = a.env(env)
		}
	}
	log, err := a.logger()
	if err != nil {
		return err
	}
	var src watch.Querier
	if cfg.Metrics != nil {
		if src, err = wire.Source(ctx, cfg, a.env, log); err != nil {
			return usageIfConfig(err)
		}
		if es, ok := src.(*embedded.Source); ok {
			// The embedded engine starts empty: scrape a few times first.
			stopScraping := es.Start()
			defer stopScraping()
			select {
			case <-ctx.Done():
			case <-time.After(3 * cfg.Metrics.ScrapeInterval.D()):
			}
		}
	}
	var logs verify.LogSource
	if cfg.Target.Kubernetes != nil && cfg.Verify != nil && cfg.Verify.Logs != nil {
		t, err := wire.KubeTarget(ctx, cfg, kf, nil, nil)
		if err != nil {
			return usageIfConfig(err)
		}
		defer t.Close()
		logs = t
	}
	// Standalone, nothing waits for a new version to come up.
	cl, err := verify.New(cfg, verify.Sources{Metrics: src, Logs: logs}, a.env, verify.WithMetricsWait(0))
	if err != nil {
		return err
	}
	// Standalone, "since the deploy" is the last logs window, compared
	// with the window before it.
	window := 5 * time.Minute
	if cfg.Verify != nil && cfg.Verify.Logs != nil {
		window = cfg.Verify.Logs.Window.D()
	}
	d := watch.Deploy{Service: cfg.Service, Environment: cfg.Environment, Version: version, StartedAt: time.Now().Add(-window)}
	cl.Before(ctx, d)
	items := slices.Collect(cl.Run(ctx, d))
	if len(items) == 0 {
		return usagef("nothing to verify: add a verify section (or metrics) to %s", cfg.Path)
	}
	failed := 0
	for _, it := range items {
		if it.Outcome == watch.OutcomeFailed {
			failed++
		}
	}
	if output == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"ok": failed == 0, "items": items}); err != nil {
			return err
		}
	} else {
		for _, it := range items {
			mark := map[watch.Outcome]string{watch.OutcomePassed: "✓", watch.OutcomeFailed: "✗", watch.OutcomeSkipped: "-"}[it.Outcome]
			fmt.Fprintf(a.stdout, "%s %-8s %s\n", mark, it.Name, it.Evidence)
		}
		if failed > 0 {
			fmt.Fprintf(a.stdout, "FAILED: %d checklist items failed\n", failed)
		} else {
			fmt.Fprintln(a.stdout, "All post-deploy checks passed")
		}
	}
	if failed > 0 {
		return &exitError{code: ExitFailed}
	}
	return nil
}
