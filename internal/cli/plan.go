package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/watch"
	"github.com/deploywatch/deploywatch/internal/wire"
)

func (a *app) planCommand() *cobra.Command {
	var (
		file, output string
		kube         kubeFlags
	)
	c := &cobra.Command{
		Use:   "plan [flags]",
		Short: "Say what a watch started now could see, without deploying",
		Long: `plan measures what a watch would measure at its start (the scrape interval,
the history the metric source holds, each check's baseline) and works out,
from the traffic before now, the monitor window and the judge's test, what
each check could prove: the smallest regression within phases.monitor, and
how long a reference regression (5x the fail line) takes to prove.

Exit 0 when every check can judge within the monitor window, 1 when one
cannot (raise phases.monitor, or add traffic), 2 for a config error or a
metric source that cannot be asked.`,
		Example: `  deploywatch plan -f deploywatch.yaml
  deploywatch plan -f deploywatch.yaml -o json | jq '.detectability[] | select(.can_judge | not)'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			cfg, err := config.LoadFile(file)
			if err != nil {
				return err
			}
			log, err := a.logger()
			if err != nil {
				return err
			}
			src, err := wire.Source(cmd.Context(), cfg, a.env, log)
			if err != nil {
				return usageIfConfig(err)
			}
			platform, closePlatform, err := wire.Platform(cmd.Context(), cfg, kube, func(string, string) {}, nil)
			if err != nil {
				return usageIfConfig(err)
			}
			defer closePlatform()
			rep, err := watch.New(watch.SpecFor(cfg), src, platform, watch.WithLogger(log)).Plan(cmd.Context())
			if err != nil {
				return &usageError{err}
			}
			if output == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printPlan(a, cfg, rep)
			}
			for _, d := range rep.Detectability {
				if !d.CanJudge {
					return &exitError{code: 1}
				}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().StringVarP(&output, "output", "o", "text", "text, or json (the report's settings, checks and detectability)")
	registerKubeFlags(c, &kube)
	return c
}

func printPlan(a *app, cfg *config.Config, rep *watch.Report) {
	s := rep.Settings
	fmt.Fprintf(a.stdout, "A watch of %s started now: scrape every %s (%s), %s of history for the baseline, monitor %s, a look every %s.\n",
		cfg.Service, s.ScrapeInterval, s.ScrapeIntervalSource, s.BaselineHistory, s.Monitor, s.Look)
	for i, d := range rep.Detectability {
		mark := "✓"
		if !d.CanJudge {
			mark = "✗"
		}
		base := ""
		if i < len(rep.Checks) {
			c := rep.Checks[i]
			base = " (baseline " + watch.FormatValue(c.Baseline, c.Unit) + ")"
			if c.BaselineError != "" {
				base = " (baseline: " + c.BaselineError + ")"
			}
		}
		fmt.Fprintf(a.stdout, "  %s %s%s\n", mark, d.Summary, base)
	}
}
