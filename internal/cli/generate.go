package cli

import (
	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/generate"
)

func (a *app) generateCommand() *cobra.Command {
	var file, selector string
	c := &cobra.Command{
		Use:   "generate alerts|dashboard|probes|workflow|serve-alerts|serve-dashboard",
		Short: "Write alert rules, a Grafana dashboard, Kubernetes probes or a GitHub Actions job from the config",
		Long: `generate writes, to standard output, what teams hand-write today, from the
same deploywatch.yaml that judges deploys, so the lines that roll a deploy
back are the lines that page people:

  alerts     a Prometheus rule file (error rate, latency against an hour ago,
             restarts, CPU, memory; burn-rate alerts with alerts.slo)
  dashboard  Grafana dashboard JSON: health, traffic, resources and business
             rows, with deployment annotations
  probes     liveness, readiness and startup probes for the container
  workflow   a GitHub Actions job that deploys through deploywatch

and for deploywatch serve itself (no config file; --selector picks its
series):

  serve-alerts     rules: no replica up, no leader, a rollback failed,
                   config errors, store errors, notifications failing
  serve-dashboard  its watches and their checks, verdicts, detection
                   times, rollbacks, deliveries and store`,
		Example: `  deploywatch generate alerts    -f deploywatch.yaml > alerts.yml
  deploywatch generate dashboard -f deploywatch.yaml > dashboard.json`,
		Args:      usageArgs(cobra.ExactArgs(1)),
		ValidArgs: []string{"alerts", "dashboard", "probes", "workflow", "serve-alerts", "serve-dashboard"},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "serve-alerts":
				rf, err := generate.ServeAlerts(selector)
				if err != nil {
					return usagef("--selector: %v", err)
				}
				out, err := rf.YAML()
				if err != nil {
					return err
				}
				_, err = a.stdout.Write(out)
				return err
			case "serve-dashboard":
				out, err := generate.ServeDashboard(selector)
				if err != nil {
					return usagef("--selector: %v", err)
				}
				_, err = a.stdout.Write(out)
				return err
			}
			cfg, err := config.LoadFile(file)
			if err != nil {
				return err
			}
			var out []byte
			switch args[0] {
			case "alerts":
				rf, err := generate.Alerts(cfg)
				if err != nil {
					return usagef("%v", err)
				}
				out, err = rf.YAML()
				if err != nil {
					return err
				}
			case "dashboard":
				out, err = generate.Dashboard(cfg)
				if err != nil {
					return usagef("%v", err)
				}
			case "probes":
				out, err = generate.Probes(cfg)
				if err != nil {
					return err
				}
			case "workflow":
				out = generate.Workflow(cfg, file)
			default:
				return usagef("generate %q: want alerts, dashboard, probes, workflow, serve-alerts or serve-dashboard", args[0])
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	c.Flags().StringVar(&selector, "selector", `job="deploywatch"`, "serve-*: the label selector of deploywatch serve's own series")
	return c
}
