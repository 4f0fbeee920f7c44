package cli

import (
	"github.com/spf13/cobra"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/generate"
)

func (a *app) generateCommand() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "generate alerts|dashboard|probes|workflow",
		Short: "Write alert rules, a Grafana dashboard, Kubernetes probes or a GitHub Actions job from the config",
		Long: `generate writes, to standard output, what teams hand-write today, from the
same deploywatch.yaml that judges deploys, so the lines that roll a deploy
back are the lines that page people:

  alerts     a Prometheus rule file (error rate, latency against an hour ago,
             restarts, CPU, memory; burn-rate alerts with alerts.slo)
  dashboard  Grafana dashboard JSON: health, traffic, resources and business
             rows, with deployment annotations
  probes     liveness, readiness and startup probes for the container
  workflow   a GitHub Actions job that deploys through deploywatch`,
		Example: `  deploywatch generate alerts    -f deploywatch.yaml > alerts.yml
  deploywatch generate dashboard -f deploywatch.yaml > dashboard.json`,
		Args:      usageArgs(cobra.ExactArgs(1)),
		ValidArgs: []string{"alerts", "dashboard", "probes", "workflow"},
		RunE: func(cmd *cobra.Command, args []string) error {
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
				return usagef("generate %q: want alerts, dashboard, probes or workflow", args[0])
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "deploywatch.yaml", "config file")
	return c
}
